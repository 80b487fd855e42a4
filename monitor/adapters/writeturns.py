"""Turns at SQLite's single writer, the most urgent write first.

SQLite lets one connection write at a time. When 1,000 mailboxes fire together, the burst of
new probes' first writes would queue ahead of verdicts already known, and every verdict would
be recorded seconds after the canary was seen. Waiting writers are therefore served by urgency
(a verdict before a probe's progress before a new plan), first come first served within one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum


class Urgency(IntEnum):
    VERDICT = 0  # the end of a probe: its latency is what users see
    PROGRESS = 1  # a probe under way (sending, sent)
    PLAN = 2  # a new probe


class WriteTurns:
    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def turn(self, urgency: Urgency) -> AsyncIterator[None]:
        if self._busy:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (urgency, next(self._order), granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._pass_on()  # handed the turn just as we were cancelled
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a cancelled waiter's future is done: skip it
                granted.set_result(None)
                return  # still busy: the turn goes straight to the next writer
        self._busy = False
