"""Keeping the daemon's long-lived objects out of the garbage collector's way.

A daemon watching 1,000 mailboxes holds ~300,000 objects made at start-up (the config, the
watchers and their sessions, the modules) that live as long as it does, and every full
collection walked them all: garbage collection was 5 % of its CPU (bench/scale.py, 1,000
mailboxes). Once the watchers have logged in they are frozen (`gc.freeze`: left out of every
later collection; what stays referenced is freed as usual when its count drops). A reload
thaws them first, so whatever it replaces can be collected, and freezes again once the
watchers it started have logged in.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

SETTLE_AT_MOST = 120.0  # seconds to wait for the watchers' logins before freezing anyway


class Freezer:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def after(self, settled: Callable[[float], Awaitable[None]]) -> None:
        """Freeze once `settled(SETTLE_AT_MOST)` returns; a freeze still waiting is replaced."""
        self.thaw()
        self._task = asyncio.create_task(self._freeze(settled), name="gc freeze")

    def thaw(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        gc.unfreeze()

    @staticmethod
    async def _freeze(settled: Callable[[float], Awaitable[None]]) -> None:
        await settled(SETTLE_AT_MOST)
        gc.collect()  # what is garbage now would otherwise be kept for good
        gc.freeze()
