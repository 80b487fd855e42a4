"""Hand one message to an SMTP server, phase by phase, keeping every reply.

aiosmtplib's high-level `send_message` hides which step failed and may silently skip
STARTTLS, so the conversation is driven one command at a time: the session is opened by
`smtp_session.open_session` (as everywhere else), then MAIL, RCPT and DATA. Every failure
becomes a `SendOutcome` with a classified `Failure`; only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace

import structlog
from aiosmtplib import SMTP

from monitor.adapters import smtp_inspect
from monitor.adapters.credentials import Credentials
from monitor.adapters.smtp_session import (
    Conversation,
    SmtpEndpoint,
    client,
    failure_for,
    find_cause,
    goodbye,
    open_session,
)
from monitor.core.failures import certificate_note, parse_queue_id
from monitor.core.models import Failure, Phase, Security, SendOutcome, utcnow

log = structlog.get_logger(__name__)

_CERTIFICATE_TIMEOUT = 10.0  # a second look at a refused certificate, per step


async def send_message(
    endpoint: SmtpEndpoint,
    *,
    login: Credentials | None,
    message: bytes,
    mail_from: str,
    rcpt_to: str,
    ssl_context: ssl.SSLContext,
) -> SendOutcome:
    """Send `message` to one recipient, logged in with `login` (None: no AUTH); never raises
    except `asyncio.CancelledError`."""
    conversation = Conversation(timeout=endpoint.timeout)
    smtp: SMTP | None = None
    try:
        smtp = client(endpoint, ssl_context)
        outcome = await _converse(smtp, conversation, endpoint, login, message, mail_from, rcpt_to)
    except asyncio.CancelledError:
        if smtp is not None:
            smtp.close()
        raise
    except Exception as exc:
        failure = failure_for(exc, conversation, endpoint.security == Security.TLS)
        outcome = conversation.outcome(failure)
        refused_certificate = find_cause(exc, ssl.SSLCertVerificationError) is not None
    else:
        refused_certificate = False
    if smtp is not None:
        await goodbye(smtp, outcome.failure)
    if refused_certificate and outcome.failure is not None:
        failure = await _with_certificate(outcome.failure, endpoint)
        outcome = replace(outcome, failure=failure)
    _log(endpoint, outcome)
    return outcome


async def _with_certificate(failure: Failure, endpoint: SmtpEndpoint) -> Failure:
    """The failure with the refused certificate's subject and expiry in its message.

    The failed handshake keeps no certificate, so it is fetched again, unverified, on a short
    separate connection (the diagnosis's port inspector: nothing is sent but EHLO/STARTTLS).
    Whatever goes wrong there leaves the failure as it was.
    """
    timeout = min(endpoint.timeout, _CERTIFICATE_TIMEOUT)
    try:
        resolution = await smtp_inspect.resolve(endpoint.host, timeout)
        report = await smtp_inspect.inspect_port(
            resolution,
            endpoint.port,
            protocol="smtp",
            timeout=timeout,
            tls_first=endpoint.security == Security.TLS,
        )
    except Exception:
        log.warning("could not fetch the refused certificate", exc_info=True)
        return failure
    certificate = report.certificate
    if certificate is None:
        return failure
    note = certificate_note(certificate.subject, certificate.not_after, utcnow())
    return replace(failure, message=f"{failure.message}; {note}")


async def _converse(
    smtp: SMTP,
    conversation: Conversation,
    endpoint: SmtpEndpoint,
    login: Credentials | None,
    message: bytes,
    mail_from: str,
    rcpt_to: str,
) -> SendOutcome:
    await open_session(smtp, conversation, endpoint, login)
    await conversation.step(Phase.MAIL_FROM, smtp.mail(mail_from))
    await conversation.step(Phase.RCPT_TO, smtp.rcpt(rcpt_to))

    conversation.phase = Phase.DATA
    async with asyncio.timeout(endpoint.timeout):
        reply = await smtp.data(message)
    handoff_monotonic, handoff_at = time.monotonic(), utcnow()
    conversation.record(Phase.DATA, reply.code, reply.message)
    return conversation.outcome(
        queue_id=parse_queue_id(reply.message),
        handoff_at=handoff_at,
        handoff_monotonic=handoff_monotonic,
    )


def _log(endpoint: SmtpEndpoint, outcome: SendOutcome) -> None:
    failure = outcome.failure
    if failure is None:
        log.debug(
            "smtp handoff",
            host=endpoint.host,
            port=endpoint.port,
            queue_id=outcome.queue_id,
            tls_version=outcome.tls_version,
        )
        return
    log.info(
        "smtp send failed",
        host=endpoint.host,
        port=endpoint.port,
        kind=failure.kind,
        phase=failure.phase.value,
        code=failure.code,
        enhanced=failure.enhanced,
        detail=failure.message,
    )
