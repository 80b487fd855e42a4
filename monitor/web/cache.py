"""Aggregates of closed hours, kept for a few minutes so page views share them.

The rollup of an hour stops changing once its canaries are decided, except for a `missing`
that later turns `late`. So the pages read the hours before the previous one through this
cache (recomputed when the window moves to the next hour, or after `ttl` seconds, so a late
verdict shows within minutes) and the last two hours fresh on every view. Reads of many
hours by many viewers then cost one rollup scan per window and few minutes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

TTL = 300.0
ENTRIES = 256  # a window per page kind, route and mailbox that people look at


class Closed:
    def __init__(self, ttl: float = TTL, entries: int = ENTRIES, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.entries = entries
        self._clock = clock
        self._kept: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        now = self._clock()
        found = self._kept.get(key)
        if found is not None and found[0] > now:
            self._kept.move_to_end(key)
            return found[1]
        value = await compute()
        self._kept[key] = (now + self.ttl, value)
        self._kept.move_to_end(key)
        while len(self._kept) > self.entries:
            self._kept.popitem(last=False)
        return value

    def clear(self) -> None:
        self._kept.clear()
