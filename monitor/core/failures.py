"""Why a send failed, as a small stable set of kinds; the seed of the reply catalogue.

Replies (`classify_reply`) are matched against `REPLY_RULES` top to bottom, first match wins;
`transient` follows the reply class ("class": 4xx yes, 5xx no) unless the rule says otherwise.

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

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?=\s|$|[^\w.])")


def parse_enhanced(text: str) -> str | None:
    """The RFC 3463 enhanced status code leading a reply text ("5.7.8 Error: …"), if any."""
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


_4XX = frozenset(range(400, 500))
_5XX = frozenset(range(500, 600))


def _at(*phases: Phase) -> frozenset[Phase]:
    return frozenset(phases)


_TRANSACTION = _at(Phase.MAIL_FROM, Phase.RCPT_TO, Phase.DATA)


@dataclass(frozen=True, slots=True)
class ReplyRule:
    """One row of the reply table; every condition given must hold."""

    kind: str
    phases: frozenset[Phase] | None = None  # None: any phase
    codes: frozenset[int] | None = None  # None: any code
    enhanced: frozenset[str] | None = None  # "subject.detail", e.g. "7.8" for 4.7.8 and 5.7.8
    transient: bool | None = None  # None: by the reply class

    def matches(self, phase: Phase, code: int, enhanced: str | None) -> bool:
        if self.phases is not None and phase not in self.phases:
            return False
        if self.codes is not None and code not in self.codes:
            return False
        if self.enhanced is not None:
            return enhanced is not None and enhanced.split(".", 1)[1] in self.enhanced
        return True


REPLY_RULES: tuple[ReplyRule, ...] = (
    ReplyRule("greeting_refused", phases=_at(Phase.GREETING)),
    ReplyRule("starttls_unavailable", phases=_at(Phase.TLS)),
    ReplyRule("auth_failed", phases=_at(Phase.AUTH)),
    ReplyRule("auth_failed", enhanced=frozenset({"7.8"})),
    ReplyRule("auth_required", codes=frozenset({530})),
    ReplyRule("ehlo_refused", phases=_at(Phase.EHLO)),
    # RFC 5321 asks clients to treat 552 at RCPT as "too many recipients", i.e. temporary.
    ReplyRule("deferred", phases=_at(Phase.RCPT_TO), codes=frozenset({552}), transient=True),
    ReplyRule("sender_refused", phases=_at(Phase.MAIL_FROM), codes=frozenset({553})),
    ReplyRule(
        "sender_refused", phases=_at(Phase.MAIL_FROM), codes=_5XX, enhanced=frozenset({"7.1"})
    ),
    ReplyRule("message_refused", phases=_at(Phase.DATA), codes=frozenset({552, 554})),
    ReplyRule("rejected", phases=_TRANSACTION, codes=_5XX),
    ReplyRule("deferred", phases=_TRANSACTION, codes=_4XX),
)


def classify_reply(phase: Phase, code: int, text: str) -> Failure:
    """The failure an unwelcome reply means; `text` is the reply text without the code."""
    enhanced = parse_enhanced(text)
    rule = next((r for r in REPLY_RULES if r.matches(phase, code, enhanced)), None)
    kind = rule.kind if rule else "protocol_error"
    transient = rule.transient if rule and rule.transient is not None else code in _4XX
    return Failure(
        kind=kind,
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

KINDS: frozenset[str] = frozenset({r.kind for r in REPLY_RULES} | set(ERROR_KINDS))


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
