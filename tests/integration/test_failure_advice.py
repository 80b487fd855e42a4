"""Real failures from real peers on 127.0.0.1 get the catalogue's specific advice.

Every SMTP phase's refusals (greeting, AUTH, MAIL, RCPT, DATA), refused certificates (which must
name themselves: subject and expiry), timeouts and closed ports: each produced by aiosmtpd or a
scripted asyncio server, classified by the adapter, then looked up. "Specific" means an entry
more precise than the plain one every failure kind has.
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509

from monitor.adapters.tls import client_context
from monitor.core.catalogue import advise, is_specific
from monitor.core.models import Failure, Phase, Security, SendOutcome
from tests.integration.test_smtp_faults import (
    SHORT,
    Endpoint,
    Mailbox,
    aiosmtpd_server,
    raw_server,
    send,
)


def advised(outcome: SendOutcome, kind: str, phrase: str) -> Failure:
    failure = outcome.failure
    assert failure is not None and failure.kind == kind, failure
    assert is_specific(failure), failure
    assert phrase.lower() in advise(failure).explanation.lower(), (failure, advise(failure))
    return failure


# ------------------------------------------------------------ certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """flaw -> (server context, the certificate's subject, its expiry); and the trusted CA."""
    ours, stranger = trustme.CA(), trustme.CA()
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ours.cert_pem.write_to_path(str(ca_file))
    ago = datetime.now(UTC) - timedelta(days=30)
    issued = {
        "untrusted": stranger.issue_cert("127.0.0.1"),
        "expired": ours.issue_cert("127.0.0.1", not_before=ago, not_after=ago + timedelta(days=1)),
        "wrong_host": ours.issue_cert("mx.elsewhere.test"),
    }
    served = {}
    for flaw, cert in issued.items():
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        parsed = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
        served[flaw] = (context, parsed.subject.rfc4514_string(), parsed.not_valid_after_utc)
    return served, ca_file


CERTIFICATE_ADVICE = {
    "untrusted": "not signed by a CA this machine trusts",
    "expired": "certificate has expired",
    "wrong_host": "for another host name",
}


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
@pytest.mark.parametrize("flaw", sorted(CERTIFICATE_ADVICE))
async def test_a_refused_certificate_names_its_subject_and_expiry(certificates, flaw, security):
    served, ca_file = certificates
    context, subject, not_after = served[flaw]
    tls = {"starttls": context} if security is Security.STARTTLS else {"implicit_tls": context}
    async with aiosmtpd_server(Mailbox(), **tls) as port:
        outcome = await send(Endpoint("127.0.0.1", port, security), client_context([ca_file]))

    failure = advised(outcome, "tls_failed", CERTIFICATE_ADVICE[flaw])
    verb = "expired" if flaw == "expired" else "expires"
    assert f"; subject {subject}, {verb} {not_after.date().isoformat()} (" in failure.message
    assert failure.message.endswith("(29 days ago)" if flaw == "expired" else "days)")


# ------------------------------------------------------------ replies in every phase

GREETING = b"220 mx.example.test ESMTP\r\n"
EHLO = b"250-mx.example.test\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN\r\n"
GOOD = {
    b"AUTH": b"235 2.7.0 Authentication successful\r\n",
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
}


def scripted(verb: bytes, reply: bytes):
    """A server that goes along until `verb`, which it answers with `reply` (for DATA: after
    taking the message)."""

    async def talk(reader, writer):
        writer.write(GREETING)
        await writer.drain()
        while line := await reader.readline():
            command = line.split()[0].upper() if line.split() else b""
            if command == b"EHLO":
                answer = EHLO
            elif command == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            elif command == verb and verb != b"DATA":
                answer = reply
            elif command == b"DATA":
                writer.write(GOOD[b"DATA"])
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                answer = reply
            else:
                answer = GOOD.get(command, b"502 5.5.2 Error: command not recognized\r\n")
            writer.write(answer)
            await writer.drain()

    return talk


REPLIES = [
    # AUTH
    (b"AUTH", b"535 5.7.8 Error: authentication failed", "auth_failed", "credentials are invalid"),
    (
        b"AUTH",
        b"534-5.7.9 Application-specific password required.\r\n534 5.7.9 Learn more - gsmtp",
        "auth_failed",
        "Gmail wants an app password",
    ),
    (
        b"AUTH",
        b"454 4.7.0 Temporary authentication failure",
        "auth_failed",
        "temporary authentication",
    ),
    (b"AUTH", b"530 5.7.0 Must issue a STARTTLS command first", "auth_failed", "STARTTLS"),
    (
        b"AUTH",
        b"535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
        "auth_failed",
        "Microsoft: SMTP AUTH with a password",
    ),
    # MAIL FROM
    (
        b"MAIL",
        b"553 5.7.1 <alice@example.test>: Sender address rejected: not owned by user",
        "sender_refused",
        "may not send as that address",
    ),
    (b"MAIL", b"421 4.7.0 mx.example.test Error: too many connections", "deferred", "closing"),
    # RCPT TO
    (b"RCPT", b"550 5.1.1 <bob@example.test>: User unknown", "rejected", "does not exist"),
    (b"RCPT", b"451 4.7.1 <bob@example.test>: Greylisted, retry", "deferred", "greylisting"),
    (b"RCPT", b"452 4.5.3 Error: too many recipients", "deferred", "too many recipients"),
    (b"RCPT", b"452 4.2.2 Mailbox full", "deferred", "mailbox is full"),
    (b"RCPT", b"554 5.7.1 <bob@example.test>: Relay access denied", "rejected", "Relaying denied"),
    # DATA
    (b"DATA", b"552 5.3.4 Message size exceeds fixed limit", "message_refused", "too big"),
    (b"DATA", b"554 5.7.1 Message rejected: spam content", "message_refused", "not authorized"),
    (
        b"DATA",
        b"550-5.7.26 This mail has been blocked because the sender is unauthenticated.\r\n"
        b"550 5.7.26 Gmail requires all senders to authenticate. a1si123 - gsmtp",
        "rejected",
        "Gmail: the message is unauthenticated",
    ),
    (b"DATA", b"451 4.3.0 Error: queue file write error", "deferred", "not accepting messages"),
]


@pytest.mark.parametrize(("verb", "reply", "kind", "phrase"), REPLIES)
async def test_refusals_in_each_phase_get_their_advice(verb, reply, kind, phrase):
    async with raw_server(scripted(verb, reply + b"\r\n")) as port:
        outcome = await send(Endpoint("127.0.0.1", port, Security.NONE), client_context())
    failure = advised(outcome, kind, phrase)
    expected_phase = {b"AUTH": Phase.AUTH, b"MAIL": Phase.MAIL_FROM, b"RCPT": Phase.RCPT_TO}
    assert failure.phase is expected_phase.get(verb, Phase.DATA)
    assert failure.code == int(reply[:3])


# ------------------------------------------------------------ no reply at all


async def test_greeting_refusals():
    async def refuse_with(line: bytes):
        async def talk(reader, writer):
            writer.write(line)
            await writer.drain()

        return talk

    yahoo = b"421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred\r\n"
    listed = b"554 5.7.1 Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org\r\n"
    for line, phrase in ((yahoo, "Yahoo: temporarily deferred"), (listed, "blocklist")):
        async with raw_server(await refuse_with(line)) as port:
            outcome = await send(Endpoint("127.0.0.1", port, Security.STARTTLS), client_context())
        assert advised(outcome, "greeting_refused", phrase).phase is Phase.GREETING


async def test_starttls_not_offered():
    async with aiosmtpd_server(Mailbox()) as port:  # no TLS context: STARTTLS not advertised
        outcome = await send(Endpoint("127.0.0.1", port, Security.STARTTLS), client_context())
    advised(outcome, "starttls_unavailable", "did not offer STARTTLS")


async def test_silence_at_the_greeting_and_after_the_message():
    async def say_nothing(reader, writer):
        pass

    async with raw_server(say_nothing) as port:
        endpoint = Endpoint("127.0.0.1", port, Security.STARTTLS, timeout=SHORT)
        outcome = await send(endpoint, client_context())
    advised(outcome, "timeout", "never greeted")

    async with raw_server(scripted(b"DATA", b"")) as port:  # the message's end: no answer
        endpoint = Endpoint("127.0.0.1", port, Security.NONE, timeout=SHORT)
        outcome = await send(endpoint, client_context(), username=None)
    assert advised(outcome, "timeout", "did not confirm it in time").phase is Phase.DATA


async def test_a_closed_port():
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        outcome = await send(Endpoint("127.0.0.1", port, Security.TLS), client_context())
    advised(outcome, "connect_failed", "refused the connection")
