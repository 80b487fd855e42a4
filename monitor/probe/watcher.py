"""Watching one account's INBOX and spam folder for canaries.

One long-lived IMAP session per mailbox (probe/onesession.py): IDLE on INBOX where the server
offers it (renewed before servers drop idle clients at 30 minutes), polling otherwise, and the
spam folder watched from the same session through STATUS. New mail is found by FETCHing the
headers of new UIDs, not by SEARCH, which can lag behind delivery on big providers. Any error
drops the session; the task reconnects with exponential backoff and tells the caller through
`on_failure`. A spam folder that cannot be found is reported the same way, and looked for
again with that backoff, while INBOX is watched on. Explicit searches, deletions and sweeps
use their own short-lived session so they never disturb an IDLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

import structlog

from monitor.adapters.credentials import Credentials, credentials
from monitor.adapters.imap import ImapError, ImapSession
from monitor.config.schema import Account
from monitor.core.canary import TOKEN_HEADER, parse_token
from monitor.core.folders import Folder, choose_spam_folder
from monitor.core.imapwire import FetchedHeader
from monitor.core.models import Failure, Phase, Role, Sighting, utcnow
from monitor.core.receipt import parse_receipt
from monitor.core.received import message_id_of, top_received_at
from monitor.probe.lookout import Cadence, pause_before_look
from monitor.probe.onesession import FIRST_BACKOFF, INBOX, MAX_BACKOFF, Position, SessionWatch

Verify = Callable[[Message], str | None]
OnSighting = Callable[[Sighting], Any]  # may return an awaitable
OnFailure = Callable[[Failure], Any]

_REMEMBERED_TOKENS = 10_000
# The spam folder's STATUS with no canary awaited: for a canary that comes after its probe
# ended (then `late`). Each costs leaving and re-entering IDLE; every 15 s that was more CPU at
# 300 mailboxes than the looks saved (bench/scale.py), every 5 minutes it is ~1 per canary.
QUIET_SPAM_EVERY = 300.0
_CLOSE_GRACE = 5.0


class Watcher:
    """Sees canaries arrive in one account's INBOX and spam folder."""

    def __init__(
        self,
        account: Account,
        *,
        ssl_context: ssl.SSLContext,
        poll_interval: float,
        verify: Verify,
        on_sighting: OnSighting,
        on_failure: OnFailure,
        idle_renew: float = 25 * 60,
        login: Credentials | None = None,
        login_slots: asyncio.Semaphore | None = None,
        cadence: Cadence | None = None,
        quiet_spam_every: float = QUIET_SPAM_EVERY,
    ) -> None:
        if account.imap is None:
            raise ValueError(f"account {account.name!r} has no IMAP endpoint to watch")
        self.account = account
        self._ssl_context = ssl_context
        self.poll_interval = poll_interval
        self._verify = verify
        self._on_sighting = on_sighting
        self._on_failure = on_failure
        self.idle_renew = idle_renew
        self._quiet_spam_every = quiet_spam_every
        # None: the account's password; an xoauth2 account needs its token store (see runner).
        self._login = login or credentials(account, None)
        self._login_slots = login_slots or contextlib.nullcontext()
        self._log = structlog.get_logger(__name__).bind(account=account.name)
        self._task: asyncio.Task[None] | None = None
        self._up = {role: False for role in Role}
        self._failed = dict.fromkeys(Role, 0)  # failed tries in a row, per folder
        self.positions: dict[Role, Position] = {}
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._tried: set[Role] = set()  # folders watched or failed at least once
        self._changed = asyncio.Event()
        self.last_failure: Failure | None = None
        self._on_its_way: dict[str, float] = {}  # canary token -> hand-off (monotonic)
        self._awaited: set[str] = set()  # canary tokens awaited without the look-out
        self.wake = asyncio.Event()
        self._looked = 0.0
        self._cadence = cadence or Cadence()
        self._look_takes = 0.0  # the last look's round trip (seconds)
        # Our clock when the last full look began: what it did not show landed later.
        self.missed: dict[Role, datetime | None] = dict.fromkeys(Role)

    @property
    def connected(self) -> bool:
        """Both folders are watched (logged in, INBOX selected, the spam folder found)."""
        return self._task is not None and all(self._up.values())

    @property
    def failed_attempts(self) -> int:
        """Tries in a row that failed before watching, for the folder failing most."""
        return max(self._failed.values())

    # ------------------------------------------------------------ life cycle

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait
        """Wait until both folders are watched or have failed once; True when connected."""

        async def every_folder_tried() -> None:
            while len(self._tried) < len(Role):
                self._changed.clear()
                await self._changed.wait()

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await every_folder_tried()
        return self.connected

    def expect(self, token: str, look_out: bool = True) -> None:
        """A canary to this mailbox was just handed off: look for it without waiting for the
        server's push (see core.lookout), until `stop_expecting`. Without the look-out it is
        only awaited: the spam folder is asked every poll interval, not at the quiet pace."""
        if look_out:
            self._on_its_way[token] = time.monotonic()
        else:
            self._awaited.add(token)
        self.wake.set()  # also ends a quiet IDLE: the spam folder is asked more often now

    def stop_expecting(self, token: str) -> None:
        """The canary was seen, or its probe is over: back to waiting for the server's push."""
        self._on_its_way.pop(token, None)
        self._awaited.discard(token)

    @property
    def spam_every(self) -> float:
        """Seconds between STATUS questions to the spam folder outside the look-out's looks:
        the poll interval while a canary is awaited, else the quiet pace."""
        if self._on_its_way or self._awaited:
            return self.poll_interval
        return max(self.poll_interval, self._quiet_spam_every)

    def pause(self) -> float | None:
        """Seconds until the look-out's next look; None: nothing on its way needs one."""
        now = time.monotonic()
        ages = [now - handed_off for handed_off in self._on_its_way.values()]
        return pause_before_look(ages, now - self._looked, self._cadence, self._look_takes)

    def looked(self, began: float, took: float) -> None:
        self._looked, self._look_takes = began, took

    def retune(self, cadence: Cadence, poll_interval: float) -> None:
        """A reload's look-out cadence and poll interval; sessions and canaries on their way
        stay. Waits sized by the old ones are woken (an IDLE with nothing on its way is not)."""
        polls_changed = poll_interval != self.poll_interval
        self._cadence, self.poll_interval = cadence, poll_interval
        if self._on_its_way or polls_changed:
            self.wake.set()

    def _note_tried(self, role: Role) -> None:
        self._tried.add(role)
        self._changed.set()

    async def start(self) -> None:
        if self._task is None:
            self._tried.clear()
            name = f"watch {self.account.name}"
            self._task = asyncio.create_task(self._supervise(), name=name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------ the session

    async def _supervise(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            session: ImapSession | None = None
            try:
                session = await self._open()
                await SessionWatch(self, session, self._log).run()
            except ImapError as exc:
                await self._fail(exc.failure)
            except Exception as exc:  # a bug must not end the watch for good
                self._log.exception("watcher error")
                await self._fail(Failure("watcher_error", Phase.FETCH, True, repr(exc)))
            finally:
                if any(self._up.values()):
                    backoff = FIRST_BACKOFF  # it worked for a while: retry quickly
                self._up = dict.fromkeys(Role, False)
                if session is not None:
                    await session.close(_CLOSE_GRACE)
            self._log.info("reconnecting", in_seconds=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def watching(self, role: Role) -> None:
        """That folder is watched now."""
        if not self._up[role]:
            self._up[role] = True
            self._failed[role] = 0
        self._note_tried(role)

    async def consider(
        self,
        fetched: FetchedHeader,
        role: Role,
        folder: str,
        uidvalidity: int,
        detected_at: datetime,
    ) -> None:
        token = self._checked(fetched.headers)
        if token is None or token in self._reported:
            return
        self._reported[token] = None
        self.stop_expecting(token)
        if len(self._reported) > _REMEMBERED_TOKENS:
            self._reported.popitem(last=False)
        sighting = self._sighting(token, fetched, role, folder, uidvalidity, detected_at)
        sighting = replace(sighting, missed_at=self.missed[role])
        # The probe's verdict line says the same (token, folder, verdict): debug only.
        self._log.debug("canary seen", canary=token, role=role.value, uid=fetched.uid)
        await self._call(self._on_sighting, sighting)

    async def _fail(self, failure: Failure) -> None:
        """The session failed: both folders are unwatched until the next one is up."""
        for role in Role:
            # Counted before the callback reads it; a folder that was up starts the count again.
            self._failed[role] = 1 if self._up[role] else self._failed[role] + 1
            self._note_tried(role)
        await self._report(failure)

    async def spam_failed(self, failure: Failure) -> None:
        """The spam folder cannot be watched (INBOX still is)."""
        self._failed[Role.SPAM] = 1 if self._up[Role.SPAM] else self._failed[Role.SPAM] + 1
        self._up[Role.SPAM] = False
        self._note_tried(Role.SPAM)
        await self._report(failure)

    async def _report(self, failure: Failure) -> None:
        self.last_failure = failure
        self._log.warning(
            "cannot watch", kind=failure.kind, transient=failure.transient, message=failure.message
        )
        await self._call(self._on_failure, failure)

    async def _call(self, callback: Callable[[Any], Any], argument: Any) -> None:
        try:
            result = callback(argument)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the caller's bug must not kill the watch
            self._log.exception("callback failed", callback=getattr(callback, "__name__", "?"))

    # ------------------------------------------------------------ one-off looks

    async def _open(self) -> ImapSession:
        async with self._login_slots:  # held for connect, TLS and login only
            return await ImapSession.open(self.account.imap, self._login, self._ssl_context)

    def _checked(self, headers: Message) -> str | None:
        try:
            return self._verify(headers)
        except Exception:  # an odd message must not stop the watch
            self._log.exception("verify failed")
            return None

    @staticmethod
    def _sighting(
        token: str,
        fetched: FetchedHeader,
        role: Role,
        folder: str,
        uidvalidity: int,
        detected_at: datetime,
    ) -> Sighting:
        return Sighting(
            token=token,
            folder=folder,
            role=role,
            uid=fetched.uid,
            uidvalidity=uidvalidity,
            detected_at=detected_at,
            internal_date=fetched.internal_date,
            received_at=top_received_at(fetched.headers),
            message_id=message_id_of(fetched.headers),
            receipt=parse_receipt(fetched.headers),
        )

    async def _targets(self, session: ImapSession) -> list[tuple[Role, Folder | str | None, str]]:
        """INBOX and the spam folder (None with the reason when there is none)."""
        folders = await session.list_folders()
        spam, reason = choose_spam_folder(
            folders, self.account.spam_folder, self.account.spam_folder_hint
        )
        return [(Role.INBOX, INBOX, "INBOX"), (Role.SPAM, spam, reason)]

    async def find(self, token: str) -> Sighting | None:
        """Search INBOX, then the spam folder, for the canary with this token.

        Raises ImapError when it cannot look (including: no spam folder to look in).
        """
        session = await self._open()
        try:
            for role, folder, reason in await self._targets(session):
                if folder is None:
                    raise ImapError(
                        Failure("spam_folder_missing", Phase.IMAP_SELECT, False, reason)
                    )
                _, uidvalidity, _ = await session.select(folder)
                uids = await session.search_header(TOKEN_HEADER, token)
                detected_at = utcnow()
                for fetched in await session.fetch(uids):
                    if self._checked(fetched.headers) == token:
                        name = folder.name if isinstance(folder, Folder) else folder
                        return self._sighting(token, fetched, role, name, uidvalidity, detected_at)
            return None
        finally:
            await session.close(_CLOSE_GRACE)

    async def delete(self, sighting: Sighting) -> bool:
        """Delete that canary: only if the folder's UIDVALIDITY is unchanged and the message at
        that UID still verifies to the same token. True if it was removed."""
        log = self._log.bind(folder=sighting.folder, uid=sighting.uid)
        session = await self._open()
        try:
            _, uidvalidity, _ = await session.select(sighting.folder)
            if uidvalidity != sighting.uidvalidity:
                log.info("not deleting: UIDVALIDITY changed")
                return False
            fetched = await session.fetch([sighting.uid])
            if not fetched or self._checked(fetched[0].headers) != sighting.token:
                log.info("not deleting: that UID is no longer this canary")
                return False
            return await session.delete([sighting.uid])
        finally:
            await session.close(_CLOSE_GRACE)

    async def sweep(self, older_than_seconds: float) -> int:
        """Delete verified canaries sent more than `older_than_seconds` ago; how many went."""
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        removed = 0
        session = await self._open()
        try:
            for _, folder, reason in await self._targets(session):
                if folder is None:
                    self._log.warning("sweep skips the spam folder", reason=reason)
                    continue
                await session.select(folder)
                old = []
                for fetched in await session.fetch(await session.search_header(TOKEN_HEADER, "")):
                    token = parse_token(self._checked(fetched.headers) or "")
                    if token is not None and token.sent_at < cutoff:
                        old.append(fetched.uid)
                if old and await session.delete(old):
                    removed += len(old)
                elif old:
                    self._log.warning("no UIDPLUS: old canaries only flagged \\Deleted")
        finally:
            await session.close(_CLOSE_GRACE)
        return removed
