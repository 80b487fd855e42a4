"""One IMAP session watching a mailbox's INBOX and its spam folder (see probe/watcher.py).

INBOX is SELECTed and the session IDLEs there (or polls, on a server without IDLE). The spam
folder is watched from the same session with `STATUS (UIDNEXT UIDVALIDITY)`: at connect, on
every look while a canary is on its way, at least every poll interval while one is awaited
(past the look-out's window too), and every `Watcher.spam_every` otherwise (leaving IDLE for
it; a STATUS every 15 s cost more CPU than all the looks saved). Only when its UIDNEXT moved is
it EXAMINEd, the new messages' headers fetched, and INBOX SELECTed again; what reached INBOX
meanwhile is read from its position, as after an outage. One session instead of one per
folder halves the TLS sessions a mailbox holds.

A look at INBOX is a NOOP; the UID FETCH follows only when the server announced new mail (an
EXISTS, in the NOOP's answer, an IDLE push or any other answer: see adapters/imap.py). A
NOOP, like a STATUS, shows the folder as it is when the server answers it (Dovecot syncs on
both; its IDLE pushes come 0.5 s late), so a look that shows nothing new bounds the arrival of
whatever is seen later: `missed`, per folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from monitor.adapters.imap import ImapError, ImapSession
from monitor.config.schema import Account
from monitor.core.folders import Folder, choose_spam_folder
from monitor.core.imapwire import FetchedHeader
from monitor.core.models import Failure, Phase, Role, utcnow
from monitor.probe.lookout import worth_idling

INBOX = "INBOX"
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
_LOOK_SLACK = 0.01  # a look due this soon is due now


@dataclass(frozen=True, slots=True)
class Position:
    """How far a folder has been read; survives reconnects so an outage loses no mail."""

    folder: str
    uidvalidity: int
    next_uid: int


class Host(Protocol):
    """What the session needs from its Watcher (which outlives the session)."""

    account: Account
    positions: dict[Role, Position]
    # Our clock when the last look that showed the folder whole began: what it did not show
    # landed later.
    missed: dict[Role, datetime | None]
    wake: asyncio.Event

    @property
    def poll_interval(self) -> float: ...

    @property
    def spam_every(self) -> float: ...

    @property
    def idle_renew(self) -> float: ...

    def pause(self) -> float | None: ...

    def looked(self, began: float, took: float) -> None: ...

    def watching(self, role: Role) -> None: ...

    async def spam_failed(self, failure: Failure) -> None: ...

    async def consider(
        self, fetched: FetchedHeader, role: Role, folder: str, uidvalidity: int, at: datetime
    ) -> None: ...


class SessionWatch:
    """Runs one logged-in session until it fails (the Watcher reconnects)."""

    def __init__(self, host: Host, session: ImapSession, log: Any) -> None:
        self.host = host
        self.session = session
        self.log = log
        self.spam: Folder | None = None
        self.spam_asked = 0.0  # monotonic: the last STATUS of the spam folder
        self.spam_retry_at = 0.0  # monotonic: when a missing spam folder is looked for again
        self.spam_backoff = FIRST_BACKOFF
        self.inbox_looked = time.monotonic()

    async def run(self) -> None:
        await self._find_spam()
        await self._select_inbox()
        self.host.watching(Role.INBOX)
        self.log.info(
            "watching",
            spam_folder=self.spam.name if self.spam else None,
            idle=self.session.can_idle,
            next_uid=self.host.positions[Role.INBOX].next_uid,
        )
        if self.spam is not None:
            await self._ask_spam()
        pushed = False
        while True:
            self.host.wake.clear()  # a hand-off from here on wakes the wait below
            await self._round(pushed)
            pushed = await self._wait()

    # ------------------------------------------------------------ one round

    async def _round(self, pushed: bool) -> None:
        now = time.monotonic()
        pause = self.host.pause()
        lookout = pause is not None and pause < _LOOK_SLACK
        polled = not self.session.can_idle and now - self.inbox_looked >= self._poll() - _LOOK_SLACK
        looking = lookout or polled
        noop_took = status_took = 0.0
        synced: datetime | None = None
        if looking:
            self.inbox_looked = began = time.monotonic()
            synced = utcnow()  # a push shows the folder as of an unknown moment; a NOOP, now
            await self.session.noop()
            noop_took = time.monotonic() - began
        news = self.session.take_news()  # cleared before the fetch, which shows at least it
        if pushed or news:
            await self._read_inbox()
        if synced is not None:
            self.host.missed[Role.INBOX] = synced
        # A look for canaries that INBOX has just shown (all that were on their way) need not
        # ask the spam folder; the poll below still does when due.
        looking = polled or (lookout and self.host.pause() is not None)
        if self.spam is None and now >= self.spam_retry_at - _LOOK_SLACK:
            await self._find_spam()
            looking = looking or self.spam is not None  # its position, at once
        if self.spam is not None and (
            looking or now - self.spam_asked >= self.host.spam_every - _LOOK_SLACK
        ):
            asked = time.monotonic()
            await self._ask_spam()
            status_took = time.monotonic() - asked
        if synced is not None:
            # The window of either folder runs from the start of its command in the look that
            # missed a canary to the answer of the one that saw it.
            self.host.looked(now, max(noop_took, status_took))

    def _poll(self) -> float:
        return self.host.poll_interval  # read each time: a reload may change it

    async def _wait(self) -> bool:
        """Until the next look, spam question, push or hand-off; True when pushed."""
        now = time.monotonic()
        pause = self.host.pause()
        if pause is not None and pause < _LOOK_SLACK:
            return False  # overdue: an IDLE now would end at once
        due = [self.spam_asked + self.host.spam_every if self.spam else self.spam_retry_at]
        if not self.session.can_idle:
            due.append(self.inbox_looked + self._poll())
        rest = max(min(due) - now, 0.0)
        if pause is not None:
            rest = min(rest, pause)
        if rest < _LOOK_SLACK or self.host.wake.is_set():  # a hand-off during the round
            return False
        if self.session.can_idle and worth_idling(rest):
            return await self.session.idle(min(rest, self.host.idle_renew), wake=self.host.wake)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rest):
                await self.host.wake.wait()
        return False

    # ------------------------------------------------------------ INBOX

    async def _select_inbox(self) -> None:
        """SELECT INBOX and read what arrived since its position (an outage, a spam read)."""
        synced = utcnow()
        _, uidvalidity, uidnext = await self.session.select(INBOX)
        known = self.host.positions.get(Role.INBOX)
        if known is not None and known.uidvalidity == uidvalidity:
            next_uid = known.next_uid
        else:
            next_uid = uidnext  # other UIDs: an earlier look's bound means nothing for them
            self.host.missed[Role.INBOX] = None
        self.host.positions[Role.INBOX] = Position(INBOX, uidvalidity, next_uid)
        if uidnext > next_uid:
            await self._read_inbox()
        self.host.missed[Role.INBOX] = synced

    async def _read_inbox(self) -> None:
        position = self.host.positions[Role.INBOX]
        self.host.positions[Role.INBOX] = await self._read(Role.INBOX, position)

    async def _read(self, role: Role, position: Position) -> Position:
        """Fetch the open folder's messages from the position on; the position after them."""
        detected_at = utcnow()
        next_uid = position.next_uid
        for fetched in await self.session.fetch_since(next_uid):
            next_uid = max(next_uid, fetched.uid + 1)
            await self.host.consider(
                fetched, role, position.folder, position.uidvalidity, detected_at
            )
        return Position(position.folder, position.uidvalidity, next_uid)

    # ------------------------------------------------------------ the spam folder

    async def _find_spam(self) -> None:
        account = self.host.account
        folder, reason = choose_spam_folder(
            await self.session.list_folders(), account.spam_folder, account.spam_folder_hint
        )
        if folder is None:
            await self._spam_lost(Failure("spam_folder_missing", Phase.IMAP_SELECT, False, reason))
            return
        self.log.info("spam folder chosen", imap_folder=folder.name, reason=reason)
        self.spam = folder

    async def _spam_lost(self, failure: Failure) -> None:
        """The spam folder cannot be watched: said, and looked for again later (LIST), with
        the backoff a reconnect would have; INBOX is watched on meanwhile."""
        self.spam = None
        self.spam_retry_at = time.monotonic() + self.spam_backoff
        self.spam_backoff = min(self.spam_backoff * 2, MAX_BACKOFF)
        await self.host.spam_failed(failure)

    async def _ask_spam(self) -> None:
        """STATUS of the spam folder; its new messages read when its UIDNEXT moved."""
        spam = self.spam
        assert spam is not None
        self.spam_asked = time.monotonic()
        synced = utcnow()
        try:
            uidvalidity, uidnext = await self.session.status(spam)
        except ImapError as exc:
            if not self.session.alive or exc.failure.kind != "select_failed":
                raise
            await self._spam_lost(exc.failure)
            return
        self.spam_backoff = FIRST_BACKOFF
        self.host.watching(Role.SPAM)
        known = self.host.positions.get(Role.SPAM)
        if known is None or (known.folder, known.uidvalidity) != (spam.name, uidvalidity):
            # Other UIDs (or a first look): from here on.
            self.host.positions[Role.SPAM] = Position(spam.name, uidvalidity, uidnext)
        elif uidnext > known.next_uid:
            await self._read_spam(spam, known)
            return
        self.host.missed[Role.SPAM] = synced

    async def _read_spam(self, spam: Folder, known: Position) -> None:
        try:
            synced = utcnow()
            _, uidvalidity, uidnext = await self.session.examine(spam)
            if uidvalidity == known.uidvalidity:
                self.host.positions[Role.SPAM] = await self._read(Role.SPAM, known)
            else:  # changed between STATUS and EXAMINE
                self.host.positions[Role.SPAM] = Position(spam.name, uidvalidity, uidnext)
            self.host.missed[Role.SPAM] = synced
        except ImapError as exc:
            if not self.session.alive or exc.failure.kind != "select_failed":
                raise
            await self._spam_lost(exc.failure)
        # A failed EXAMINE leaves no folder open either.
        await self._select_inbox()
