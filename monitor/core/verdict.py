"""Verdict rules: a probe's final state as a pure function of what was observed.

Arrival time: our detection time is an upper bound on when the canary landed (we saw it
then). The server's stamps (INTERNALDATE, the top Received header) have one-second
precision and come from another clock, so they are used only when they prove that
detection lagged by more than their own precision (e.g. polling instead of IDLE), and
only when they are plausible: not before the hand-off, not after we saw the message.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.core.models import (
    ArrivalSource,
    Decision,
    Failure,
    Role,
    SendOutcome,
    Sighting,
    Verdict,
)

# Server stamps are truncated to whole seconds.
STAMP_PRECISION = timedelta(seconds=1)


def arrival(handoff_at: datetime | None, sighting: Sighting) -> tuple[datetime, ArrivalSource]:
    """The earliest trustworthy arrival time and which observation gave it."""
    best, source = sighting.detected_at, ArrivalSource.DETECTED
    stamps = (
        (sighting.internal_date, ArrivalSource.INTERNALDATE),
        (sighting.received_at, ArrivalSource.RECEIVED),
    )
    for stamp, stamp_source in stamps:
        if stamp is None or stamp > sighting.detected_at:
            continue  # a stamp from the future means the server clock runs ahead
        if handoff_at is not None and stamp < handoff_at - STAMP_PRECISION:
            continue  # arrived before it was sent: clock skew, not evidence
        if stamp + STAMP_PRECISION >= best:
            continue  # no better than what we already have
        best, source = stamp, stamp_source
    if handoff_at is not None and best < handoff_at:
        best = handoff_at  # truncation can put a stamp just before the hand-off
    return best, source


def send_failed(outcome: SendOutcome) -> Decision:
    return Decision(verdict=Verdict.SEND_FAILED, failure=outcome.failure)


def found(outcome: SendOutcome | None, sighting: Sighting, deadline_at: datetime) -> Decision:
    """Inbox or spam by the folder's role; `late` when it arrived after the deadline."""
    handoff = outcome.handoff_at if outcome is not None else None
    arrived_at, source = arrival(handoff, sighting)
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
        arrival_source=source,
        delivery_seconds=delivery,
    )


def missing(reason: str | None = None) -> Decision:
    return Decision(verdict=Verdict.MISSING, reason=reason)


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
