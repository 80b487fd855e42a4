"""Aggregates of closed hours, kept between page views and slid forward as time passes.

The rollup of an hour stops changing once its canaries are decided, except for a `missing`
that later turns `late`. So the pages read every hour before the previous one through this
cache and only the last two hours on every view. When the hour turns, a kept window is slid:
the hour that fell out is taken off and the hour that closed is added, two small reads instead
of a scan of the week. A window older than `ttl` is still served, and read in full again in
the background (which is how late verdicts reach it); only the very first view of a window
waits for a full read.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

log = structlog.get_logger(__name__)

TTL = 900.0
ENTRIES = 256  # a window per page kind, route and mailbox that people look at
FAR = timedelta(hours=6)  # slid further than this, a full read is as cheap

Load = Callable[[datetime, datetime], Awaitable[Any]]
# (kept value, its start, its end, new start, new end) → the value of the new window
Slide = Callable[[Any, datetime, datetime, datetime, datetime], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Kept:
    start: datetime
    end: datetime
    value: Any
    read_at: float  # when it was last read in full (monotonic)


class Windows:
    def __init__(
        self,
        ttl: float = TTL,
        entries: int = ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.entries = entries
        self._clock = clock
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._refreshing: dict[Hashable, asyncio.Task[None]] = {}

    async def get(
        self, scope: Hashable, start: datetime, end: datetime, load: Load, slide: Slide
    ) -> Any:
        """The value of [start, end) for `scope` (a page kind and what it shows)."""
        kept = self._kept.get(scope)
        if kept is None or start < kept.start or end < kept.end or end - kept.end > FAR:
            kept = _Kept(start, end, await load(start, end), self._clock())
        elif (kept.start, kept.end) != (start, end):
            value = await slide(kept.value, kept.start, kept.end, start, end)
            kept = _Kept(start, end, value, kept.read_at)
        self._keep(scope, kept)
        if self._clock() - kept.read_at > self.ttl and scope not in self._refreshing:
            task = asyncio.ensure_future(self._refresh(scope, start, end, load))
            self._refreshing[scope] = task
        return kept.value

    async def _refresh(self, scope: Hashable, start: datetime, end: datetime, load: Load) -> None:
        try:
            value = await load(start, end)
            kept = self._kept.get(scope)
            # Keep it only if no view slid the window on meanwhile.
            if kept is not None and (kept.start, kept.end) == (start, end):
                self._keep(scope, _Kept(start, end, value, self._clock()))
        except Exception as exc:  # the kept value stays; the next view tries again
            log.warning("status page refresh failed", error=str(exc).splitlines()[0])
        finally:
            self._refreshing.pop(scope, None)

    def _keep(self, scope: Hashable, kept: _Kept) -> None:
        self._kept[scope] = kept
        self._kept.move_to_end(scope)
        while len(self._kept) > self.entries:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()

    def cancel(self) -> None:
        """The listener stops: background reads end here, before the database closes."""
        for task in self._refreshing.values():
            task.cancel()

    async def settle(self) -> None:
        """Wait for background reads (tests, benchmarks, shutdown)."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)
