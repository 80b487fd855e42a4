"""IMAP sessions over aioimaplib: the only module that imports it.

aioimaplib is used at its protocol level. We connect ourselves (verified TLS, and STARTTLS,
which it lacks: imap_starttls.py) and wrap every command in one guard: a timeout, and a race
against the connection dropping (aioimaplib fails nothing pending when it does). After a
timeout, BYE or lost connection the session is dead for good; callers drop it and open a new one.

Bounds use `asyncio.timeout`: Python 3.11's `wait_for` swallows a cancellation that arrives as
the awaited command completes, and a cancelled watcher then runs on forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import aioimaplib

from monitor.adapters.credentials import Credentials
from monitor.adapters.imap_errors import Failures, ImapError, status_text
from monitor.adapters.imap_starttls import StartTlsRefused, upgrade
from monitor.adapters.oauth import OAuthError, TokenSource
from monitor.core import imapwire
from monitor.core.folders import Folder, parse_list_lines, quote, quote_mailbox
from monitor.core.imapwire import FetchedHeader
from monitor.core.models import Failure, Phase, Security

__all__ = ["ImapError", "ImapSession"]

# aioimaplib logs every line it sends at DEBUG, the LOGIN line (with the password) included.
_library_log = logging.getLogger("aioimaplib")
if _library_log.level < logging.INFO:
    _library_log.setLevel(logging.INFO)

_T = TypeVar("_T")
_FEED_BYTES = 4096  # see _Protocol
_CAPABILITY_SETS: dict[frozenset[str], frozenset[str]] = {}
_XOAUTH2_TIMEOUT = 20.0  # AUTHENTICATE hung forever on refused tokens (see _continuation)
_EXISTS = re.compile(rb"\* \d+ EXISTS")
_OPENING = frozenset({"SELECT", "EXAMINE"})


class _Protocol(aioimaplib.IMAP4ClientProtocol):
    # An EXISTS announced for the open folder since the session last said so (see `news`).
    news = False

    def data_received(self, d: bytes) -> None:
        # aioimaplib recurses once per line of a read (its issue #118): a LIST of a few thousand
        # folders in one 64 KiB read overflows the stack. It copes with any split (TCP splits
        # anywhere), so hand it small pieces.
        for start in range(0, len(d), _FEED_BYTES):
            super().data_received(d[start : start + _FEED_BYTES])

    def _continuation(self, line: bytes) -> None:
        # A refused XOAUTH2 token gets "+ <error>"; NO follows our empty answer (aioimaplib: none).
        pending = self.pending_sync_command
        if pending is not None and pending.name == "AUTHENTICATE" and self.transport is not None:
            self.transport.write(b"\r\n")
            return
        super()._continuation(line)

    def _untagged_response(self, line: bytes) -> Any:
        # Seen here, in the order the lines came, whatever command they reach: aioimaplib hands
        # an EXISTS to a pending NOOP or IDLE and drops it during STATUS or UID FETCH, and the
        # server never repeats it. A SELECT's or EXAMINE's own EXISTS is its folder's size.
        pending = self.pending_sync_command
        if _EXISTS.match(line) and (pending is None or pending.name not in _OPENING):
            self.news = True
        return super()._untagged_response(line)


class ImapSession:
    """One logged-in IMAP connection. Open with `await ImapSession.open(...)`."""

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint
        self._timeout: float = endpoint.timeout
        self._protocol = _Protocol(asyncio.get_running_loop(), self._on_lost)
        self._lost = asyncio.Event()
        self._dead: Failure | None = None
        self._failures = Failures(f"{endpoint.host}:{endpoint.port}")  # secrets scrubbed
        self._phase = Phase.IMAP_CONNECT
        self.capabilities: frozenset[str] = frozenset()
        self.uidvalidity: int | None = None

    @classmethod
    async def open(
        cls, endpoint: Any, login: Credentials, ssl_context: ssl.SSLContext
    ) -> ImapSession:
        """Connect as `endpoint.security` says (never falling back to plaintext) and log in
        (XOAUTH2 with the access token `login.oauth` gives, else LOGIN)."""
        session = cls(endpoint)
        session._failures.secrets.append(login.password)
        try:
            if endpoint.security is Security.STARTTLS:
                await session._guard(Phase.IMAP_TLS, "STARTTLS", session._starttls(ssl_context))
            else:
                tls = ssl_context if endpoint.security is Security.TLS else None
                connect = asyncio.get_running_loop().create_connection(
                    lambda: session._protocol, endpoint.host, endpoint.port, ssl=tls
                )
                await session._guard(Phase.IMAP_CONNECT, "connect", connect)
                hello = session._protocol.wait("AUTH|NONAUTH")
                await session._guard(Phase.IMAP_CONNECT, "greeting", hello)
            await session._login(login.username, login.password, login.oauth)
        except BaseException:
            await session._drop()
            raise
        return session

    async def _starttls(self, ssl_context: ssl.SSLContext) -> None:
        endpoint = self._endpoint
        try:
            tls = await upgrade(endpoint.host, endpoint.port, self._protocol, ssl_context)
        except StartTlsRefused as exc:
            raise self._error(exc.kind, exc.phase, str(exc), exc.transient) from None
        self._protocol.connection_made(tls)
        self._protocol.state = aioimaplib.NONAUTH  # the greeting was had before TLS
        await self._protocol.capability()  # only what the server says under TLS counts

    async def _login(self, username: str, password: str, oauth: TokenSource | None) -> None:
        if self._protocol.state == aioimaplib.NONAUTH:
            if oauth is not None:
                what, response = "XOAUTH2 login", await self._xoauth2(username, oauth)
            elif "LOGINDISABLED" in self._protocol.capabilities:
                raise self._error("auth_failed", Phase.IMAP_AUTH, "server disables LOGIN", False)
            else:
                what, login = "login", self._protocol.login(quote(username), password)
                response = await self._guard(Phase.IMAP_AUTH, "LOGIN", login)
            if response.result != "OK":
                text = status_text(response)
                if "[UNAVAILABLE]" in text.upper():
                    raise self._error("server_unavailable", Phase.IMAP_AUTH, text)
                raise self._error("auth_failed", Phase.IMAP_AUTH, f"{what} refused: {text}", False)
        # The LOGIN reply's capability list holds junk ("Logged", "in", "MOVE]"): ask again.
        await self._guard(Phase.IMAP_AUTH, "CAPABILITY", self._protocol.capability())
        words = frozenset(c.upper() for c in self._protocol.capabilities)
        # One shared set per server: 2,000 sessions would otherwise hold 2,000 copies of it.
        if len(_CAPABILITY_SETS) < 64:
            words = _CAPABILITY_SETS.setdefault(words, words)
        self.capabilities = words
        self._protocol.capabilities = words  # type: ignore[assignment]  # only read or replaced

    async def _xoauth2(self, username: str, oauth: TokenSource) -> Any:
        """AUTHENTICATE XOAUTH2. A token refused with NO before its expiry was withdrawn early
        (a password change, an admin): it is forgotten and a freshly refreshed one tried once."""
        token, response = await self._authenticate(username, oauth)
        if response.result == "NO" and "[UNAVAILABLE]" not in status_text(response).upper():
            oauth.forget(token)
            token, response = await self._authenticate(username, oauth)
        return response

    async def _authenticate(self, username: str, oauth: TokenSource) -> tuple[str, Any]:
        try:
            token = await oauth.access_token()
        except OAuthError as exc:
            raise ImapError(exc.failure(Phase.IMAP_AUTH)) from None
        self._failures.secrets.append(token)
        login = self._protocol.xoauth2(username, token)
        limit = min(self._timeout, _XOAUTH2_TIMEOUT)
        return token, await self._guard(Phase.IMAP_AUTH, "XOAUTH2 LOGIN", login, limit)

    # ------------------------------------------------------------ the guard around every call

    def _failure(self, kind: str, phase: Phase, message: str, transient: bool = True) -> Failure:
        return self._failures.failure(kind, phase, message, transient)

    def _error(self, kind: str, phase: Phase, message: str, transient: bool = True) -> ImapError:
        return self._failures.error(kind, phase, message, transient)

    def _on_lost(self, exc: Exception | None) -> None:
        if self._dead is None and isinstance(exc, ssl.SSLError):  # a STARTTLS handshake
            self._dead = self._failures.tls(exc)
        elif self._dead is None:
            reason = f": {exc}" if exc else ""
            self._dead = self._failure("connection_lost", self._phase, f"connection closed{reason}")
        self._lost.set()

    def _kill(self, failure: Failure | None) -> ImapError:
        if self._dead is None:
            self._dead = failure or self._failure("connection_lost", self._phase, "session closed")
        if self._protocol.transport is not None:
            self._protocol.transport.close()
        return ImapError(self._dead)

    @property
    def alive(self) -> bool:
        return self._dead is None

    async def _or_lost(self, work: Awaitable[_T]) -> _T:
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        raise self._kill(None)  # the connection went; _on_lost said why

    async def _guard(
        self, phase: Phase, what: str, work: Awaitable[_T], limit: float | None = None
    ) -> _T:
        """Run one command; any timeout, lost connection or library error kills the session."""
        if self._dead is not None:
            if asyncio.iscoroutine(work):
                work.close()
            raise ImapError(self._dead)
        self._phase = phase
        limit = self._timeout if limit is None else limit
        try:
            async with asyncio.timeout(limit):
                return await self._or_lost(work)
        except ImapError as exc:
            raise self._kill(exc.failure) from None
        except (TimeoutError, aioimaplib.CommandTimeout):
            failure = self._failure("timeout", phase, f"{what}: no answer within {limit:g} s")
        except ssl.SSLError as exc:
            failure = self._failures.tls(exc)
        except (aioimaplib.AioImapException, ValueError) as exc:
            failure = self._failure("protocol_error", phase, f"{what}: {exc}")
        except OSError as exc:
            kind = "connect_failed" if phase is Phase.IMAP_CONNECT else "connection_lost"
            failure = self._failure(kind, phase, f"{what}: {exc}")
        raise self._kill(failure)

    async def _command(self, phase: Phase, what: str, work: Awaitable[Any], kind: str) -> Any:
        response = await self._guard(phase, what, work)
        if any(bytes(line).startswith(b"BYE") for line in response.lines):
            raise self._kill(self._failure("connection_lost", phase, f"{what}: server said BYE"))
        if response.result != "OK":
            raise self._error(kind, phase, f"{what}: {response.result} {status_text(response)}")
        return response

    # ------------------------------------------------------------ commands

    @property
    def can_idle(self) -> bool:
        return "IDLE" in self.capabilities

    @property
    def tls_version(self) -> str | None:
        """The TLS version protecting the connection ("TLSv1.3"), or None in plaintext."""
        transport = self._protocol.transport
        tls = transport.get_extra_info("ssl_object") if transport is not None else None
        return tls.version() if tls is not None else None

    async def list_folders(self) -> list[Folder]:
        """Every folder with its flags (a plain LIST shows \\Junk whatever CAPABILITY says)."""
        work = self._protocol.simple_command("LIST", '""', '"*"')
        response = await self._command(Phase.IMAP_SELECT, "LIST", work, "protocol_error")
        return parse_list_lines(response.lines[:-1])

    async def select(self, folder: Folder | str) -> tuple[int, int, int]:
        """SELECT a folder (a Folder, or a decoded name): (exists, uidvalidity, uidnext)."""
        return await self._open_folder("SELECT", folder)

    async def examine(self, folder: Folder | str) -> tuple[int, int, int]:
        """EXAMINE (SELECT read-only) a folder: (exists, uidvalidity, uidnext)."""
        return await self._open_folder("EXAMINE", folder)

    async def _open_folder(self, verb: str, folder: Folder | str) -> tuple[int, int, int]:
        self._protocol.news = False  # what was announced concerned the folder left
        if verb == "SELECT":
            work = self._protocol.select(quote_mailbox(folder))
        else:
            work = self._protocol.simple_command(verb, quote_mailbox(folder))
        response = await self._command(Phase.IMAP_SELECT, verb, work, "select_failed")
        count, validity, uidnext = imapwire.parse_opened(response.lines)
        if validity is None:
            raise self._error("protocol_error", Phase.IMAP_SELECT, "no UIDVALIDITY")
        self.uidvalidity = validity
        if uidnext is not None:
            return count, validity, uidnext
        # Some servers omit UIDNEXT: one past the highest UID will do.
        last = await self._fetch("*") if count else []
        return count, validity, max((h.uid for h in last), default=0) + 1

    async def status(self, folder: Folder | str) -> tuple[int, int]:
        """STATUS of a folder that is not the open one: (uidvalidity, uidnext). A folder that
        cannot be asked about raises `select_failed` without ending the session."""
        work = self._protocol.simple_command(
            "STATUS", quote_mailbox(folder), "(UIDNEXT UIDVALIDITY)"
        )
        response = await self._command(Phase.IMAP_SELECT, "STATUS", work, "select_failed")
        found = imapwire.parse_status(response.lines[:-1])
        if found is None:
            message = f"STATUS without UIDNEXT and UIDVALIDITY: {response.lines[:1]!r:.200}"
            raise self._error("protocol_error", Phase.IMAP_SELECT, message)
        return found

    def take_news(self) -> bool:
        """Whether the server announced new mail (EXISTS) in the open folder since the last
        SELECT, EXAMINE or call: in a push, a NOOP's answer or any other command's."""
        news, self._protocol.news = self._protocol.news, False
        return news

    async def _fetch(self, uid_set: str) -> list[FetchedHeader]:
        parts = "(UID INTERNALDATE BODY.PEEK[HEADER])"  # PEEK: never mark the user's mail read
        work = self._protocol.fetch(uid_set, parts, by_uid=True)
        response = await self._command(Phase.FETCH, "FETCH", work, "protocol_error")
        return imapwire.parse_fetch(response.lines)

    async def fetch_since(self, uid: int) -> list[FetchedHeader]:
        """Headers of messages with UID >= uid, oldest first."""
        fetched = await self._fetch(f"{max(uid, 1)}:*")
        # "n:*" always includes the highest UID, even when it is below n.
        return sorted((h for h in fetched if h.uid >= uid), key=lambda h: h.uid)

    async def fetch(self, uids: Iterable[int]) -> list[FetchedHeader]:
        fetched: list[FetchedHeader] = []
        for uid_set in imapwire.uid_batches(uids):
            fetched += await self._fetch(uid_set)
        return sorted(fetched, key=lambda h: h.uid)

    async def search_header(self, name: str, value: str) -> list[int]:
        """UIDs whose header `name` contains `value` ("" = has the header at all)."""
        work = self._protocol.search("HEADER", quote(name), quote(value), charset=None, by_uid=True)
        response = await self._command(Phase.SEARCH, "SEARCH", work, "protocol_error")
        words = b" ".join(bytes(line) for line in response.lines[:-1]).split()
        return sorted({int(word) for word in words if word.isdigit()})

    async def noop(self) -> None:
        work = self._protocol.simple_command("NOOP")
        await self._command(Phase.FETCH, "NOOP", work, "protocol_error")

    async def delete(self, uids: Iterable[int]) -> bool:
        """Flag these UIDs \\Deleted and expunge exactly them; True if expunged.

        Without UIDPLUS they stay flagged only: a plain EXPUNGE would also remove whatever else
        the user had flagged.
        """
        batches = imapwire.uid_batches(uids)
        for uid_set in batches:
            work = self._protocol.store(uid_set, "+FLAGS.SILENT", "(\\Deleted)", by_uid=True)
            await self._command(Phase.FETCH, "STORE", work, "protocol_error")
        if "UIDPLUS" not in self.capabilities:
            return False
        for uid_set in batches:
            work = self._protocol.expunge(uid_set, by_uid=True)
            await self._command(Phase.FETCH, "UID EXPUNGE", work, "protocol_error")
        return bool(batches)

    async def idle(self, timeout: float, wake: asyncio.Event | None = None) -> bool:  # noqa: ASYNC109
        """IDLE up to `timeout` seconds or until `wake` is set; True as soon as the server
        pushes new mail (EXISTS)."""
        if not self.can_idle:
            raise self._error("protocol_error", Phase.FETCH, "server has no IDLE")
        protocol = self._protocol
        while not protocol.idle_queue.empty():  # pushes from an earlier IDLE: already fetched
            protocol.idle_queue.get_nowait()
        command = asyncio.ensure_future(protocol.idle())
        # The continuation "+ idling" or a refusal, whichever comes first (aioimaplib's own
        # idle_start would wait forever if the server answered BYE).
        acked = asyncio.ensure_future(protocol.wait_for_idle_response())
        try:
            started = asyncio.wait({command, acked}, return_when=asyncio.FIRST_COMPLETED)
            await self._guard(Phase.FETCH, "IDLE", started)
            if command.done():
                response = command.result()
                message = f"IDLE refused: {response.result} {status_text(response)}"
                raise self._error("protocol_error", Phase.FETCH, message)
            try:
                async with asyncio.timeout(timeout):
                    pushed = await self._or_lost(self._new_mail(wake))
            except TimeoutError:
                pushed = False
            protocol.idle_done()
            await self._guard(Phase.FETCH, "IDLE DONE", command)
            return pushed
        finally:
            acked.cancel()
            if not command.done():
                command.cancel()

    async def _new_mail(self, wake: asyncio.Event | None) -> bool:
        while True:
            get = asyncio.ensure_future(self._protocol.idle_queue.get())
            woken = asyncio.ensure_future(wake.wait() if wake else asyncio.Event().wait())
            try:
                await asyncio.wait({get, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                get.cancel()  # a cancelled Queue.get takes nothing off the queue
            if not get.done() or get.cancelled():
                return False  # woken: the caller wants to look now
            pushed = [bytes(line) for line in get.result()]
            if any(line.startswith(b"BYE") for line in pushed):
                raise self._kill(self._failure("connection_lost", Phase.FETCH, "server said BYE"))
            if any(re.match(rb"\d+ EXISTS", line) for line in pushed):
                return True

    async def close(self, grace: float = 10.0) -> None:
        """LOGOUT (waiting at most `grace` s) and drop the connection; fine on a dead session."""
        if self._dead is None and self._protocol.transport is not None:
            try:
                if self._protocol.has_pending_idle_command():  # we were cancelled mid-IDLE
                    self._protocol.idle_done()
                limit = min(self._timeout, grace)
                async with asyncio.timeout(limit):
                    await self._or_lost(self._protocol.logout())
            except Exception:  # leaving anyway: a failed LOGOUT changes nothing
                pass
        await self._drop()

    async def _drop(self) -> None:
        connected = self._protocol.transport is not None and not self._lost.is_set()
        self._kill(None)
        if connected:  # let the TLS close finish, or the socket outlives a closing loop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._lost.wait()
