"""Why a send failed, as a small stable set of kinds; the seed of the reply catalogue.

Replies (`classify_reply`) are matched against `REPLY_RULES` top to bottom, first match wins
(rules of `monitor.core.rules`, the engine the advice catalogue uses too); `transient` follows
the reply class ("class": 4xx yes, 5xx no) unless the rule says otherwise.

| kind                 | when (reply rules, in order)                                  | transient |
|----------------------|---------------------------------------------------------------|-----------|
| greeting_refused     | a refusal instead of the 220 greeting (421, 554 blocklist)    | class     |
| starttls_unavailable | STARTTLS answered with an error (454 4.7.0 TLS not available) | class     |
| auth_failed          | any refusal during AUTH (535, 534, 530, 538, 454…)            | class     |
| auth_failed          | enhanced x.7.8 (bad credentials) in any phase                 | class     |
| auth_required        | 530 outside AUTH (5.7.0 / 5.7.57: authenticate first)         | no        |
| ehlo_refused         | EHLO refused (e.g. 550 bad HELO name, 421 closing)            | class     |
| deferred             | 552 at RCPT TO: too many recipients (RFC 5321 §4.5.3.1.10)    | yes       |
| sender_refused       | 553, or 5xx x.7.1, at MAIL FROM (not your address)            | no        |
| message_refused      | 552 (size) or 554 (content) at DATA                           | no        |
| rejected             | any other 5xx at MAIL FROM / RCPT TO / DATA                   | no        |
| deferred             | any other 4xx at MAIL FROM / RCPT TO / DATA (greylisting…)    | yes       |
| protocol_error       | a reply no rule expects (e.g. a 3xx where a 2xx was due)      | class     |

Failures without a reply (`classify_error`, `ERROR_KINDS`):

| kind                 | when                                                          | transient |
|----------------------|---------------------------------------------------------------|-----------|
| dns_failed           | the host name does not resolve (resolver outage: transient)   | no        |
| connect_failed       | TCP connection refused / unreachable                          | yes       |
| timeout              | no answer within the endpoint's timeout, in the phase it hit  | yes       |
| tls_failed           | handshake failed; certificate untrusted, expired, wrong host  | no        |
| starttls_unavailable | STARTTLS required but the server does not offer it            | no        |
| auth_unavailable     | credentials given but the server offers no usable AUTH        | no        |
| connection_lost      | the server closed the connection mid-conversation             | yes       |
| protocol_error       | the conversation broke in a way nothing above describes       | no        |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from monitor.core.models import Failure, Phase
from monitor.core.rules import Rule, first_match, rule

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?=\s|$|[^\w.])")


def parse_enhanced(text: str) -> str | None:
    """The RFC 3463 enhanced status code leading a reply text ("5.7.8 Error: …"), if any."""
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


_4XX = frozenset(range(400, 500))
_5XX = frozenset(range(500, 600))
_TRANSACTION = (Phase.MAIL_FROM, Phase.RCPT_TO, Phase.DATA)


@dataclass(frozen=True, slots=True)
class Kind:
    """What a reply rule says: the failure's kind, and whether it is transient (None: by the
    reply class)."""

    name: str
    transient: bool | None = None


REPLY_RULES: tuple[Rule[Kind], ...] = (
    rule(Kind("greeting_refused"), phase=Phase.GREETING),
    rule(Kind("starttls_unavailable"), phase=Phase.TLS),
    rule(Kind("auth_failed"), phase=Phase.AUTH),
    rule(Kind("auth_failed"), enhanced="x.7.8"),
    rule(Kind("auth_required"), code=530),
    rule(Kind("ehlo_refused"), phase=Phase.EHLO),
    # RFC 5321 asks clients to treat 552 at RCPT as "too many recipients", i.e. temporary.
    rule(Kind("deferred", transient=True), phase=Phase.RCPT_TO, code=552),
    rule(Kind("sender_refused"), phase=Phase.MAIL_FROM, code=553),
    rule(Kind("sender_refused"), phase=Phase.MAIL_FROM, code=_5XX, enhanced="x.7.1"),
    rule(Kind("message_refused"), phase=Phase.DATA, code=(552, 554)),
    rule(Kind("rejected"), phase=_TRANSACTION, code=_5XX),
    rule(Kind("deferred"), phase=_TRANSACTION, code=_4XX),
)


def classify_reply(phase: Phase, code: int, text: str) -> Failure:
    """The failure an unwelcome reply means; `text` is the reply text without the code."""
    enhanced = parse_enhanced(text)
    found = first_match(REPLY_RULES, phase=phase, code=code, enhanced=enhanced)
    kind = found.says if found else Kind("protocol_error")
    transient = kind.transient if kind.transient is not None else code in _4XX
    return Failure(
        kind=kind.name,
        phase=phase,
        transient=transient,
        message=text.strip(),
        code=code,
        enhanced=enhanced,
    )


ERROR_KINDS: dict[str, bool] = {  # kind -> transient by default
    "dns_failed": False,
    "connect_failed": True,
    "timeout": True,
    "tls_failed": False,
    "starttls_unavailable": False,
    "auth_unavailable": False,
    "connection_lost": True,
    "protocol_error": False,
}

KINDS: frozenset[str] = frozenset({r.says.name for r in REPLY_RULES} | set(ERROR_KINDS))


def classify_error(
    phase: Phase, kind: str, message: str, *, transient: bool | None = None
) -> Failure:
    """A failure that came without an SMTP reply. Unknown kinds are a bug: ValueError."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown failure kind {kind!r}; known: {sorted(ERROR_KINDS)}")
    return Failure(
        kind=kind,
        phase=phase,
        transient=ERROR_KINDS[kind] if transient is None else transient,
        message=message,
    )


def certificate_note(subject: str, not_after: datetime, now: datetime) -> str:
    """What a refused certificate said of itself, for a tls_failed message:
    "subject CN=mx.example.com, expires 2027-01-01 (in 34 days)"."""
    days = int((not_after - now).total_seconds() / 86400)  # whole days, toward zero
    span = "today" if days == 0 else f"{abs(days)} day{'' if abs(days) == 1 else 's'}"
    when = not_after.date().isoformat()
    if not_after <= now:
        return f"subject {subject}, expired {when} ({span if days == 0 else span + ' ago'})"
    return f"subject {subject}, expires {when} ({span if days == 0 else 'in ' + span})"


_TOKEN = r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
_QUEUE_ID_SHAPES = (
    re.compile(r"queued as\s+" + _TOKEN, re.IGNORECASE),  # Postfix, SendGrid, Fastmail
    re.compile(r"\bInternalId=(\d+)"),  # Exchange / Microsoft 365
    re.compile(r"\bid=" + _TOKEN),  # Exim: "OK id=1tAbCd-000123-Xy"
    re.compile(r"\s" + _TOKEN + r" - gsmtp\b"),  # Gmail: "OK  1712345678 a1b2…si.123 - gsmtp"
    re.compile(r"\bqp\s+(\d+)"),  # qmail: "ok 1712345678 qp 4242"
)
_ID_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{6,}[A-Za-z0-9]")
_HOSTNAME = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")  # mx1.example.com is not an id


def parse_queue_id(text: str) -> str | None:
    """The server's id for an accepted message, from the final DATA reply text.

    Known shapes first; otherwise the first token that looks like an id (8+ characters,
    letters and digits mixed, not an address, host name or status code). None when nothing fits.
    """
    for shape in _QUEUE_ID_SHAPES:
        match = shape.search(text)
        if match:
            return match.group(1)
    for word in text.split():
        word = word.strip("<>[](),;.")
        if (
            _ID_LIKE.fullmatch(word)
            and "@" not in word
            and not _HOSTNAME.fullmatch(word)
            and any(c.isdigit() for c in word)
            and any(c.isalpha() for c in word)
        ):
            return word
    return None
