"""One SMTP session, opened the same way wherever mailcanary opens one: canary sending, report
and alert mail (both through `smtp.send_message`) and `diagnose`'s login check
(`smtp_inspect.smtp_login`).

`open_session` connects (implicit TLS on `tls` endpoints), reads the greeting, says EHLO, on
`starttls` endpoints insists on STARTTLS (never aiosmtplib's "upgrade if offered") and says EHLO
again (RFC 3207), then logs in: AUTH XOAUTH2 for an OAuth account, with one retry on a fresh
token when the issuer withdrew the first early, else the password through aiosmtplib's
LOGIN/PLAIN. Every reply is kept in a `Conversation`; `failure_for` turns whatever went wrong
into a classified `Failure`, so a diagnosis judges a login exactly as a probe would.

The port inspector (`smtp_inspect.inspect_port`) speaks to ports its own way on purpose: it
finds out what a port offers without insisting on anything, over TLS it does not trust, and
never logs in.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
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

from monitor.adapters.credentials import Credentials
from monitor.adapters.oauth import OAuthError, TokenSource
from monitor.core.failures import classify_error, classify_reply, parse_enhanced
from monitor.core.models import Failure, Phase, Security, SendOutcome, SmtpReply

log = structlog.get_logger(__name__)
_E = TypeVar("_E", bound=BaseException)

_QUIT_TIMEOUT = 5.0  # a polite goodbye must not hold a finished probe for a minute
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
    mechanisms: tuple[str, ...] = ()  # AUTH mechanisms offered, upper case

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


def client(endpoint: SmtpEndpoint, ssl_context: ssl.SSLContext) -> SMTP:
    """An unconnected aiosmtplib client for `endpoint`; `open_session` drives it."""
    return SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        use_tls=endpoint.security == Security.TLS,
        start_tls=False,  # never aiosmtplib's "upgrade if offered": we insist or we don't
        tls_context=ssl_context,
        timeout=endpoint.timeout,
    )


class Stopped(Exception):
    """The session stopped on purpose before a step it cannot take safely or at all."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


async def open_session(
    smtp: SMTP, conversation: Conversation, endpoint: SmtpEndpoint, login: Credentials | None
) -> None:
    """Connect, greet, secure and (with `login`) authenticate; raises on the first failure
    (`failure_for` classifies it). `conversation.mechanisms` holds the AUTH mechanisms offered
    once the last EHLO is answered, whether or not the login then succeeds."""
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
            raise Stopped(
                classify_error(
                    Phase.TLS,
                    "starttls_unavailable",
                    "the server does not offer STARTTLS; stopped before AUTH and MAIL",
                )
            )
        await conversation.step(Phase.TLS, smtp.starttls())
        conversation.note_tls(smtp)
        await conversation.step(Phase.EHLO, smtp.ehlo())  # RFC 3207: forget pre-TLS EHLO
    conversation.mechanisms = tuple(m.upper() for m in smtp.server_auth_methods)

    if login is None:
        return
    if login.oauth is not None:
        await login_xoauth2(smtp, conversation, login.username, login.oauth)
    else:
        await conversation.step(Phase.AUTH, smtp.login(login.username, login.password))


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
        message = f"the server does not offer AUTH XOAUTH2 (offers: {offered})"
        raise Stopped(classify_error(Phase.AUTH, "auth_unavailable", message))
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


def failure_for(exc: Exception, conversation: Conversation, implicit_tls: bool) -> Failure:
    phase = conversation.phase
    if isinstance(exc, OAuthError):
        return exc.failure(phase)
    if isinstance(exc, Stopped):
        return exc.failure
    if isinstance(exc, SMTPResponseException):
        if isinstance(exc, SMTPConnectResponseError):
            phase = Phase.GREETING
        conversation.record(phase, exc.code, exc.message)
        return classify_reply(phase, exc.code, exc.message)

    # Only a handshake can fail TLS; a TLS error later is just the connection breaking.
    tls_error = find_cause(exc, ssl.SSLError)
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


def find_cause(exc: BaseException, kind: type[_E]) -> _E | None:
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


def in_step(smtp: SMTP, failure: Failure | None) -> bool:
    """Whether the session can still take a command after `failure` (None: all went well)."""
    return smtp.is_connected and (failure is None or failure.kind not in _NO_GOODBYE)


async def goodbye(smtp: SMTP, failure: Failure | None) -> None:
    try:
        if in_step(smtp, failure):
            async with asyncio.timeout(min(_QUIT_TIMEOUT, smtp.timeout or _QUIT_TIMEOUT)):
                await smtp.quit()
    except Exception:  # the goodbye is a courtesy; its failure changes nothing
        pass
    finally:
        smtp.close()
