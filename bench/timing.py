"""How exact a probe's delivery time is: mailcanary's arrival against the moment the canary's
file landed in the Maildir, for near-instant and for held deliveries, on a private Postfix +
Dovecot (monitor/harness).

    sudo .venv/bin/python bench/timing.py --canaries 45 --hold 5
    sudo .venv/bin/python bench/timing.py --canaries 45 --hold 5 --fine-for 0   # no fine look-out

One canary at a time per kind: alice -> bob (delivered at once) and alice -> slow (Postfix
holds it, the harness releases it after --hold seconds). Truth is the mtime of the canary's
Maildir file (ns precision; Dovecot writes it, then renames it where IMAP sees it). Prints,
per kind, the error of the recorded arrival (p50, p95, max of its absolute value), the
recorded window's width, how often the window holds the truth, the arrival sources and the
IMAP commands the watcher sent per canary (both folders; every command, IDLE counted once);
last, one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from figures import arrivals, percentile  # noqa: E402  (bench/figures.py, beside this file)

from monitor.adapters.imap import ImapSession  # noqa: E402
from monitor.config.load import load_config  # noqa: E402
from monitor.core.models import ProbeRecord, Verdict  # noqa: E402
from monitor.harness.demo import demo_monitor, write_config  # noqa: E402
from monitor.harness.dovecot import DOVECOT  # noqa: E402
from monitor.harness.mailstack import MailStack  # noqa: E402
from monitor.logs import configure as configure_logs  # noqa: E402
from monitor.probe.setup import opened  # noqa: E402

# Dovecot's write-then-rename: the file's mtime may precede its rename into new/ slightly.
RENAME_SLACK = 0.02
COMMANDS: Counter[str] = Counter()


def count_imap_commands() -> None:
    """Every IMAP command any session sends goes through `_command`, except IDLE."""

    def counted(method: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Any]:
        async def wrapper(self: ImapSession, *args: Any, **kwargs: Any) -> Any:
            COMMANDS[name] += 1
            return await method(self, *args, **kwargs)

        return wrapper

    ImapSession._command = counted(ImapSession._command, "command")  # type: ignore[method-assign]
    ImapSession.idle = counted(ImapSession.idle, "idle")  # type: ignore[method-assign]


async def run(stack: MailStack, work: Path, args: argparse.Namespace) -> dict[str, object]:
    look_out = (
        f'cleanup = false\nlook_out_resolution = "{args.resolution}"\n'
        f'look_out_fine_for = "{args.fine_for}"\n'
    )
    routes = [("near-instant", "alice", {"bob": Verdict.INBOX})]
    routes.append(("held", "alice", {"slow": Verdict.INBOX}))
    path = write_config(stack, work, routes=routes, monitor=demo_monitor(work) + look_out)
    cfg = load_config(path)
    figures: dict[str, object] = {}
    async with opened(cfg) as runner:
        await runner.start_watchers(["bob", "slow"])
        await runner.wait_watchers_ready(15)
        for route, to in (("near-instant", "bob"), ("held", "slow")):
            records: list[ProbeRecord] = []
            before = sum(COMMANDS.values())
            for _ in range(args.canaries):
                record = await runner.probe(cfg.route(route), to, deadline=args.hold + 30)
                if record is not None:
                    records.append(record)
            commands = sum(COMMANDS.values()) - before
            figures[route] = measure(records, arrivals(stack, [to]), commands)
            print(f"{route}: {json.dumps(figures[route])}", file=sys.stderr, flush=True)
    return figures


def measure(
    records: list[ProbeRecord], landed: dict[str, float], commands: int
) -> dict[str, object]:
    errors, widths, sources, inside = [], [], Counter[str](), 0
    for record in records:
        decision = record.decision
        truth = landed.get(record.planned.token)
        if decision is None or decision.arrived_at is None or truth is None:
            continue
        errors.append(abs(decision.arrived_at.timestamp() - truth))
        sources[decision.arrival_source.value if decision.arrival_source else "none"] += 1
        after, before = decision.arrived_after, decision.arrived_before
        if after is not None and before is not None:
            widths.append((before - after).total_seconds())
            inside += after.timestamp() - RENAME_SLACK <= truth <= before.timestamp()
    return {
        "canaries": len(records),
        "timed": len(errors),
        "error_p50": percentile(errors, 50),
        "error_p95": percentile(errors, 95),
        "error_max": percentile(errors, 100),
        "window_p50": percentile(widths, 50),
        "window_p95": percentile(widths, 95),
        "window_holds_truth": f"{inside}/{len(widths)}",
        "sources": dict(sources),
        "imap_commands_per_canary": round(commands / max(len(records), 1), 1),
    }


def version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=45, help="per kind of delivery")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds Postfix holds `slow`")
    parser.add_argument("--resolution", default="200ms", help="monitor.look_out_resolution")
    parser.add_argument("--fine-for", default="30s", help='monitor.look_out_fine_for; "0": off')
    args = parser.parse_args()
    count_imap_commands()
    configure_logs("WARNING")
    work = Path(tempfile.mkdtemp(prefix="mctiming"))
    started = time.monotonic()
    stack = MailStack.start(delay_seconds=args.hold, content_filter=False)
    try:
        figures = asyncio.run(run(stack, work, args))
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures["settings"] = {
        "hold_seconds": args.hold,
        "look_out_resolution": args.resolution,
        "look_out_fine_for": args.fine_for,
    }
    figures["server"] = {
        "dovecot": version([DOVECOT, "--version"]),
        "postfix": version(["/usr/sbin/postconf", "-d", "-h", "mail_version"]),
    }
    figures["seconds"] = round(time.monotonic() - started)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
