"""The SMTP adapter against real peers on 127.0.0.1: aiosmtpd for well-behaved servers,
tiny asyncio servers for ones that stall, refuse or hang up."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import structlog
import trustme
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, LoginPassword
from aiosmtplib import SMTPConnectError

from monitor.adapters.credentials import Credentials
from monitor.adapters.smtp import send_message
from monitor.adapters.smtp_session import Conversation, failure_for
from monitor.adapters.tls import client_context
from monitor.core.models import Phase, Security, SendOutcome, utcnow

PASSWORD = "correct horse battery"
MESSAGE = (
    b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: canary\r\n"
    b"Message-ID: <canary.1@example.test>\r\n\r\nA canary.\r\n.leading dot survives\r\n"
)
SHORT = 0.5  # seconds: the stall tests wait this long, and no longer


@dataclass
class Endpoint:
    host: str
    port: int
    security: Security
    timeout: float = 10.0


@dataclass
class Mailbox:
    """An aiosmtpd handler that remembers everything and answers as told."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = ""
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (command, over TLS)
    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    tls_versions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue_id = secrets.token_hex(6).upper()
        self.data_reply = self.data_reply or f"250 2.0.0 Ok: queued as {self.queue_id}"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: let aiosmtpd send its standard "535 5.7.8" on failure
        return AuthResult(success=(login, password) == ("alice", PASSWORD), handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = self.rcpt_replies.get(address, "250 2.1.5 Ok")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(envelope.original_content)
        ssl_object = server.transport.get_extra_info("ssl_object")
        self.tls_versions.append(ssl_object.version() if ssl_object else "")
        return self.data_reply


class RecordingServer(SMTPServer):
    """aiosmtpd's server, noting each command it handles and whether TLS protected it."""


def _recording(command: str):
    handle = getattr(SMTPServer, f"smtp_{command}")

    async def noted(self: RecordingServer, arg: str):
        over_tls = self.transport.get_extra_info("ssl_object") is not None
        self.event_handler.seen.append((command, over_tls))
        return await handle(self, arg)

    return noted


for _command in ("EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "QUIT"):
    setattr(RecordingServer, f"smtp_{_command}", _recording(_command))


@dataclass
class Pki:
    ca_file: Path  # the CA the client is told to trust
    server_context: ssl.SSLContext  # for 127.0.0.1 / localhost, from that CA
    bad: dict[str, ssl.SSLContext]  # server contexts the client must refuse, by flaw


def _serving(ca: trustme.CA, *names: str, **validity: datetime) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **validity).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    ours, stranger = trustme.CA(), trustme.CA()
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ours.cert_pem.write_to_path(str(ca_file))
    ago = datetime.now(UTC) - timedelta(days=30)
    bad = {
        "untrusted": _serving(stranger, "127.0.0.1", "localhost"),
        "expired": _serving(ours, "127.0.0.1", not_before=ago, not_after=ago + timedelta(days=1)),
        "wrong_host": _serving(ours, "mx.elsewhere.test"),
    }
    return Pki(ca_file, _serving(ours, "127.0.0.1", "localhost"), bad)


@contextlib.asynccontextmanager
async def aiosmtpd_server(
    mailbox: Mailbox,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    server_class: type[RecordingServer] = RecordingServer,
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    # AUTH is offered in clear too (auth_require_tls=False), so a leaky client would be caught.
    options = {"tls_context": starttls, "auth_require_tls": False, "loop": loop}
    protocol = partial(server_class, mailbox, authenticator=mailbox.authenticate, **options)
    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=implicit_tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def raw_server(talk: Callable[..., Awaitable[None]]) -> AsyncIterator[int]:
    """A hand-written peer; its conversations are awaited (and unblocked) at the end."""
    conversations: set[asyncio.Task[None]] = set()
    release = asyncio.Event()  # what a stalling peer waits for; set on the way out

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conversations.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await talk(reader, writer)
            await release.wait()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        release.set()
        server.close()
        await asyncio.wait_for(asyncio.gather(*conversations, return_exceptions=True), 5)


async def answer(reader, writer, verb: bytes, reply: bytes) -> None:
    line = await reader.readline()
    assert line.upper().startswith(verb), line
    writer.write(reply)
    await writer.drain()


async def send(endpoint, ssl_context, username="alice", password=PASSWORD) -> SendOutcome:
    login = Credentials(username, password) if username is not None else None
    envelope = {"mail_from": "alice@example.test", "rcpt_to": "bob@example.test"}
    return await send_message(
        endpoint, login=login, message=MESSAGE, ssl_context=ssl_context, **envelope
    )


def replies_of(outcome: SendOutcome) -> list[tuple[Phase, int]]:
    return [(reply.phase, reply.code) for reply in outcome.replies]


def failed(outcome: SendOutcome) -> tuple[str, Phase, bool, int | None, str | None]:
    """The failure's (kind, phase, transient, code, enhanced); the outcome must agree."""
    failure = outcome.failure
    assert failure is not None and not outcome.ok and outcome.phase is failure.phase
    return failure.kind, failure.phase, failure.transient, failure.code, failure.enhanced


async def send_starttls(port: int, pki: Pki, **options) -> SendOutcome:
    endpoint = Endpoint("127.0.0.1", port, Security.STARTTLS)
    return await send(endpoint, client_context([pki.ca_file]), **options)


async def test_starttls_auth_and_handoff(pki):
    mailbox = Mailbox()
    async with aiosmtpd_server(mailbox, starttls=pki.server_context) as port:
        before_wall, before_mono = utcnow(), time.monotonic()
        outcome = await send_starttls(port, pki)
        after_wall, after_mono = utcnow(), time.monotonic()

    assert outcome.ok and outcome.failure is None and outcome.phase is Phase.DONE
    expected = [(Phase.GREETING, 220), (Phase.EHLO, 250), (Phase.TLS, 220), (Phase.EHLO, 250)]
    expected += [(Phase.AUTH, 235), (Phase.MAIL_FROM, 250), (Phase.RCPT_TO, 250), (Phase.DATA, 250)]
    assert replies_of(outcome) == expected
    assert outcome.replies[-1].enhanced == "2.0.0"
    assert outcome.queue_id == mailbox.queue_id
    assert outcome.tls_version == mailbox.tls_versions[0]
    assert before_wall <= outcome.handoff_at <= after_wall
    assert before_mono <= outcome.handoff_monotonic <= after_mono
    assert mailbox.logins == [("alice", PASSWORD)]
    assert mailbox.messages == [MESSAGE]
    plain = [("EHLO", False), ("STARTTLS", False)]
    protected = [(command, True) for command in ("EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT")]
    assert mailbox.seen == plain + protected


async def test_implicit_tls_records_the_version(pki):
    mailbox = Mailbox()
    async with aiosmtpd_server(mailbox, implicit_tls=pki.server_context) as port:
        endpoint = Endpoint("localhost", port, Security.TLS)
        outcome = await send(endpoint, client_context([pki.ca_file]))

    assert outcome.ok, outcome.failure
    assert outcome.tls_version == "TLSv1.3" == mailbox.tls_versions[0]
    assert replies_of(outcome)[0] == (Phase.GREETING, 220)
    assert mailbox.seen and all(over_tls for _, over_tls in mailbox.seen)


async def test_starttls_not_offered_stops_before_auth_and_mail(pki):
    mailbox = Mailbox()
    async with aiosmtpd_server(mailbox) as port:  # no TLS context: STARTTLS not advertised
        outcome = await send_starttls(port, pki)

    assert failed(outcome) == ("starttls_unavailable", Phase.TLS, False, None, None)
    assert replies_of(outcome) == [(Phase.GREETING, 220), (Phase.EHLO, 250)]
    assert mailbox.seen == [("EHLO", False), ("QUIT", False)]
    assert mailbox.logins == [] and mailbox.messages == []


VERIFY_MESSAGES = {
    "untrusted": "unable to get local issuer certificate",
    "expired": "certificate has expired",
    "wrong_host": "mismatch, certificate is not valid for '127.0.0.1'",
}


@pytest.mark.parametrize("flaw", sorted(VERIFY_MESSAGES))
async def test_starttls_to_a_certificate_we_must_not_trust_fails_tls(pki, flaw):
    mailbox = Mailbox()
    async with aiosmtpd_server(mailbox, starttls=pki.bad[flaw]) as port:
        outcome = await send_starttls(port, pki)

    assert failed(outcome) == ("tls_failed", Phase.TLS, False, None, None)
    assert VERIFY_MESSAGES[flaw] in outcome.failure.message
    # The refused handshake, then a second look at the certificate (EHLO, STARTTLS, QUIT at
    # most): never a login or a message.
    commands = [command for command, _ in mailbox.seen]
    assert commands[:2] == ["EHLO", "STARTTLS"]
    assert set(commands) <= {"EHLO", "STARTTLS", "QUIT"}
    assert mailbox.logins == [] and mailbox.messages == []


async def test_implicit_tls_to_an_untrusted_ca_fails_tls(pki):
    async with aiosmtpd_server(Mailbox(), implicit_tls=pki.server_context) as port:
        outcome = await send(Endpoint("127.0.0.1", port, Security.TLS), client_context())

    assert failed(outcome) == ("tls_failed", Phase.TLS, False, None, None)
    assert outcome.replies == ()


@pytest.mark.parametrize(
    ("rcpt_reply", "data_reply", "expected"),
    [
        ("550 5.1.1 <bob@example.test>: User unknown", "", ("rejected", Phase.RCPT_TO, False)),
        ("451 4.7.1 <bob@example.test>: Greylisted", "", ("deferred", Phase.RCPT_TO, True)),
        ("", "552 5.3.4 Message size exceeds fixed limit", ("message_refused", Phase.DATA, False)),
    ],
)
async def test_refusals_are_classified_in_their_phase(pki, rcpt_reply, data_reply, expected):
    mailbox = Mailbox(rcpt_replies={"bob@example.test": rcpt_reply} if rcpt_reply else {})
    mailbox.data_reply = data_reply or mailbox.data_reply
    async with aiosmtpd_server(mailbox, starttls=pki.server_context) as port:
        outcome = await send_starttls(port, pki)

    code, text = (rcpt_reply or data_reply).split(" ", 1)
    assert failed(outcome) == (*expected, int(code), text.split()[0])
    last = outcome.replies[-1]
    assert (last.phase, last.code, last.text) == (expected[1], int(code), text)
    assert outcome.handoff_at is None and outcome.queue_id is None
    assert mailbox.seen[-1] == ("QUIT", True)  # refused, then a clean goodbye


async def test_wrong_password_is_auth_failed_and_never_logged(pki):
    mailbox = Mailbox()
    secret = "wrong-" + secrets.token_hex(8)
    async with aiosmtpd_server(mailbox, starttls=pki.server_context) as port:
        with structlog.testing.capture_logs() as logs:
            outcome = await send_starttls(port, pki, password=secret)

    assert failed(outcome) == ("auth_failed", Phase.AUTH, False, 535, "5.7.8")
    assert mailbox.logins and all(password == secret for _, password in mailbox.logins)
    assert not {"MAIL", "RCPT", "DATA"} & {command for command, _ in mailbox.seen}
    assert any(entry.get("kind") == "auth_failed" for entry in logs)
    assert secret not in repr(logs) and secret not in repr(outcome)


async def test_greeting_refused_with_421():
    async def refuse(reader, writer):
        writer.write(b"421 4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred\r\n")
        await writer.drain()

    async with raw_server(refuse) as port:
        outcome = await send(Endpoint("127.0.0.1", port, Security.STARTTLS), client_context())

    assert failed(outcome) == ("greeting_refused", Phase.GREETING, True, 421, "4.7.0")
    assert replies_of(outcome) == [(Phase.GREETING, 421)]


async def test_a_silent_server_times_out_at_the_greeting():
    async def say_nothing(reader, writer):
        pass  # raw_server keeps the connection open until the test ends

    async with raw_server(say_nothing) as port:
        endpoint = Endpoint("127.0.0.1", port, Security.STARTTLS, timeout=SHORT)
        outcome = await send(endpoint, client_context())

    assert failed(outcome) == ("timeout", Phase.GREETING, True, None, None)
    assert outcome.replies == ()


async def _greet_until_rcpt(reader, writer) -> None:
    writer.write(b"220 mx.example.test ESMTP\r\n")
    await answer(reader, writer, b"EHLO", b"250 mx.example.test\r\n")
    await answer(reader, writer, b"MAIL", b"250 2.1.0 Ok\r\n")


async def test_a_server_stalling_after_the_message_times_out_at_data():
    received = asyncio.Event()

    async def stall_after_data(reader, writer):
        await _greet_until_rcpt(reader, writer)
        await answer(reader, writer, b"RCPT", b"250 2.1.5 Ok\r\n")
        await answer(reader, writer, b"DATA", b"354 End data with <CR><LF>.<CR><LF>\r\n")
        await reader.readuntil(b"\r\n.\r\n")
        received.set()  # the whole message arrived; now say nothing

    async with raw_server(stall_after_data) as port:
        endpoint = Endpoint("127.0.0.1", port, Security.NONE, timeout=SHORT)
        outcome = await send(endpoint, client_context(), username=None)

    assert received.is_set()
    assert failed(outcome) == ("timeout", Phase.DATA, True, None, None)
    assert outcome.handoff_at is None
    assert replies_of(outcome)[-1] == (Phase.RCPT_TO, 250)


async def test_a_server_hanging_up_mid_transaction_is_connection_lost():
    async def hang_up_at_rcpt(reader, writer):
        await _greet_until_rcpt(reader, writer)
        await reader.readline()
        writer.transport.abort()

    async with raw_server(hang_up_at_rcpt) as port:
        endpoint = Endpoint("127.0.0.1", port, Security.NONE)
        outcome = await send(endpoint, client_context(), username=None)

    assert failed(outcome) == ("connection_lost", Phase.RCPT_TO, True, None, None)
    assert replies_of(outcome) == [(Phase.GREETING, 220), (Phase.EHLO, 250), (Phase.MAIL_FROM, 250)]


async def test_a_closed_port_is_connect_failed():
    with socket.socket() as bound_not_listening:  # holds the port so nobody else takes it
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        outcome = await send(Endpoint("127.0.0.1", port, Security.TLS), client_context())

    assert failed(outcome) == ("connect_failed", Phase.CONNECT, True, None, None)
    assert str(port) in outcome.failure.message
    assert outcome.replies == ()


@pytest.mark.parametrize(
    ("errno", "transient"), [(socket.EAI_NONAME, False), (socket.EAI_AGAIN, True)]
)
def test_a_name_that_does_not_resolve_is_dns_failed(errno, transient):
    # Resolving for real would ask a DNS server off this machine; the chain below is the
    # exact one aiosmtplib raises (SMTPConnectError from socket.gaierror).
    try:
        try:
            raise socket.gaierror(errno, "Name or service not known")
        except socket.gaierror as cause:
            raise SMTPConnectError("Error connecting to mx.nowhere.test on port 587") from cause
    except SMTPConnectError as exc:
        failure = failure_for(exc, Conversation(timeout=SHORT), implicit_tls=False)

    assert (failure.kind, failure.phase, failure.transient) == (
        "dns_failed",
        Phase.RESOLVE,
        transient,
    )
    assert "mx.nowhere.test" in failure.message
