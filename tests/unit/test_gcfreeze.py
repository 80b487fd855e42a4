"""The daemon's freeze of its long-lived objects (monitor/daemon/gcfreeze.py)."""

from __future__ import annotations

import asyncio
import gc

from monitor.daemon.gcfreeze import SETTLE_AT_MOST, Freezer


def test_frozen_once_settled_thawed_by_a_reload_and_a_pending_freeze_replaced() -> None:
    async def scenario() -> None:
        settled = asyncio.Event()
        asked: list[float] = []

        async def watchers_ready(at_most: float) -> None:
            asked.append(at_most)
            await settled.wait()

        freezer = Freezer()
        freezer.after(watchers_ready)
        await asyncio.sleep(0)  # the freeze task runs up to its wait
        assert asked == [SETTLE_AT_MOST] and gc.get_freeze_count() == 0  # not before
        settled.set()
        assert freezer._task is not None
        await freezer._task
        kept = gc.get_freeze_count()
        assert kept > 1000  # the interpreter's own objects and ours, out of every collection

        # A reload thaws at once, so what it replaces can be collected; its own freeze waits.
        settled.clear()
        freezer.after(watchers_ready)
        assert gc.get_freeze_count() == 0
        first = freezer._task
        freezer.after(watchers_ready)  # another reload before the watchers settled
        await asyncio.sleep(0)
        assert first is not None and first.cancelled()
        freezer.thaw()  # the daemon stopping
        await asyncio.sleep(0)
        assert gc.get_freeze_count() == 0

    try:
        asyncio.run(scenario())
    finally:
        gc.unfreeze()
