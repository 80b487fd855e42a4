"""The IMAP adapter against the harness's real Dovecot (and two tiny misbehaving servers)."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.policy import SMTP

import pytest
import trustme

from monitor.adapters.credentials import Credentials
from monitor.adapters.imap import ImapError, ImapSession
from monitor.adapters.tls import client_context, trim_read_buffers
from monitor.config.schema import Endpoint
from monitor.core.folders import choose_spam_folder
from monitor.core.models import Phase, Security, utcnow
from monitor.harness.mailstack import MailStack

pytestmark = pytest.mark.mailstack


def _endpoint(stack: MailStack, security: Security, timeout: float = 10.0) -> Endpoint:
    port = {Security.TLS: stack.imaps_port, Security.STARTTLS: stack.imap_port}
    return Endpoint(
        host=stack.host,
        port=port.get(security, stack.imap_port),
        security=security,
        timeout=timeout,
    )


async def _open(stack: MailStack, user: str, security: Security = Security.TLS) -> ImapSession:
    account = stack.users[user]
    return await ImapSession.open(
        _endpoint(stack, security),
        Credentials(account.email, account.password),
        client_context([stack.ca_file]),
    )


def _message(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = subject
    message["X-Test-Marker"] = subject
    message.set_content("test message\n")
    return message.as_bytes(policy=SMTP)


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
async def test_connects_verified_and_reads_clean_capabilities(
    mailstack: MailStack, security: Security
) -> None:
    session = await _open(mailstack, "bob", security)
    try:
        assert session.tls_version is not None and session.tls_version.startswith("TLSv1.")
        assert {"IMAP4REV1", "IDLE", "UIDPLUS"} <= session.capabilities
        # Dovecot's LOGIN reply "[CAPABILITY … MOVE] Logged in" must not leak tokens.
        assert not {c for c in session.capabilities if "[" in c or "]" in c}
        assert not {"LOGGED", "IN"} & session.capabilities
        _, uidvalidity, uidnext = await session.select("INBOX")
        assert uidvalidity > 0 and uidnext >= 1
    finally:
        await session.close()
    assert not session.alive


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
async def test_untrusted_certificate_is_a_permanent_tls_failure(
    mailstack: MailStack, security: Security
) -> None:
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)  # trusts some CA, not the stack's
    bob = mailstack.users["bob"]
    login = Credentials(bob.email, bob.password)
    with pytest.raises(ImapError) as caught:
        await ImapSession.open(_endpoint(mailstack, security), login, stranger)
    failure = caught.value.failure
    assert (failure.kind, failure.phase, failure.transient) == ("tls_failed", Phase.IMAP_TLS, False)
    assert "certificate" in failure.message or "issuer" in failure.message
    assert bob.password not in str(caught.value)


async def test_wrong_password_is_auth_failed_fast(mailstack: MailStack) -> None:
    bob = mailstack.users["bob"]
    wrong = bob.password + "-not"
    started = time.monotonic()
    with pytest.raises(ImapError) as caught:
        await ImapSession.open(
            _endpoint(mailstack, Security.TLS),
            Credentials(bob.email, wrong),
            client_context([mailstack.ca_file]),
        )
    assert time.monotonic() - started < 2.0
    failure = caught.value.failure
    assert (failure.kind, failure.phase, failure.transient) == (
        "auth_failed",
        Phase.IMAP_AUTH,
        False,
    )
    assert wrong not in str(caught.value) and wrong not in failure.message


async def test_lists_decoded_cyrillic_spam_folder_with_junk_flag(mailstack: MailStack) -> None:
    session = await _open(mailstack, "dmitri", Security.STARTTLS)
    try:
        folders = {f.name: f for f in await session.list_folders()}
        assert "\\Junk" in folders["Спам"].flags
        assert folders["Спам"].raw == "&BCEEPwQwBDw-"
        chosen, _ = choose_spam_folder(list(folders.values()), override=None, hint=None)
        assert chosen == folders["Спам"]
        await session.select(chosen)  # the raw name goes back on the wire
    finally:
        await session.close()


async def test_yahoo_shape_spam_folder_found_by_name(mailstack: MailStack) -> None:
    session = await _open(mailstack, "yuki")
    try:
        folders = await session.list_folders()
    finally:
        await session.close()
    assert not any("\\Junk" in f.flags for f in folders)
    chosen, reason = choose_spam_folder(folders, override=None, hint=None)
    assert chosen is not None and chosen.name == "Bulk Mail"
    assert "name" in reason


async def test_fetch_search_idle_and_delete_only_what_was_asked(mailstack: MailStack) -> None:
    folder = "Junk"  # bob's; nothing is delivered there by other tests
    session = await _open(mailstack, "bob")
    try:
        await asyncio.to_thread(mailstack.append, "bob", folder, _message("already there"))
        exists, uidvalidity, uidnext = await session.select(folder)
        assert exists >= 1
        # "n:*" returns the last message even when its UID is below n: none may come back.
        assert await session.fetch_since(uidnext) == []
        assert await session.idle(0.2) is False  # nothing pushed: the period just ends

        mark = uuid.uuid4().hex
        idling = asyncio.create_task(session.idle(30))
        subjects = [f"keep {mark}", f"drop {mark}", f"keep too {mark}"]
        for subject in subjects:
            await asyncio.to_thread(mailstack.append, "bob", folder, _message(subject))
        assert await asyncio.wait_for(idling, 10) is True

        fetched = await session.fetch_since(uidnext)
        assert [str(f.headers["Subject"]) for f in fetched] == subjects
        assert all(f.uid >= uidnext for f in fetched)
        for item in fetched:
            assert item.internal_date is not None and item.internal_date.tzinfo is not None
            assert abs((utcnow() - item.internal_date).total_seconds()) < 60
        uids = await session.search_header("X-Test-Marker", f"drop {mark}")
        assert uids == [fetched[1].uid]

        assert await session.delete(uids) is True
        left = await session.search_header("X-Test-Marker", mark)
        assert left == [fetched[0].uid, fetched[2].uid]
        assert session.uidvalidity == uidvalidity
    finally:
        await session.close()


async def test_a_wake_ends_idle_cleanly_and_a_look_of_our_own_sees_new_mail(
    mailstack: MailStack,
) -> None:
    # The watcher's lookout: it leaves IDLE when a canary is handed off and looks for itself.
    session = await _open(mailstack, "dmitri")
    try:
        _, _, uidnext = await session.select("INBOX")
        wake = asyncio.Event()
        idling = asyncio.create_task(session.idle(300, wake=wake))
        wake.set()
        assert await asyncio.wait_for(idling, 10) is False  # woken, not pushed, long before 300 s
        mark = uuid.uuid4().hex
        await asyncio.to_thread(mailstack.append, "dmitri", "INBOX", _message(f"look {mark}"))
        await session.noop()  # no push outside IDLE: the NOOP lets the server show it
        fetched = await session.fetch_since(uidnext)
        assert [str(f.headers["Subject"]) for f in fetched] == [f"look {mark}"]
        # Still a healthy session: the next IDLE gets pushes again.
        idling = asyncio.create_task(session.idle(30, wake=asyncio.Event()))
        await asyncio.to_thread(mailstack.append, "dmitri", "INBOX", _message(f"push {mark}"))
        assert await asyncio.wait_for(idling, 10) is True
    finally:
        await session.close()


# ---------------------------------------------------------------- servers that misbehave


@asynccontextmanager
async def _server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object],
) -> AsyncIterator[Endpoint]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        yield Endpoint(host="127.0.0.1", port=port, security=Security.NONE, timeout=0.5)
    finally:
        server.close()
        await server.wait_closed()


async def _greet_then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, act: str) -> None:
    writer.write(b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n")
    try:
        while line := await reader.readline():
            tag = line.split(b" ", 1)[0]
            if b"CAPABILITY" in line.upper():
                writer.write(b"* CAPABILITY IMAP4rev1 IDLE\r\n" + tag + b" OK done\r\n")
            elif act == "hang up":
                return
            # "stall": never answer
    finally:
        writer.close()


async def test_sessions_taking_turns_with_one_read_buffer_each_read_their_own_replies(
    mailstack: MailStack,
) -> None:
    trim_read_buffers()  # as the daemon does: one read buffer for every TLS connection
    mark = uuid.uuid4().hex
    for n in range(80):  # replies of several TLS records, read in many pieces
        subject = f"shared {mark} {n}"
        await asyncio.to_thread(mailstack.append, "alice", "Junk", _message(subject))
    sessions = [await _open(mailstack, "alice") for _ in range(6)]
    try:
        buffers = {id(s._protocol.transport._ssl_protocol._ssl_buffer) for s in sessions}
        assert len(buffers) == 1
        for session in sessions:
            await session.select("Junk")
        wanted = [f"shared {mark} {n}" for n in range(80)]
        for _ in range(3):  # one command at a time per session, all sessions at once
            replies = await asyncio.gather(*(s.fetch_since(1) for s in sessions))
            for fetched in replies:
                subjects = [str(f.headers["Subject"]) for f in fetched]
                assert [s for s in subjects if mark in s] == wanted
    finally:
        for session in sessions:
            await session.close()


async def test_stalled_server_times_out_and_session_is_dead() -> None:
    async with _server(lambda r, w: _greet_then(r, w, "stall")) as endpoint:
        started = time.monotonic()
        login = Credentials("user", "secret-pw")
        with pytest.raises(ImapError) as caught:
            await ImapSession.open(endpoint, login, ssl.create_default_context())
        assert 0.4 < time.monotonic() - started < 3
    assert (caught.value.failure.kind, caught.value.failure.phase) == ("timeout", Phase.IMAP_AUTH)


async def test_hang_up_mid_command_fails_at_once_not_at_the_timeout() -> None:
    async with _server(lambda r, w: _greet_then(r, w, "hang up")) as endpoint:
        endpoint = endpoint.model_copy(update={"timeout": 30.0})
        started = time.monotonic()
        login = Credentials("user", "secret-pw")
        with pytest.raises(ImapError) as caught:
            await ImapSession.open(endpoint, login, ssl.create_default_context())
        assert time.monotonic() - started < 3
    assert caught.value.failure.kind == "connection_lost"
    assert "secret-pw" not in caught.value.failure.message
