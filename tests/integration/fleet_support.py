"""Watching a fleet of daemons from outside: their leases and probes in PostgreSQL, and the
IMAP sessions Dovecot counts per mailbox, sampled side by side."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from monitor.harness.mailstack import MailStack


async def _query(url: str, sql: str, *args: object) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql, *args))
    except asyncpg.UndefinedTableError:  # not migrated yet
        return []
    finally:
        await connection.close()


def query(url: str, sql: str, *args: object) -> list[Any]:
    return asyncio.run(_query(url, sql, *args))


def leases(url: str) -> dict[str, tuple[str, str | None]]:
    """mailbox -> (owner, successor) of the leases that have not expired."""
    found = query(
        url, "SELECT mailbox, owner, successor FROM mailbox_leases WHERE expires_at > now()"
    )
    return {row["mailbox"]: (row["owner"], row["successor"]) for row in found}


@dataclass
class Sample:
    at: float  # monotonic
    sessions: dict[str, set[int]]  # mailbox (account name) -> imap pids
    leases: dict[str, tuple[str, str | None]]


@dataclass
class SessionSampler:
    """Samples `doveadm who` and the lease table every `every` seconds in a thread."""

    stack: MailStack
    url: str
    mailboxes: list[str]
    every: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SessionSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        emails = {self.stack.user(m).email: m for m in self.mailboxes}
        while not self._stop.wait(self.every):
            sessions: dict[str, set[int]] = defaultdict(set)
            for email, pid in self.stack.imap_sessions():
                if email in emails:
                    sessions[emails[email]].add(pid)
            self.samples.append(Sample(time.monotonic(), dict(sessions), leases(self.url)))

    def watching(self, long_lived: float = 1.0) -> list[tuple[Sample, dict[str, int]]]:
        """Per sample, per mailbox: sessions that lived at least `long_lived` seconds (the
        watchers' IDLE sessions; a search or a deletion lasts a few milliseconds)."""
        seen: dict[int, list[float]] = {}
        for sample in self.samples:
            for pids in sample.sessions.values():
                for pid in pids:
                    seen.setdefault(pid, [sample.at, sample.at])[1] = sample.at
        lasting = {pid for pid, (first, last) in seen.items() if last - first >= long_lived}
        return [
            (s, {m: len(s.sessions.get(m, set()) & lasting) for m in self.mailboxes})
            for s in self.samples
        ]

    def settled(self, sample: Sample, mailbox: str, window: float) -> bool:
        """Nothing changed hands around this sample: the same owner and no successor in every
        sample within `window` seconds."""
        owner = sample.leases.get(mailbox, (None, None))[0]
        if owner is None:
            return False
        near = [s for s in self.samples if abs(s.at - sample.at) <= window]
        return all(s.leases.get(mailbox) == (owner, None) for s in near)
