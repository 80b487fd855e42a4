"""The newest verdict of every mailbox, kept in memory between views.

The daemon hands each verdict it records to `record()`, so the grid is current without a
query; the database is read again (a thousand index seeks) when nothing was read for
`REREAD` seconds, which also brings in the verdicts of other instances sharing the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from monitor.core.models import ProbeRecord
from monitor.web.model import Latest

if TYPE_CHECKING:  # the daemon keeps the newest verdicts whether or not it serves the page
    from monitor.adapters.webstore import WebStore

REREAD = 60.0

Pair = tuple[str, str]


class Newest:
    def __init__(self, reread: float = REREAD, clock: Callable[[], float] = time.monotonic):
        self.reread = reread
        self._clock = clock
        self._by_pair: dict[Pair, Latest] = {}
        self._pairs: tuple[Pair, ...] = ()
        self._read_at: float | None = None

    async def get(self, store: WebStore, pairs: Sequence[Pair]) -> list[Latest]:
        wanted = tuple(pairs)
        stale = self._read_at is None or self._clock() - self._read_at > self.reread
        if stale or wanted != self._pairs:
            found = await store.latest(wanted)
            self._by_pair = {(x.route, x.recipient): x for x in found}
            self._pairs, self._read_at = wanted, self._clock()
        return [self._by_pair[pair] for pair in wanted if pair in self._by_pair]

    def forget(self) -> None:
        """Read the database at the next view."""
        self._read_at = None

    def record(self, record: ProbeRecord) -> None:
        """A verdict just recorded (or a `missing` that turned `late`)."""
        decision = record.decision
        if decision is None:
            return
        planned = record.planned
        pair = (planned.route, planned.recipient)
        kept = self._by_pair.get(pair)
        if kept is not None and kept.probe_id != record.id and kept.planned_at > planned.planned_at:
            return  # an older canary decided late: the cell shows the newer one
        failure = decision.failure
        self._by_pair[pair] = Latest(
            planned.route,
            planned.recipient,
            record.id,
            decision.verdict,
            planned.planned_at,
            decision.delivery_seconds,
            failure.kind if failure else None,
            failure.code if failure else None,
        )
