"""The SMTP adapter against the harness's real Postfix (submission 587-style and smtps)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from monitor.adapters.credentials import Credentials
from monitor.adapters.smtp import send_message
from monitor.adapters.tls import client_context
from monitor.core.models import Phase, Security, SendOutcome

pytestmark = pytest.mark.mailstack


@dataclass
class Endpoint:
    host: str
    port: int
    security: Security
    timeout: float = 20.0


async def send(mailstack, to: str, *, security=Security.STARTTLS, password=None, ca=True):
    alice = mailstack.users["alice"]
    port = mailstack.submission_port if security is Security.STARTTLS else mailstack.smtps_port
    message = (
        f"From: {alice.email}\r\nTo: {to}\r\nSubject: smtp adapter test\r\n"
        f"Message-ID: <smtp-test.{time.time_ns()}@example.test>\r\n\r\nHello.\r\n"
    ).encode()
    return await send_message(
        Endpoint(mailstack.host, port, security),
        login=Credentials(alice.email, alice.password if password is None else password),
        message=message,
        mail_from=alice.email,
        rcpt_to=to,
        ssl_context=client_context([mailstack.ca_file] if ca else []),
    )


async def logged(mailstack, needle: str, within: float = 10.0) -> bool:
    """Whether Postfix's log mentions `needle` within `within` seconds (postlogd writes late)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if needle in mailstack.postfix_log.read_text(errors="replace"):
            return True
        await asyncio.sleep(0.05)  # polling a file for a condition, bounded by the deadline
    return False


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
async def test_alice_hands_a_message_for_bob_to_postfix(mailstack, security):
    outcome: SendOutcome = await send(mailstack, mailstack.users["bob"].email, security=security)

    assert outcome.ok, outcome.failure
    phases = [reply.phase for reply in outcome.replies]
    expected = [Phase.GREETING, Phase.EHLO, Phase.AUTH, Phase.MAIL_FROM, Phase.RCPT_TO, Phase.DATA]
    if security is Security.STARTTLS:
        expected[2:2] = [Phase.TLS, Phase.EHLO]
    assert phases == expected
    assert outcome.tls_version is not None and outcome.tls_version.startswith("TLSv1.")
    assert outcome.queue_id and await logged(mailstack, f"{outcome.queue_id}: message-id=")


async def test_a_wrong_password_is_auth_failed(mailstack):
    outcome = await send(mailstack, mailstack.users["bob"].email, password="not-" + "the-password")

    failure = outcome.failure
    assert failure is not None
    assert (failure.kind, failure.phase, failure.code, failure.enhanced) == (
        "auth_failed",
        Phase.AUTH,
        535,
        "5.7.8",
    )
    assert failure.transient is False


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("reject", ("rejected", 550, "5.1.1", False)),
        ("greylist", ("deferred", 451, "4.7.1", True)),
    ],
)
async def test_postfix_refusals_at_rcpt(mailstack, recipient, expected):
    outcome = await send(mailstack, mailstack.users[recipient].email)

    failure = outcome.failure
    assert failure is not None and failure.phase is Phase.RCPT_TO
    assert (failure.kind, failure.code, failure.enhanced, failure.transient) == expected
    assert outcome.replies[-1].phase is Phase.RCPT_TO


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
async def test_without_the_harness_ca_tls_fails(mailstack, security):
    outcome = await send(mailstack, mailstack.users["bob"].email, security=security, ca=False)

    failure = outcome.failure
    assert failure is not None
    assert (failure.kind, failure.phase, failure.transient) == ("tls_failed", Phase.TLS, False)
    assert "certificate verify failed" in failure.message
    assert Phase.AUTH not in {reply.phase for reply in outcome.replies}
