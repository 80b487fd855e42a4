"""Hand messages to an SMTP server, phase by phase, keeping every reply.

aiosmtplib's high-level `send_message` hides which step failed and may silently skip
STARTTLS, so the conversation is driven one command at a time: the session is opened by
`smtp_session.open_session` (as everywhere else), then MAIL, RCPT and DATA. Every failure
becomes a `SendOutcome` with a classified `Failure`; only cancellation propagates.

`send_letters` hands several letters (the canaries one route sends to several recipients in
one slot) over one session: one transaction each, RSET after a refused one. A session that
ends between two letters (dropped, 421, silent before the next MAIL was answered) is replaced
by a fresh one for the letters still waiting; a letter whose own transaction broke after
its MAIL was accepted fails with that failure, as it would have alone.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

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
    in_step,
    open_session,
)
from monitor.core.failures import certificate_note, parse_queue_id
from monitor.core.models import Failure, Phase, Security, SendOutcome, SmtpReply, utcnow

log = structlog.get_logger(__name__)

_CERTIFICATE_TIMEOUT = 10.0  # a second look at a refused certificate, per step


@dataclass(frozen=True, slots=True)
class Letter:
    """One message to one recipient: one transaction in a session."""

    message: bytes
    mail_from: str
    rcpt_to: str


# Told (letter's index, its outcome) as soon as that letter's fate is known.
Sent = Callable[[int, SendOutcome], None]


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
    outcomes: list[SendOutcome] = []
    letter = Letter(message, mail_from, rcpt_to)
    await send_letters(
        endpoint,
        login=login,
        letters=[letter],
        ssl_context=ssl_context,
        sent=lambda _, outcome: outcomes.append(outcome),
    )
    return outcomes[0]


async def send_letters(
    endpoint: SmtpEndpoint,
    *,
    login: Credentials | None,
    letters: Sequence[Letter],
    ssl_context: ssl.SSLContext,
    sent: Sent,
) -> None:
    """Send each letter in its own transaction, over one session while it lasts; `sent` is
    told every letter's outcome exactly once. Never raises except `asyncio.CancelledError`.

    A letter's outcome holds every reply its session gave: the opening (greeting, EHLO, TLS,
    AUTH) once more for each letter after the first, marked `shared`, then its own MAIL, RCPT
    and DATA. A failure to open the session is every waiting letter's failure.
    """
    outbox = _Outbox(endpoint, login, ssl_context, letters, sent)
    while outbox.waiting:
        await outbox.session()


@dataclass
class _Outbox:
    endpoint: SmtpEndpoint
    login: Credentials | None
    ssl_context: ssl.SSLContext
    letters: Sequence[Letter]
    sent: Sent
    waiting: deque[int] = field(init=False)
    # Replies a letter heard on a session that ended before its MAIL was accepted.
    earlier: dict[int, list[SmtpReply]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.waiting = deque(range(len(self.letters)))

    async def session(self) -> None:
        """One session: opened, then one transaction per waiting letter, in order, until none
        waits or the session can take no more (the rest wait for the next one)."""
        implicit_tls = self.endpoint.security == Security.TLS
        opening = Conversation(timeout=self.endpoint.timeout)
        smtp: SMTP | None = None
        try:
            smtp = client(self.endpoint, self.ssl_context)
            await open_session(smtp, opening, self.endpoint, self.login)
        except asyncio.CancelledError:
            if smtp is not None:
                smtp.close()
            raise
        except Exception as exc:
            failure = failure_for(exc, opening, implicit_tls)
            if smtp is not None:
                await goodbye(smtp, failure)
            if find_cause(exc, ssl.SSLCertVerificationError) is not None:
                failure = await _with_certificate(failure, self.endpoint)
            for n, index in enumerate(self.waiting):
                self._done(index, self._joining(opening, index, shared=n > 0).outcome(failure))
            self.waiting.clear()
            return
        failure = await self._transactions(smtp, opening)
        await goodbye(smtp, failure)

    async def _transactions(self, smtp: SMTP, opening: Conversation) -> Failure | None:
        failure: Failure | None = None
        n = 0
        try:
            while self.waiting:
                index = self.waiting[0]
                conversation = self._joining(opening, index, shared=n > 0)
                outcome = await _transaction(smtp, conversation, self.endpoint, self.letters[index])
                failure = outcome.failure
                if n > 0 and _ended_between(failure):
                    # The server closed the session after the last letter (a per-session limit,
                    # an idle timer): this letter was never taken up, so it goes on a new one.
                    self.earlier[index] = conversation.replies
                    log.info("smtp session ended between letters; opening a new one", sent=n)
                    return failure
                self.waiting.popleft()
                self._done(index, outcome)
                n += 1
                if failure is not None and not (self.waiting and await _reset(smtp, failure)):
                    return failure
        except asyncio.CancelledError:
            smtp.close()
            raise
        return failure

    def _joining(self, opening: Conversation, index: int, *, shared: bool) -> Conversation:
        """A letter's conversation: what it heard before, then this session's opening."""
        replies = [replace(r, shared=True) for r in opening.replies] if shared else opening.replies
        return Conversation(
            timeout=opening.timeout,
            phase=Phase.MAIL_FROM,
            replies=[*self.earlier.pop(index, ()), *replies],
            tls_version=opening.tls_version,
        )

    def _done(self, index: int, outcome: SendOutcome) -> None:
        _log(self.endpoint, outcome)
        self.sent(index, outcome)


async def _transaction(
    smtp: SMTP, conversation: Conversation, endpoint: SmtpEndpoint, letter: Letter
) -> SendOutcome:
    try:
        await conversation.step(Phase.MAIL_FROM, smtp.mail(letter.mail_from))
        await conversation.step(Phase.RCPT_TO, smtp.rcpt(letter.rcpt_to))
        conversation.phase = Phase.DATA
        async with asyncio.timeout(endpoint.timeout):
            reply = await smtp.data(letter.message)
    except Exception as exc:  # CancelledError is no Exception: it propagates
        failure = failure_for(exc, conversation, endpoint.security == Security.TLS)
        return conversation.outcome(failure)
    handoff_monotonic, handoff_at = time.monotonic(), utcnow()
    conversation.record(Phase.DATA, reply.code, reply.message)
    return conversation.outcome(
        queue_id=parse_queue_id(reply.message),
        handoff_at=handoff_at,
        handoff_monotonic=handoff_monotonic,
    )


def _ended_between(failure: Failure | None) -> bool:
    """The session was gone before the server took up this letter's MAIL: no answer at all,
    or 421 (closing)."""
    return failure is not None and failure.phase is Phase.MAIL_FROM and failure.code in (None, 421)


async def _reset(smtp: SMTP, failure: Failure) -> bool:
    """RSET after a refused transaction, so the next letter starts clean; False when the
    session cannot go on (the letters still waiting then get a new one)."""
    if not in_step(smtp, failure):
        return False
    try:
        async with asyncio.timeout(smtp.timeout):
            await smtp.rset()
    except Exception as exc:
        log.info("smtp reset failed; opening a new session", error=type(exc).__name__)
        smtp.close()
        return False
    return True


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


def _log(endpoint: SmtpEndpoint, outcome: SendOutcome) -> None:
    failure = outcome.failure
    if failure is None:
        # Every canary's: skipped outright unless shown, since structlog runs its processors
        # (context, time stamp, redaction) before the level is looked at.
        if not logging.getLogger(__name__).isEnabledFor(logging.DEBUG):
            return
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
