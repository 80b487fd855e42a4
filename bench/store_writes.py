"""What a probe's record costs: its writes (plan, send record, verdict) in a loop, alone.

    PYTHONPATH=. python bench/store_writes.py --probes 1000 [--postgres]

Each probe writes its row in the state `sending`, its SMTP replies, then its verdict with a
sighting, as the runner does, `--parallel` probes at a time (the daemon's writes overlap too).
Prints the CPU seconds this process spent per probe (the database server's own work on
PostgreSQL is not counted: it is the same for any client) and the wall time, then one JSON
line. The figure to compare is the CPU per probe, before and after a change, back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.adapters.store import Store  # noqa: E402
from monitor.core.models import (  # noqa: E402
    ArrivalSource,
    Decision,
    Phase,
    PlannedProbe,
    Role,
    SendOutcome,
    Sighting,
    SmtpReply,
    Verdict,
    utcnow,
)

_REPLIES = (
    SmtpReply(Phase.GREETING, 220, None, "mx.example.test ESMTP Postfix"),
    SmtpReply(Phase.EHLO, 250, None, "mx.example.test\nPIPELINING\nSIZE 10240000\nSTARTTLS"),
    SmtpReply(Phase.TLS, 220, "2.0.0", "Ready to start TLS"),
    SmtpReply(Phase.EHLO, 250, None, "mx.example.test\nPIPELINING\nAUTH PLAIN LOGIN"),
    SmtpReply(Phase.AUTH, 235, "2.7.0", "Authentication successful"),
    SmtpReply(Phase.MAIL_FROM, 250, "2.1.0", "Ok"),
    SmtpReply(Phase.RCPT_TO, 250, "2.1.5", "Ok"),
    SmtpReply(Phase.DATA, 250, "2.0.0", "Ok: queued as 4XyZ1"),
)


async def one(store: Store, n: int) -> None:
    now = utcnow()
    planned = PlannedProbe(
        token=f"bench-{n}-{time.monotonic_ns()}",
        route=f"m{n:05d}",
        sender="alice",
        recipient=f"user{n:05d}",
        slot=now,
        planned_at=now,
        deadline_at=now + timedelta(seconds=30),
        message_id=f"<{n}@bench.test>",
        instance="default",
    )
    probe_id = await store.plan(planned, sending=True)
    handoff = utcnow()
    outcome = SendOutcome(
        Phase.DONE, _REPLIES, queue_id="4XyZ1", tls_version="TLSv1.3", handoff_at=handoff
    )
    await store.record_send(probe_id, outcome)
    seen = Sighting(planned.token, "INBOX", Role.INBOX, n + 1, 7, utcnow(), message_id="<x>")
    decision = Decision(
        Verdict.INBOX,
        folder="INBOX",
        role=Role.INBOX,
        arrived_at=seen.detected_at,
        arrival_source=ArrivalSource.LOOKOUT,
        delivery_seconds=0.05,
    )
    await store.finish(probe_id, decision, seen)


async def run(url: str, probes: int, parallel: int) -> dict[str, float]:
    store = await Store.open(url)
    await store.upgrade()
    try:
        await asyncio.gather(*(one(store, -n - 1) for n in range(parallel)))  # warm up
        gate = asyncio.Semaphore(parallel)

        async def paced(n: int) -> None:
            async with gate:
                await one(store, n)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(paced(n) for n in range(probes)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await store.close()
    return {
        "probes": probes,
        "parallel": parallel,
        "cpu_ms_per_probe": 1000 * cpu / probes,
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="the harness's PostgreSQL")
    args = parser.parse_args()
    if args.postgres:
        from monitor.harness.postgres import Postgres

        server = Postgres.start()
        try:
            figures = asyncio.run(run(server.create_database(), args.probes, args.parallel))
        finally:
            server.stop()
        figures["database"] = "postgresql"  # type: ignore[assignment]
    else:
        with tempfile.TemporaryDirectory() as work:
            figures = asyncio.run(run(f"sqlite:///{work}/mc.db", args.probes, args.parallel))
        figures["database"] = "sqlite"  # type: ignore[assignment]
    print(f"{figures['probes']} probes, {figures['parallel']} at a time, {figures['database']}:")
    cpu, wall = figures["cpu_ms_per_probe"], figures["wall_s"]
    print(f"  {cpu:.2f} ms CPU per probe (3 writes), {wall:.1f} s")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
