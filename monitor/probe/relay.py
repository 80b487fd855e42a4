"""Sightings between instances sharing one PostgreSQL.

Only the instance holding a mailbox's lease watches it, so a canary is often seen by another
instance than the one waiting for it. The watcher writes what it saw to `sightings` and
deletes the canary (cleanup needs the UID, which only it knows); the waiting instance polls
`sightings` for its pending tokens every POLL_SECONDS and takes the verdict from there.
Polling rather than LISTEN/NOTIFY: a notification sent while the listener's connection is
down is lost, so a poll would be needed anyway, and this one is a primary-key lookup of the
few tokens in flight, run only while some are. It adds at most POLL_SECONDS to the time a
verdict takes (the delivery time is measured at the watcher and is not affected).

The same poll tells our watchers which canaries to their mailboxes other instances have just
handed off, so they look out for them (see probe/lookout.py) instead of waiting for the
server's IDLE push, as they do for our own. And a mailbox taken over from a dead instance is
searched once for the canaries on their way to it: those that landed while nobody watched
would otherwise wait for their deadline's search.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

import structlog

from monitor.adapters.imap import ImapError
from monitor.adapters.leases import SharedWork
from monitor.adapters.store import Store
from monitor.core.models import Failure, Sighting
from monitor.probe.watcher import Watcher

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.25
READY_SECONDS = 15.0  # as the daemon gives its watchers at start
Pending = Mapping[str, "asyncio.Future[Sighting | Failure]"]
Watchers = Mapping[str, Watcher]
Late = Callable[[str, Sighting], Awaitable[None]]


async def _nobody(_recipient: str, _sighting: Sighting) -> None:
    """Until `start`: nobody judges late canaries."""


class Relay:
    def __init__(self, store: Store, work: SharedWork, me: str, *, cleanup: bool) -> None:
        self.store = store
        self.work = work
        self.me = me
        self.cleanup = cleanup
        self.relayed: set[str] = set()  # tokens whose sighting came from another instance
        self._on_its_way: dict[str, str] = {}  # others' canaries our watchers look out for
        self._poller: asyncio.Task[None] | None = None
        self._pending: Pending = {}
        self._late: Late = _nobody

    async def seen_here(
        self,
        recipient: str,
        sighting: Sighting,
        watcher: Watcher | None,
    ) -> None:
        """Our watcher saw a canary nobody here waits for: another instance's, or a late one."""
        record = await self.store.by_token(sighting.token)
        if record is None or record.planned.recipient != recipient:
            return
        if record.state == "final":
            await self._late(recipient, sighting)
            return
        await self.work.record_sighting(sighting, self.me)
        log.info(
            "canary seen for another instance", token=sighting.token, sender=record.planned.instance
        )
        if self.cleanup and watcher is not None:
            try:
                await watcher.delete(sighting)
            except ImapError as exc:
                log.warning("cleanup failed; the daily sweep will retry", failure=exc.failure.kind)

    def start(self, pending: Pending, watchers: Watchers, late: Late) -> None:
        """`late`: the runner's judge of a canary found after its probe said missing."""
        self._pending, self._late = pending, late
        self._poller = asyncio.ensure_future(self._poll(pending, watchers))

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def catch_up(self, mailbox: str, watcher: Watcher) -> None:
        """Search a mailbox just taken over for the canaries on their way to it (after the
        watcher's first look: what lands later, the watcher sees)."""
        await watcher.wait_ready(READY_SECONDS)
        for token, _ in await self.work.on_their_way([mailbox]):
            try:
                found = await watcher.find(token)
            except ImapError as exc:
                log.warning("cannot search a mailbox taken over", failure=exc.failure.kind)
                return
            future = self._pending.get(token)
            if found is None:
                continue
            if future is not None and not future.done():
                future.set_result(found)
            elif future is None:
                await self.seen_here(mailbox, found, watcher)

    def took(self, token: str) -> bool:
        """Whether this token's sighting came from another instance (once per token)."""
        if token in self.relayed:
            self.relayed.discard(token)
            return True
        return False

    async def look(self, token: str) -> Sighting | None:
        """One read of `sightings` for this token (the last word before an IMAP search)."""
        found = await self.work.sightings([token])
        if found:
            self.relayed.add(token)
        return found[0] if found else None

    async def _poll(self, pending: Pending, watchers: Watchers) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            waiting = [token for token, future in pending.items() if not future.done()]
            try:
                found = await self.work.sightings(waiting)
                await self._look_out(pending, watchers)
            except Exception as exc:  # the database may blip; the deadline search still decides
                log.warning("cannot read sightings", error=str(exc).splitlines()[0])
                continue
            for sighting in found:
                future = pending.get(sighting.token)
                if future is not None and not future.done():
                    self.relayed.add(sighting.token)
                    future.set_result(sighting)

    async def _look_out(self, pending: Pending, watchers: Watchers) -> None:
        handed = dict(await self.work.on_their_way(sorted(watchers))) if watchers else {}
        for token, mailbox in handed.items():
            watcher = watchers.get(mailbox)
            if token not in pending and token not in self._on_its_way and watcher is not None:
                watcher.expect(token)
                self._on_its_way[token] = mailbox
        for token in set(self._on_its_way) - set(handed):
            if (watcher := watchers.get(self._on_its_way.pop(token))) is not None:
                watcher.stop_expecting(token)
