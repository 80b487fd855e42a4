"""Verdict rules: a probe's final state as a pure function of what was observed.

Arrival time: the true arrival lies in an interval, and the interval is recorded with the
verdict: each probe's error bar. Our own clock bounds it from below by the hand-off and by the
last look at the folder that did not show the canary (see probe.lookout), and from above by
the moment we saw it. The server's stamps (INTERNALDATE, the top Received header) come from
another clock with one-second precision: a stamp `s` says the arrival lies in [s, s + 1). A
stamp is trusted only when it is plausible: not before the hand-off (minus its precision), not
after we saw the message, and not contradicting our own bounds (clock skew). When the interval
is at most a second wide its midpoint is the arrival, never more than half its width off;
when it is wider (a canary seen by a late push or poll, with no usable stamp), detection is
used as is: an IDLE push comes soon after the arrival, and the middle of a long wait does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.core.models import (
    ArrivalSource,
    Decision,
    Failure,
    Phase,
    Role,
    SendOutcome,
    Sighting,
    Verdict,
)

# Server stamps are truncated to whole seconds.
STAMP_PRECISION = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Arrival:
    """When the canary landed (`at`), what bounded it, and where it surely lies: after
    `after` (None: no lower bound known) and no later than `before`."""

    at: datetime
    source: ArrivalSource
    after: datetime | None
    before: datetime


def _latest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def arrival(handoff_at: datetime | None, sighting: Sighting) -> Arrival:
    """The best estimate of when the canary landed, which observation bounded it, and the
    interval it surely lies in."""
    detected, missed = sighting.detected_at, sighting.missed_at
    ours = _latest(handoff_at, missed if missed is not None and missed < detected else None)
    lower, upper, source = ours, detected, ArrivalSource.LOOKOUT
    stamps = (
        (sighting.internal_date, ArrivalSource.INTERNALDATE),
        (sighting.received_at, ArrivalSource.RECEIVED),
    )
    for stamp, stamp_source in stamps:
        if stamp is None or stamp > detected:
            continue  # a stamp from the future means the server clock runs ahead
        if handoff_at is not None and stamp < handoff_at - STAMP_PRECISION:
            continue  # arrived before it was sent: clock skew, not evidence
        lower = _latest(lower, stamp)
        if stamp + STAMP_PRECISION < upper:
            upper, source = stamp + STAMP_PRECISION, stamp_source
    if lower is not None and lower > upper:  # the stamps contradict our own clock's bounds
        lower, upper, source = ours, detected, ArrivalSource.LOOKOUT
    if lower is None or upper - lower > STAMP_PRECISION:
        return Arrival(detected, ArrivalSource.DETECTED, lower, upper)
    return Arrival(lower + (upper - lower) / 2, source, lower, upper)


def send_failed(outcome: SendOutcome) -> Decision:
    return Decision(verdict=Verdict.SEND_FAILED, failure=outcome.failure)


def found(outcome: SendOutcome | None, sighting: Sighting, deadline_at: datetime) -> Decision:
    """Inbox or spam by the folder's role; `late` when it arrived after the deadline."""
    handoff = outcome.handoff_at if outcome is not None else None
    landed = arrival(handoff, sighting)
    arrived_at = landed.at
    if arrived_at > deadline_at:
        verdict = Verdict.LATE
    else:
        verdict = Verdict.SPAM if sighting.role is Role.SPAM else Verdict.INBOX
    delivery = (arrived_at - handoff).total_seconds() if handoff is not None else None
    return Decision(
        verdict=verdict,
        folder=sighting.folder,
        role=sighting.role,
        arrived_at=arrived_at,
        arrival_source=landed.source,
        arrived_after=landed.after,
        arrived_before=landed.before,
        delivery_seconds=delivery,
    )


# A probe that ended (a crash, a stop) before its hand-off was recorded, and whose canary
# was not found either: whether it ever left is unknown, so it says nothing about the route.
INTERRUPTED = "interrupted"


def not_found(outcome: SendOutcome | None, reason: str | None = None) -> Decision:
    """No canary by the deadline. `missing` needs a hand-off: a canary never handed over
    cannot be missing, so without one the probe is `send_failed` with the recorded failure,
    or `interrupted` when nothing was recorded."""
    if outcome is not None and outcome.ok:
        return Decision(verdict=Verdict.MISSING, reason=reason)
    if outcome is not None and outcome.failure is not None:
        return Decision(verdict=Verdict.SEND_FAILED, failure=outcome.failure, reason=reason)
    phase = outcome.phase if outcome is not None else Phase.CONNECT
    message = "the probe was interrupted before its hand-off was recorded; no canary was found"
    return Decision(
        verdict=Verdict.SEND_FAILED,
        failure=Failure(INTERRUPTED, phase, True, message),
        reason=reason,
    )


def revisable(decision: Decision) -> bool:
    """Whether a canary turning up after this verdict replaces it: only a verdict that said
    "not seen" and nothing more (missing, or interrupted before the hand-off)."""
    failure = decision.failure
    return decision.verdict is Verdict.MISSING or (
        decision.verdict is Verdict.SEND_FAILED
        and failure is not None
        and failure.kind == INTERRUPTED
    )


def check_failed(failure: Failure) -> Decision:
    return Decision(verdict=Verdict.CHECK_FAILED, failure=failure)


# Nagios-style exit codes for a batch of verdicts: the worst one wins.
_SEVERITY = {
    Verdict.INBOX: 0,
    Verdict.SPAM: 1,
    Verdict.LATE: 1,
    Verdict.MISSING: 2,
    Verdict.SEND_FAILED: 2,
    Verdict.CHECK_FAILED: 3,
}


def exit_code(verdicts: list[Verdict]) -> int:
    """0 all inbox; 1 any spam or late; 2 any missing or send_failed; 3 any check_failed."""
    return max((_SEVERITY[v] for v in verdicts), default=0)
