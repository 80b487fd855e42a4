"""How long the weekly report takes to build over N probes (a benchmark, not a test).

    python bench/report.py --rows 10000000
    python bench/report.py --rows 10000000 --database postgresql://mc@127.0.0.1:5433/mc --reset

Fills a database migrated to head (so the rollup triggers run on every insert, as they do
when the daemon finishes a probe) with N synthetic final probes: 20 routes to 60 mailboxes
at five providers, a few per cent spam (some with DMARC failures), lost and failed canaries,
an afternoon outage, log-normal delivery times, realistic row widths. By default each
mailbox gets a canary every 5 minutes (`--interval`), so N probes reach back N/60 × 5 min
and the report reads the last two weeks of them. `--weeks 2` packs all N into the two weeks
the report compares instead: the worst case, every row counted. `--instances 2` has two
daemons take turns at the slots (a round of canaries each), as an HA pair does. Then it
builds the report of the last full week (UTC) and prints the time, then the same report
split by instance and one of the first instance only, ending with one JSON line:
{"rows": N, "database": "sqlite|postgresql", "instances": K, "report_seconds": S,
 "by_instance_seconds": S, "one_instance_seconds": S}.
Without --database the SQLite file goes to a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from monitor.adapters.report_tables import RollupRow
from monitor.adapters.store import Store, make_engine
from monitor.reports.charts import draw_charts
from monitor.reports.document import Mailbox
from monitor.reports.html import render_html
from monitor.reports.model import last_full_week
from monitor.reports.query import build_report, render_json
from monitor.reports.text import render_text

END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday: the data ends where a week ends
PROVIDERS = (  # name, domain, spam share
    ("Gmail", "gmail.com", 0.08),
    ("Outlook", "outlook.com", 0.04),
    ("Yahoo", "yahoo.com", 0.03),
    ("GMX", "gmx.de", 0.02),
    ("own", "example.org", 0.005),
)
COLUMNS = (
    "token route sender recipient slot planned_at deadline_at message_id instance state "
    "smtp_phase smtp_code smtp_enhanced smtp_message queue_id tls_version handoff_at verdict "
    "failure failure_phase failure_transient failure_message failure_code failure_enhanced "
    "folder folder_role arrived_at arrival_source delivery_seconds finished_at auth_results"
).split()
AUTH = (
    '{"authserv_id": "mx.%s", "spf": {"result": "pass", "domain": "example.org", "selector": '
    'null}, "dkim": [{"result": "%s", "domain": "example.org", "selector": "s1"}], "dmarc": '
    '{"result": "%s", "domain": "example.org", "selector": null}, "arc": null, "other": {}}'
)
REFUSALS = (
    ("rejected", "rcpt_to", False, "Message rejected: policy", 550, "5.7.1"),
    ("deferred", "rcpt_to", True, "Greylisted, try again later", 451, "4.7.1"),
    ("auth_failed", "auth", False, "Authentication credentials invalid", 535, "5.7.8"),
)


def pairs(count: int) -> list[tuple[str, str, str, str]]:
    """(route, recipient, provider, domain): routes of three mailboxes each."""
    out = []
    for i in range(count):
        provider, domain, _ = PROVIDERS[i % len(PROVIDERS)]
        out.append((f"route-{i // 3:02d}", f"seed-{i:02d}", provider, domain))
    return out


def probes(
    n: int,
    span: float,
    mailboxes: list[tuple[str, str, str, str]],
    seed: int,
    instances: list[str],
) -> Iterator[tuple]:
    rng = random.Random(seed)
    start = END - timedelta(seconds=span)
    spam_share = {p[0]: p[2] for p in PROVIDERS}
    outage = (END - timedelta(days=5, hours=-14), END - timedelta(days=5, hours=-16))
    for i in range(n):
        route, recipient, provider, domain = mailboxes[i % len(mailboxes)]
        planned = start + timedelta(seconds=span * i / n)
        handoff = planned + timedelta(seconds=1.2)
        roll = rng.random()
        spam = spam_share[provider]
        verdict, seconds, failure, auth = "inbox", None, None, None
        if outage[0] <= planned < outage[1] and route == "route-00":
            verdict = "missing"
        elif roll < 0.01:
            verdict, failure = "send_failed", REFUSALS[int(roll * 300) % 3]
        elif roll < 0.013:
            verdict, failure = (
                "check_failed",
                ("imap_auth_failed", "imap_auth", False, "NO [AUTHENTICATIONFAILED]", None, None),
            )
        elif roll < 0.017:
            verdict = "missing"
        elif roll < 0.019:
            verdict, seconds = "late", 600 + rng.expovariate(1 / 900)
        elif roll < 0.019 + spam:
            verdict = "spam"
        if verdict in ("inbox", "spam"):
            seconds = rng.lognormvariate(math.log(4.0), 0.9)
        if seconds is not None:
            dmarc = "fail" if verdict == "spam" and rng.random() < 0.4 else "pass"
            auth = AUTH % (domain, "fail" if dmarc == "fail" else "pass", dmarc)
        arrived = handoff + timedelta(seconds=seconds) if seconds is not None else None
        yield (
            f"{i:020d}.{int(planned.timestamp())}.bench",
            route,
            "sender",
            recipient,
            planned,
            planned,
            planned + timedelta(minutes=10),
            f"<{i}.canary@example.org>",
            instances[i // len(mailboxes) % len(instances)],
            "final",
            "done" if failure is None or verdict != "send_failed" else failure[1],
            250 if failure is None or verdict != "send_failed" else failure[4],
            "2.0.0" if failure is None or verdict != "send_failed" else failure[5],
            failure[3] if failure and verdict == "send_failed" else "2.0.0 Ok: queued as 4XyZ",
            "4XyZ1234",
            "TLSv1.3",
            handoff,
            verdict,
            *(failure[:4] if failure else (None, None, None, None)),
            *(failure[4:] if failure else (None, None)),
            None if seconds is None else ("INBOX" if verdict != "spam" else "Junk"),
            None if seconds is None else ("inbox" if verdict != "spam" else "spam"),
            arrived,
            None if seconds is None else "detected",
            seconds,
            planned + timedelta(minutes=1),
            auth,
        )


def _sqlite_text(value: object) -> object:
    # The store's format for SQLite: naive UTC text with microseconds (UTCDateTime).
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def fill_sqlite(path: str, rows: Iterator[tuple], batch: int = 50_000) -> None:
    placeholders = ", ".join("?" for _ in COLUMNS)
    statement = f"INSERT INTO probes ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA synchronous=OFF")
        chunk = []
        for row in rows:
            chunk.append(tuple(_sqlite_text(v) for v in row))
            if len(chunk) == batch:
                db.executemany(statement, chunk)
                db.commit()  # one huge transaction would hold every page in the WAL
                chunk.clear()
        db.executemany(statement, chunk)


async def fill_postgresql(url: str, rows: Iterator[tuple], batch: int = 50_000) -> None:
    import asyncpg

    target = make_url(url)
    db = await asyncpg.connect(
        host=target.host,
        port=target.port,
        user=target.username,
        password=target.password,
        database=target.database,
    )
    try:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == batch:
                await db.copy_records_to_table("probes", records=chunk, columns=COLUMNS)
                chunk.clear()
        if chunk:
            await db.copy_records_to_table("probes", records=chunk, columns=COLUMNS)
        await db.execute("ANALYZE")
    finally:
        await db.close()


async def fill(url: str, rows: Iterator[tuple], count: int) -> None:
    """`rows` into the probes of `url`, saying how long it took."""
    began = time.perf_counter()
    if make_url(url).get_backend_name() == "sqlite":
        await asyncio.to_thread(fill_sqlite, make_url(url).database or "", rows)
    else:
        await fill_postgresql(url, rows)
    print(f"filled {count} probes in {time.perf_counter() - began:.1f}s", flush=True)


async def reset(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as db:
        await db.execute(
            text(
                "DROP TABLE IF EXISTS report_sends, probe_rollup, alert_deliveries, alerts, "
                "probes, alembic_version CASCADE"
            )
        )
        await db.execute(text("DROP FUNCTION IF EXISTS probe_rollup_apply() CASCADE"))
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--database", help="a PostgreSQL or SQLite URL (default: a temp SQLite)")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between canaries")
    parser.add_argument("--weeks", type=float, help="put all rows in this span instead")
    parser.add_argument("--mailboxes", type=int, default=60)
    parser.add_argument("--instances", type=int, default=1, help="daemons taking turns")
    parser.add_argument("--reset", action="store_true", help="drop mailcanary's tables first")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    scratch = None
    url = args.database
    if url is None:
        scratch = tempfile.mkdtemp(prefix="mailcanary-bench-")
        url = f"sqlite:///{scratch}/bench.db"
    backend = make_url(url).get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    try:
        if args.reset:
            await reset(url)
        store = await Store.open(url)
        await store.upgrade()
        await store.close()
        mailboxes = pairs(args.mailboxes)
        span = args.weeks * 7 * 86400 if args.weeks else args.rows / len(mailboxes) * args.interval
        names = ["default"] if args.instances == 1 else [f"site-{k}" for k in range(args.instances)]
        rows = probes(args.rows, span, mailboxes, args.seed, names)
        await fill(url, rows, args.rows)

        engine = make_engine(url)
        async with engine.connect() as db:
            rollup = (await db.execute(select(func.count()).select_from(RollupRow))).scalar_one()
        now = END + timedelta(hours=8)
        period = last_full_week(now, "UTC")
        shown = {to: Mailbox(provider, f"{to}@{domain}") for _, to, provider, domain in mailboxes}
        configured = [(route, to) for route, to, _, _ in mailboxes]
        variants: list[dict[str, Any]] = [{}, {"by_instance": True}, {"instances": names[:1]}]
        timings, reports = [], []
        for options in variants:
            began = time.perf_counter()
            reports.append(
                await build_report(
                    Store(engine),
                    period,
                    mailboxes=shown,
                    configured=configured,
                    now=now,
                    **options,
                )
            )
            timings.append(time.perf_counter() - began)
        seconds, split, one = timings
        report = reports[0]  # the whole fleet's
        await engine.dispose()
        began = time.perf_counter()
        for render in (render_text, render_json):
            render(report)
        render_html(report, {})
        draw_charts(report)
        rendered = time.perf_counter() - began
        counted = report.total.tally.total + report.total.previous.total
        print(f"rollup rows: {rollup}; probes in the two weeks compared: {counted}")
        print(
            f"report of {period.label} built in {seconds:.2f}s; "
            f"rendered (with charts) in {rendered:.2f}s; split by instance in {split:.2f}s; "
            f"of {names[0]} only in {one:.2f}s"
        )
        figures = {"rows": args.rows, "database": backend, "instances": len(names)}
        figures |= {"report_seconds": round(seconds, 3), "by_instance_seconds": round(split, 3)}
        print(json.dumps(figures | {"one_instance_seconds": round(one, 3)}))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
