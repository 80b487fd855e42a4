"""Hand one canary to an SMTP server, phase by phase, keeping every reply.

aiosmtplib's high-level `send_message` hides which step failed and may silently skip
STARTTLS, so the conversation is driven here one command at a time. Every failure
becomes a `SendOutcome` with a classified `Failure`; only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, TypeVar

import structlog
from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from monitor.adapters.oauth import OAuthError, TokenSource
from monitor.core.failures import (
    certificate_note,
    classify_error,
    classify_reply,
    parse_enhanced,
    parse_queue_id,
)
from monitor.core.models import Failure, Phase, Security, SendOutcome, SmtpReply, utcnow

log = structlog.get_logger(__name__)
_E = TypeVar("_E", bound=BaseException)

_QUIT_TIMEOUT = 5.0  # a polite goodbye must not hold a finished probe for a minute
_CERTIFICATE_TIMEOUT = 10.0  # a second look at a refused certificate, per step
# After these the conversation is out of step or gone: a QUIT would only wait in vain.
_NO_GOODBYE = frozenset({"tls_failed", "timeout", "connection_lost", "protocol_error"})


class SmtpEndpoint(Protocol):
    host: str
    port: int
    security: Security
    timeout: float


@dataclass
class Conversation:
    """What one attempt has learned so far; `phase` is the step under way."""

    timeout: float
    phase: Phase = Phase.CONNECT
    replies: list[SmtpReply] = field(default_factory=list)
    tls_version: str | None = None

    def record(self, phase: Phase, code: int, text: str) -> None:
        self.replies.append(SmtpReply(phase, code, parse_enhanced(text), text))

    async def step(self, phase: Phase, call: Awaitable[SMTPResponse]) -> SMTPResponse:
        # aiosmtplib bounds each command; this bounds the whole phase (AUTH LOGIN is 3 round trips).
        self.phase = phase
        async with asyncio.timeout(self.timeout):
            response = await call
        self.record(phase, response.code, response.message)
        return response

    def note_tls(self, smtp: SMTP) -> None:
        ssl_object = smtp.get_transport_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else None

    def outcome(
        self,
        failure: Failure | None = None,
        *,
        queue_id: str | None = None,
        handoff_at: datetime | None = None,
        handoff_monotonic: float | None = None,
    ) -> SendOutcome:
        return SendOutcome(
            phase=failure.phase if failure else Phase.DONE,
            replies=tuple(self.replies),
            failure=failure,
            queue_id=queue_id,
            tls_version=self.tls_version,
            handoff_at=handoff_at,
            handoff_monotonic=handoff_monotonic,
        )


async def send_message(
    endpoint: SmtpEndpoint,
    *,
    username: str | None,
    password: str | None,
    message: bytes,
    mail_from: str,
    rcpt_to: str,
    ssl_context: ssl.SSLContext,
    oauth: TokenSource | None = None,
) -> SendOutcome:
    """Send `message` to one recipient; never raises except `asyncio.CancelledError`.

    With `oauth` the login is AUTH XOAUTH2 with its access token (asked for only once the
    server has offered XOAUTH2), and `password` is ignored.
    """
    conversation = Conversation(timeout=endpoint.timeout)
    smtp: SMTP | None = None
    try:
        smtp = SMTP(
            hostname=endpoint.host,
            port=endpoint.port,
            use_tls=endpoint.security == Security.TLS,
            start_tls=False,  # never aiosmtplib's "upgrade if offered": we insist or we don't
            tls_context=ssl_context,
            timeout=endpoint.timeout,
        )
        outcome = await _converse(
            smtp,
            conversation,
            endpoint,
            username,
            password,
            message,
            mail_from,
            rcpt_to,
            oauth,
        )
    except asyncio.CancelledError:
        if smtp is not None:
            smtp.close()
        raise
    except Exception as exc:
        failure = failure_for(exc, conversation, endpoint.security == Security.TLS)
        outcome = conversation.outcome(failure)
        refused_certificate = _find_cause(exc, ssl.SSLCertVerificationError) is not None
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
    from monitor.adapters import smtp_inspect as smtp_probe  # it imports this module

    timeout = min(endpoint.timeout, _CERTIFICATE_TIMEOUT)
    try:
        resolution = await smtp_probe.resolve(endpoint.host, timeout)
        report = await smtp_probe.inspect_port(
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
    username: str | None,
    password: str | None,
    message: bytes,
    mail_from: str,
    rcpt_to: str,
    oauth: TokenSource | None = None,
) -> SendOutcome:
    # connect() covers TCP, the implicit-TLS handshake and the greeting; each bounded by
    # aiosmtplib with our timeout. Which of them failed is read from the exception's cause.
    conversation.phase = Phase.CONNECT
    greeting = await smtp.connect()
    conversation.record(Phase.GREETING, greeting.code, greeting.message)
    if endpoint.security == Security.TLS:
        conversation.note_tls(smtp)

    await conversation.step(Phase.EHLO, smtp.ehlo())
    if endpoint.security == Security.STARTTLS:
        if not smtp.supports_extension("starttls"):
            return conversation.outcome(
                classify_error(
                    Phase.TLS,
                    "starttls_unavailable",
                    "the server does not offer STARTTLS; stopped before AUTH and MAIL",
                )
            )
        await conversation.step(Phase.TLS, smtp.starttls())
        conversation.note_tls(smtp)
        await conversation.step(Phase.EHLO, smtp.ehlo())  # RFC 3207: forget pre-TLS EHLO

    if oauth is not None:
        await login_xoauth2(smtp, conversation, username or mail_from, oauth)
    elif username:
        await conversation.step(Phase.AUTH, smtp.login(username, password or ""))
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


async def login_xoauth2(
    smtp: SMTP, conversation: Conversation, username: str, oauth: TokenSource
) -> None:
    """AUTH XOAUTH2; a refused token comes back as a 334 error challenge, then 535/534.

    A 535 for a token that has not expired means the issuer withdrew it early: it is forgotten
    and the login tried once more, on the same connection, with a freshly refreshed token.
    A second refusal is the account's problem, not the token's age, and fails as usual.
    """
    conversation.phase = Phase.AUTH
    if "xoauth2" not in smtp.server_auth_methods:
        offered = " ".join(smtp.server_auth_methods) or "none"
        raise _NoXoauth2(f"the server does not offer AUTH XOAUTH2 (offers: {offered})")
    token = await oauth.access_token()  # OAuthError when none can be had: see failure_for
    try:
        await conversation.step(Phase.AUTH, smtp.auth_xoauth2(username, token))
        return
    except SMTPAuthenticationError as refused:
        if refused.code != 535:  # 534, 454…: a fresh token would not change the answer
            raise
        conversation.record(Phase.AUTH, refused.code, refused.message)  # kept in the record
    oauth.forget(token)
    token = await oauth.access_token()
    await conversation.step(Phase.AUTH, smtp.auth_xoauth2(username, token))


class _NoXoauth2(Exception):
    pass


def failure_for(exc: Exception, conversation: Conversation, implicit_tls: bool) -> Failure:
    phase = conversation.phase
    if isinstance(exc, OAuthError):
        return exc.failure(phase)
    if isinstance(exc, _NoXoauth2):
        return classify_error(phase, "auth_unavailable", str(exc))
    if isinstance(exc, SMTPResponseException):
        if isinstance(exc, SMTPConnectResponseError):
            phase = Phase.GREETING
        conversation.record(phase, exc.code, exc.message)
        return classify_reply(phase, exc.code, exc.message)

    # Only a handshake can fail TLS; a TLS error later is just the connection breaking.
    tls_error = _find_cause(exc, ssl.SSLError)
    if tls_error is not None and phase in (Phase.CONNECT, Phase.TLS):
        return classify_error(Phase.TLS, "tls_failed", _describe_tls(tls_error))

    if phase == Phase.CONNECT and isinstance(exc, SMTPConnectError):
        return _connect_failure(exc, implicit_tls, conversation.timeout)

    if isinstance(exc, SMTPTimeoutError | TimeoutError):
        return classify_error(phase, "timeout", _no_answer(conversation.timeout, phase))
    if isinstance(exc, SMTPServerDisconnected | ConnectionError):
        return classify_error(phase, "connection_lost", f"connection lost: {_text(exc)}")
    if phase == Phase.AUTH and isinstance(exc, SMTPException):
        # aiosmtplib: "AUTH extension not supported" / "No suitable authentication method".
        return classify_error(phase, "auth_unavailable", _text(exc))
    log.warning("unexpected smtp error", phase=phase.value, error=type(exc).__name__)
    return classify_error(phase, "protocol_error", f"{type(exc).__name__}: {_text(exc)}")


def _connect_failure(exc: SMTPConnectError, implicit_tls: bool, timeout: float) -> Failure:
    cause = exc.__cause__
    if isinstance(cause, socket.gaierror):
        return classify_error(
            Phase.RESOLVE,
            "dns_failed",
            _text(exc),
            transient=cause.errno == socket.EAI_AGAIN,  # resolver trouble, not "no such name"
        )
    # The greeting is read with aiosmtplib's own timeout/disconnect errors as the cause.
    if isinstance(cause, SMTPTimeoutError):
        return classify_error(Phase.GREETING, "timeout", _no_answer(timeout, Phase.GREETING))
    if isinstance(cause, SMTPServerDisconnected):
        return classify_error(Phase.GREETING, "connection_lost", _text(exc))
    # asyncio reports an implicit-TLS handshake that overran as ConnectionAbortedError.
    if isinstance(cause, TimeoutError) or (
        implicit_tls and isinstance(cause, ConnectionAbortedError)
    ):
        phase = Phase.TLS if implicit_tls else Phase.CONNECT
        return classify_error(phase, "timeout", _no_answer(timeout, phase))
    message = _text(exc)
    if isinstance(cause, OSError) and cause.errno:  # asyncio words every errno the same way
        message = f"{message}: {os.strerror(cause.errno)}"
    return classify_error(Phase.CONNECT, "connect_failed", message)


def _find_cause(exc: BaseException, kind: type[_E]) -> _E | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__  # aiosmtplib chains what it wraps with `raise … from`
    return None


def _describe_tls(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        # verify_message says which: "certificate has expired", "Hostname mismatch, …",
        # "unable to get local issuer certificate" (an untrusted CA).
        return f"certificate verify failed: {error.verify_message}"
    return f"TLS handshake failed: {error.reason or error}"


def _no_answer(timeout: float, phase: Phase) -> str:
    return f"no answer within {timeout:g}s during {phase.value}"


def _text(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


async def goodbye(smtp: SMTP, failure: Failure | None) -> None:
    try:
        if smtp.is_connected and (failure is None or failure.kind not in _NO_GOODBYE):
            async with asyncio.timeout(min(_QUIT_TIMEOUT, smtp.timeout or _QUIT_TIMEOUT)):
                await smtp.quit()
    except Exception:  # the goodbye is a courtesy; its failure changes nothing
        pass
    finally:
        smtp.close()


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
