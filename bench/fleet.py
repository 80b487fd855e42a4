"""`bench/scale.py --instances K`: K daemons on one private PostgreSQL sharing the mailboxes.

Beside scale.py's figures (per instance: what it sent; CPU and RSS per process) this measures
IMAP sessions per seed mailbox (sampled with `doveadm who`) and, after one instance is killed
with SIGKILL halfway through, the hand-over: how long until every mailbox is leased by a live
instance again, and until the dead one's unfinished probes have their verdicts.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from monitor.harness.mailstack import MailStack

ROWS = (
    "SELECT route, token, slot, planned_at, state, detected_at, finished_at, delivery_seconds,"
    " verdict, instance FROM probes"
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def _fetch(url: str, sql: str, *args: object) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


def fetch(url: str, sql: str, *args: object) -> list[Any]:
    return asyncio.run(_fetch(url, sql, *args))


def probe_rows(url: str) -> list[tuple[Any, ...]]:
    """Rows shaped as scale.py's SQLite query returns them (times as ISO text), + instance."""
    return [tuple(_iso(value) for value in row.values()) for row in fetch(url, ROWS)]


class Sessions:
    """IMAP sessions per bench mailbox, sampled every `every` seconds in a thread."""

    def __init__(self, stack: MailStack, users: list[str], every: float = 2.0) -> None:
        self.stack = stack
        self.emails = {stack.user(u).email for u in users}
        self.every = every
        self.samples: list[tuple[float, Counter[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sessions:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            found = Counter(u for u, _ in self.stack.imap_sessions() if u in self.emails)
            self.samples.append((time.monotonic(), found))

    def figures(self, skip_until: float, calm: Callable[[float], bool]) -> dict[str, Any]:
        """Per mailbox per sample, after start-up; `calm(t)`: no hand-over around t."""
        counts = [
            found[email]
            for at, found in self.samples
            if at >= skip_until and calm(at)
            for email in self.emails
        ]
        every = [found[e] for at, found in self.samples if at >= skip_until for e in self.emails]
        return {
            "sessions_per_mailbox_p50": statistics.median(counts) if counts else None,
            "sessions_per_mailbox_max_steady": max(counts, default=None),
            "sessions_per_mailbox_max": max(every, default=None),
            "session_samples": len(every),
        }


def leases_by(url: str) -> Counter[str]:
    rows = fetch(url, "SELECT owner FROM mailbox_leases WHERE expires_at > now()")
    return Counter(row["owner"] for row in rows)


def wait_balanced(url: str, names: set[str], mailboxes: int, timeout: float) -> float | None:
    """Seconds until every mailbox is leased by `names` only, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        held = leases_by(url)
        if set(held) <= names and sum(held.values()) == mailboxes:
            return time.monotonic() - start
        time.sleep(0.2)  # a benchmark's polling cadence
    return None


def wait_resolved(url: str, victim: str, timeout: float) -> float | None:
    """Seconds until no probe sent or adopted by `victim` is unfinished, or None."""
    start = time.monotonic()
    sql = (
        "SELECT count(*) AS n FROM probes WHERE state <> 'final'"
        " AND coalesce(adopted_by, instance) = $1"
    )
    while time.monotonic() - start < timeout:
        if fetch(url, sql, victim)[0]["n"] == 0:
            return time.monotonic() - start
        time.sleep(0.2)
    return None
