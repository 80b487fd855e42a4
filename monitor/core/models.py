"""The domain's nouns, as plain frozen dataclasses shared by every layer.

Nothing here does I/O; adapters fill these in, the core decides on them, the store
persists them. All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: `status --nagios` need not parse mail headers
    from monitor.core.receipt import Receipt


def utcnow() -> datetime:
    return datetime.now(UTC)


class Verdict(StrEnum):
    INBOX = "inbox"
    SPAM = "spam"
    MISSING = "missing"
    LATE = "late"
    SEND_FAILED = "send_failed"
    CHECK_FAILED = "check_failed"


class Security(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class Phase(StrEnum):
    """How far a probe got before it failed; SMTP phases first, then the watcher's."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    GREETING = "greeting"
    EHLO = "ehlo"
    AUTH = "auth"
    MAIL_FROM = "mail_from"
    RCPT_TO = "rcpt_to"
    DATA = "data"
    DONE = "done"
    IMAP_CONNECT = "imap_connect"
    IMAP_TLS = "imap_tls"
    IMAP_AUTH = "imap_auth"
    IMAP_SELECT = "imap_select"
    SEARCH = "search"
    FETCH = "fetch"


class Role(StrEnum):
    """The special-use role of a watched folder."""

    INBOX = "inbox"
    SPAM = "spam"


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """One reply the SMTP server gave, in the phase it answered.

    `shared`: given to a session another canary of the same route and slot opened first (its
    greeting, EHLO, TLS and AUTH), kept here too so each record shows the whole conversation;
    the canary that opened the session holds the same reply unshared, so counting only
    unshared replies counts each reply once."""

    phase: Phase
    code: int
    enhanced: str | None
    text: str
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified failure: `kind` is a stable snake_case class (auth_failed, rejected…)."""

    kind: str
    phase: Phase
    transient: bool
    message: str
    code: int | None = None
    enhanced: str | None = None


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """Everything one SMTP attempt taught us; produced by the smtp adapter, never raised."""

    phase: Phase  # the phase reached: DONE on success, else the one that failed
    replies: tuple[SmtpReply, ...] = ()
    failure: Failure | None = None
    queue_id: str | None = None
    tls_version: str | None = None
    handoff_at: datetime | None = None  # wall clock when DATA's 250 came back
    handoff_monotonic: float | None = None  # time.monotonic() at the same moment

    @property
    def ok(self) -> bool:
        return self.failure is None and self.handoff_at is not None

    @property
    def last_reply(self) -> SmtpReply | None:
        return self.replies[-1] if self.replies else None


@dataclass(frozen=True, slots=True)
class Sighting:
    """A verified canary seen by a watcher in one of the recipient's folders."""

    token: str
    folder: str  # decoded (human) folder name
    role: Role
    uid: int
    uidvalidity: int
    detected_at: datetime  # our clock, when the watcher saw it
    internal_date: datetime | None = None  # IMAP INTERNALDATE (second precision)
    received_at: datetime | None = None  # date of the top Received header
    message_id: str | None = None
    receipt: Receipt | None = None  # what the receiving side's headers say of the canary
    # Our clock: when the last look at this folder that did not show it began (None: none
    # known, e.g. an explicit search). The canary landed after this and before detected_at.
    missed_at: datetime | None = None


class ArrivalSource(StrEnum):
    DETECTED = "detected"
    INTERNALDATE = "internaldate"
    RECEIVED = "received"
    # The middle of a window at most a second wide that our own sighting (a look or a push)
    # closes, opened by the hand-off, a look that missed the canary, or a server stamp.
    LOOKOUT = "lookout"


@dataclass(frozen=True, slots=True)
class Decision:
    """A probe's final state, as decided by `monitor.probe.verdict`."""

    verdict: Verdict
    folder: str | None = None
    role: Role | None = None
    arrived_at: datetime | None = None
    arrival_source: ArrivalSource | None = None
    # Where the arrival surely lies, as far as all the evidence bounds it (the error bar).
    arrived_after: datetime | None = None
    arrived_before: datetime | None = None
    delivery_seconds: float | None = None
    failure: Failure | None = None
    reason: str | None = None  # e.g. "restart" for a probe resolved after a crash


@dataclass(frozen=True, slots=True)
class PlannedProbe:
    """The row written before a canary leaves."""

    token: str
    route: str
    sender: str  # account name
    recipient: str  # account name
    slot: datetime  # planned time rounded to the route's interval; unique per route/recipient
    planned_at: datetime
    deadline_at: datetime
    message_id: str
    instance: str = "default"


@dataclass(frozen=True, slots=True)
class Advice:
    """The reply catalogue's words on a failure (monitor.core.catalogue)."""

    explanation: str  # what happened and its likely cause
    remedy: str  # what the operator can do


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """A probe as the store knows it: planned facts, send facts, final decision."""

    id: int
    planned: PlannedProbe
    state: str  # planned | sending | sent | final
    send: SendOutcome | None = None
    sighting: Sighting | None = None
    decision: Decision | None = None
    finished_at: datetime | None = None
    extra: dict[str, object] = field(default_factory=dict)
    advice: Advice | None = None  # the catalogue's words on the failure, as stored with it
