"""Live updates: a version number that moves when a verdict is recorded, and its waiters.

The daemon calls `changed()` from its progress hook; each `/events` stream waits for the
next change (or a heartbeat timeout) and tells the browser, which fetches the page again.
"""

from __future__ import annotations

import asyncio


class Hub:
    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._moved = asyncio.Event()
        self._closing = asyncio.Event()

    def close(self) -> None:
        """The listener is stopping: streams end cleanly (the browser reconnects later)."""
        self.closed = True
        self._moved.set()
        self._closing.set()

    def changed(self) -> None:
        self.version += 1
        self._moved.set()
        # Waiters already woken keep running; the next wait needs a fresh event.
        self._moved = asyncio.Event()

    async def pause(self, seconds: float) -> None:
        """Sleep, but not past the listener's stop."""
        if self.closed:
            return
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait([closing], timeout=seconds)
        finally:
            closing.cancel()

    async def wait(self, seen: int, within: float) -> int:
        """The version after `seen`, or `seen` again when nothing changed `within` seconds."""
        if self.version != seen or self.closed:
            return self.version
        moved = self._moved
        try:
            async with asyncio.timeout(within):
                await moved.wait()
        except TimeoutError:
            pass
        return self.version
