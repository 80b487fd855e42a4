"""Bounded IMAP logins: watchers share a number of login slots, held from connect to login.

The server here accepts and never greets, so every login waits while holding its slot; the
test hangs connections up one at a time. Without the bound all five watchers would connect
at once and the peak would be five.
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import SecretStr

from monitor.adapters.tls import client_context
from monitor.config.schema import Account, Endpoint
from monitor.core.models import Security
from monitor.probe.watcher import Watcher

SLOTS, WATCHERS = 2, 5


class SilentServer:
    """Counts connections open at once; lets the test hang them up."""

    def __init__(self) -> None:
        self.open: list[asyncio.StreamWriter] = []
        self.total = self.peak = 0
        self.changed = asyncio.Condition()

    async def handle(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self.changed:
            self.open.append(writer)
            self.total += 1
            self.peak = max(self.peak, len(self.open))
            self.changed.notify_all()

    async def until(self, predicate: object, timeout: float = 20) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)  # type: ignore[arg-type]

    async def hang_up_one(self) -> None:
        async with self.changed:
            writer = self.open.pop(0)
        writer.close()


async def test_watchers_never_hold_more_logins_than_their_slots() -> None:
    silent = SilentServer()
    server = await asyncio.start_server(silent.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    slots = asyncio.Semaphore(SLOTS)
    watchers = []
    for n in range(WATCHERS):
        imap = Endpoint(host="127.0.0.1", port=port, security=Security.NONE, timeout=60)
        account = Account(
            name=f"w{n}", email=f"w{n}@example.test", username=f"w{n}",
            password=SecretStr("x"), imap=imap,
        )  # fmt: skip
        watchers.append(
            Watcher(
                account,
                ssl_context=client_context(),
                poll_interval=60,
                verify=lambda _headers: None,
                on_sighting=lambda _sighting: None,
                on_failure=lambda _failure: None,
                login_slots=slots,
            )
        )
    try:
        for watcher in watchers:
            await watcher.start()  # two folder loops each: ten logins wanting to start
        await silent.until(lambda: len(silent.open) >= SLOTS)
        # Each hang-up frees one slot, which the next waiting login takes.
        while silent.total < 2 * WATCHERS:
            seen = silent.total
            await silent.hang_up_one()
            await silent.until(lambda seen=seen: silent.total > seen)
        assert silent.peak == SLOTS
    finally:
        for watcher in watchers:
            await watcher.stop()
        server.close()
        for writer in silent.open:
            writer.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
