"""When to alert: a pure state machine per (route, recipient, kind).

Each final probe is turned into observations (`observe`), one per alert kind: bad, good,
or `other` — this kind's failure has given way to another kind's (a `missing` route that
now fails to send):

| verdict       | send_failed | check_failed | missing | spam  | slow                     |
|---------------|-------------|--------------|---------|-------|--------------------------|
| send_failed   | bad         | other        | other   | other | other                    |
| check_failed  | good        | bad          | other   | other | other                    |
| missing, late | good        | good         | bad     | other | other                    |
| spam          | good        | good         | good    | bad   | bad if delivery > slow_after |
| inbox         | good        | good         | good    | good  | bad if delivery > slow_after |

`other` resolves a firing alert like a good canary does (after `resolve_after` of them), so
an alert never outlives its kind of failure; it neither breaks nor feeds a pending streak,
so a route that alternates between two kinds of failure still fires. A spam or inbox
canary without a hand-off time says nothing about slowness, and a probe `interrupted`
before its hand-off (see `monitor.core.verdict.not_found`) says nothing at all.

`late` counts as `missing`: by its deadline the canary was not there. A canary that turns
up after its probe said missing (the runner's "late" stage) does not retract anything; the
next canary that arrives in time resolves the alert.

States: ok → pending (bad, below the threshold) → firing → resolved (→ pending again on the
next bad). A key fires after `after_failures` consecutive bad observations, or on the first
when the failure means the settings broke (wrong password, TLS) and `immediate_on_settings`
is on. Hysteresis against flapping: a firing key resolves only after `resolve_after`
consecutive good observations, and once resolved it needs `after_failures` bad ones again
to fire, so bad/good/bad/good… neither fires (after_failures ≥ 2) nor, once firing,
resolves (resolve_after ≥ 2). A firing key repeats itself (`reminder`) every
`remind_every` seconds of wall time; 0 means never.

Observations are ordered by the probe's planned time; one not newer than the last one seen
is ignored. That makes replaying probes after a crash harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from monitor.alerts.kinds import AlertKind
from monitor.core.models import Failure, ProbeRecord, Verdict
from monitor.probe.verdict import INTERRUPTED


class Status(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Event(StrEnum):
    """What a transition tells the world; `test` only comes from `mailcanary test-alert`."""

    FIRING = "firing"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    TEST = "test"


# Failures that mean the configuration no longer matches the server: waiting for a second
# canary only delays the news, nothing fixes itself.
SETTINGS_FAILURES = frozenset(
    {"auth_failed", "tls_failed", "starttls_unavailable", "auth_required", "auth_unavailable"}
)


@dataclass(frozen=True, slots=True)
class Policy:
    after_failures: int = 2
    resolve_after: int = 1
    remind_every: float = 6 * 3600.0  # seconds; 0: never
    slow_after: float = 300.0
    on: frozenset[AlertKind] = frozenset(AlertKind)
    immediate_on_settings: bool = True


@dataclass(frozen=True, slots=True)
class Evidence:
    """The whitelisted facts of one probe that a message may show; never a secret."""

    probe_id: int
    planned_at: datetime
    verdict: Verdict
    sender: str
    folder: str | None = None
    delivery_seconds: float | None = None
    failure: Failure | None = None
    auth: tuple[tuple[str, str], ...] = ()  # (spf|dkim|dmarc, result) as the receiver wrote
    content: str = ""  # the receiver's content filter: score/threshold and its top rules


@dataclass(frozen=True, slots=True)
class Observation:
    kind: AlertKind
    bad: bool
    evidence: Evidence
    settings: bool = False  # a failure of SETTINGS_FAILURES
    other: bool = False  # not bad, but not good either: another kind is failing

    @property
    def at(self) -> datetime:
        return self.evidence.planned_at


Key = tuple[str, str, AlertKind]  # (route, recipient, kind)


@dataclass(frozen=True, slots=True)
class AlertState:
    route: str
    recipient: str
    kind: AlertKind
    status: Status = Status.OK
    bad_streak: int = 0
    good_streak: int = 0
    since: datetime | None = None  # planned time of the first bad canary of this episode
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_good_at: datetime | None = None  # planned time of the newest good canary
    last_bad_at: datetime | None = None
    last_seen_at: datetime | None = None  # planned time of the newest observation applied
    last_notified_at: datetime | None = None
    seq: int = 0  # transitions so far; with the key it names a transition for good
    evidence: Evidence | None = None  # the newest bad canary
    recovery: Evidence | None = None  # the good canary that resolved it

    @property
    def key(self) -> Key:
        return (self.route, self.recipient, self.kind)

    @property
    def open(self) -> bool:
        return self.status is Status.FIRING


@dataclass(frozen=True, slots=True)
class Transition:
    event: Event
    state: AlertState  # the state right after it
    at: datetime

    @property
    def id(self) -> str:
        return transition_id(self.state)


def transition_id(state: AlertState) -> str:
    """Names the state's latest transition; stable across restarts and instances, so the
    outbox dedupes on it. Config names cannot contain "/"."""
    return f"{state.route}/{state.recipient}/{state.kind.value}/{state.seq}"


def evidence_of(record: ProbeRecord) -> Evidence | None:
    # Imported here: the config names AlertKind and Policy, and every command loads the
    # config, but only alerting reads the receiver's headers (issue #17).
    from monitor.content.spamscore import brief, parse_scores
    from monitor.core.receipt import auth_verdicts

    decision = record.decision
    if decision is None:
        return None
    failure = decision.failure
    if failure is None and record.send is not None:
        failure = record.send.failure
    receipt = record.sighting.receipt if record.sighting is not None else None
    return Evidence(
        probe_id=record.id,
        planned_at=record.planned.planned_at,
        verdict=decision.verdict,
        sender=record.planned.sender,
        folder=decision.folder,
        delivery_seconds=decision.delivery_seconds,
        failure=failure,
        auth=tuple(auth_verdicts(receipt.auth).items()) if receipt is not None else (),
        content=brief(parse_scores(receipt.spam_headers), rules=3) if receipt is not None else "",
    )


# The stages a canary goes through, in order, and the verdicts that fail each.
_STAGES = (AlertKind.SEND_FAILED, AlertKind.CHECK_FAILED, AlertKind.MISSING)
_FAILING = {
    Verdict.SEND_FAILED: AlertKind.SEND_FAILED,
    Verdict.CHECK_FAILED: AlertKind.CHECK_FAILED,
    Verdict.MISSING: AlertKind.MISSING,
    Verdict.LATE: AlertKind.MISSING,  # not there by its deadline
}


def observe(record: ProbeRecord, policy: Policy) -> list[Observation]:
    """What one final probe says about each alert kind the policy watches."""
    evidence = evidence_of(record)
    if evidence is None:
        return []
    if evidence.failure is not None and evidence.failure.kind == INTERRUPTED:
        return []  # it may never have left: nothing is known about the route
    verdict = evidence.verdict
    settings = evidence.failure is not None and evidence.failure.kind in SETTINGS_FAILURES
    found: dict[AlertKind, bool | None] = {}  # None: another kind is failing
    failing = _FAILING.get(verdict)
    if failing is None:
        found.update(dict.fromkeys(_STAGES, False))
        found[AlertKind.SPAM] = verdict is Verdict.SPAM
        if evidence.delivery_seconds is not None:
            found[AlertKind.SLOW] = evidence.delivery_seconds > policy.slow_after
    else:
        # The stages before the failing one worked; those after it were never reached.
        at = _STAGES.index(failing)
        for index, kind in enumerate(_STAGES):
            found[kind] = False if index < at else (True if index == at else None)
        found[AlertKind.SPAM] = found[AlertKind.SLOW] = None
    return [
        Observation(kind, bad is True, evidence, settings=bool(bad) and settings, other=bad is None)
        for kind, bad in found.items()
        if kind in policy.on
    ]


def step(
    state: AlertState, observation: Observation | None, policy: Policy, now: datetime
) -> tuple[AlertState, list[Transition]]:
    """The next state and what to tell; `observation=None` is a clock tick (reminders)."""
    if observation is None:
        return _tick(state, policy, now)
    if state.last_seen_at is not None and observation.at <= state.last_seen_at:
        return state, []  # a replay or an older canary finishing late: newer evidence rules
    seen = replace(state, last_seen_at=observation.at)
    if observation.bad:
        return _bad(seen, observation, policy, now)
    if observation.other:
        return _other(seen, observation, policy, now)
    return _good(seen, observation, policy, now)


def _bad(
    state: AlertState, observation: Observation, policy: Policy, now: datetime
) -> tuple[AlertState, list[Transition]]:
    starting = state.status in (Status.OK, Status.RESOLVED)
    state = replace(
        state,
        bad_streak=state.bad_streak + 1,
        good_streak=0,
        since=observation.at if starting else state.since,
        last_bad_at=observation.at,
        evidence=observation.evidence,
    )
    if state.status is Status.FIRING:
        return state, []
    threshold = policy.after_failures
    if observation.settings and policy.immediate_on_settings:
        threshold = 1
    if state.bad_streak < threshold:
        return replace(state, status=Status.PENDING), []
    fired = replace(
        state,
        status=Status.FIRING,
        fired_at=now,
        resolved_at=None,
        recovery=None,
        last_notified_at=now,
        seq=state.seq + 1,
    )
    return fired, [Transition(Event.FIRING, fired, now)]


def _good(
    state: AlertState, observation: Observation, policy: Policy, now: datetime
) -> tuple[AlertState, list[Transition]]:
    state = replace(
        state, good_streak=state.good_streak + 1, bad_streak=0, last_good_at=observation.at
    )
    if state.status is Status.PENDING:
        return replace(state, status=Status.OK, since=None), []
    return _resolve(state, observation, policy, now)


def _other(
    state: AlertState, observation: Observation, policy: Policy, now: datetime
) -> tuple[AlertState, list[Transition]]:
    # Only a firing alert moves: its failure has given way to another kind's. A pending
    # streak is kept, so failures alternating between two kinds still fire.
    if state.status is not Status.FIRING:
        return state, []
    ending = replace(state, good_streak=state.good_streak + 1, bad_streak=0)
    return _resolve(ending, observation, policy, now)


def _resolve(
    state: AlertState, observation: Observation, policy: Policy, now: datetime
) -> tuple[AlertState, list[Transition]]:
    if state.status is not Status.FIRING or state.good_streak < policy.resolve_after:
        return state, []
    resolved = replace(
        state,
        status=Status.RESOLVED,
        resolved_at=now,
        recovery=observation.evidence,
        last_notified_at=now,
        seq=state.seq + 1,
    )
    return resolved, [Transition(Event.RESOLVED, resolved, now)]


def _tick(state: AlertState, policy: Policy, now: datetime) -> tuple[AlertState, list[Transition]]:
    if state.status is not Status.FIRING or policy.remind_every <= 0:
        return state, []
    last = state.last_notified_at or state.fired_at
    if last is not None and now - last < timedelta(seconds=policy.remind_every):
        return state, []
    reminded = replace(state, last_notified_at=now, seq=state.seq + 1)
    return reminded, [Transition(Event.REMINDER, reminded, now)]
