from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.models import (
    ArrivalSource,
    Failure,
    Phase,
    Role,
    SendOutcome,
    Sighting,
    Verdict,
)
from monitor.probe import verdict

T0 = datetime(2026, 11, 28, 12, 0, 0, 400000, tzinfo=UTC)
DEADLINE = T0 + timedelta(minutes=10)


def sent(at: datetime = T0) -> SendOutcome:
    return SendOutcome(phase=Phase.DONE, handoff_at=at, handoff_monotonic=1.0)


def seen(
    after: float,
    role: Role = Role.INBOX,
    internal: datetime | None = None,
    received: datetime | None = None,
    missed: float | None = None,
) -> Sighting:
    return Sighting(
        token="t",
        folder="INBOX" if role is Role.INBOX else "Junk",
        role=role,
        uid=7,
        uidvalidity=1,
        detected_at=T0 + timedelta(seconds=after),
        internal_date=internal,
        received_at=received,
        missed_at=T0 + timedelta(seconds=missed) if missed is not None else None,
    )


def test_a_prompt_sighting_is_the_middle_of_its_window_from_the_hand_off():
    # Seen 0.3 s after the hand-off; the server's stamp is the same second, truncated.
    d = verdict.found(sent(), seen(0.3, internal=T0.replace(microsecond=0)), DEADLINE)
    assert d.verdict is Verdict.INBOX
    assert d.arrival_source is ArrivalSource.LOOKOUT
    assert (d.arrived_after, d.arrived_before) == (T0, T0 + timedelta(seconds=0.3))
    assert d.delivery_seconds == pytest.approx(0.15)


def test_polling_lag_is_corrected_by_the_server_stamp():
    # It landed at T0+3.2 s; the stamp says 12:00:03; a poll saw it only at T0+14 s.
    stamp = (T0 + timedelta(seconds=3)).replace(microsecond=0)
    d = verdict.found(sent(), seen(14.0, internal=stamp), DEADLINE)
    assert d.arrival_source is ArrivalSource.INTERNALDATE
    # the middle of [12:00:03, 12:00:04), measured from the 12:00:00.4 hand-off
    assert d.delivery_seconds == pytest.approx(3.1)
    assert abs(d.delivery_seconds - 3.2) <= 0.5


def test_skewed_stamps_are_ignored_and_never_give_negative_delivery():
    future = T0 + timedelta(seconds=60)  # server clock ahead of ours
    past = T0 - timedelta(seconds=30)  # before we sent it
    d = verdict.found(sent(), seen(14.0, internal=future, received=past), DEADLINE)
    assert d.arrival_source is ArrivalSource.DETECTED
    assert d.delivery_seconds == pytest.approx(14.0)
    # a truncated stamp a fraction before the hand-off bounds arrival from the hand-off on
    d = verdict.found(sent(), seen(5.0, received=T0.replace(microsecond=0)), DEADLINE)
    assert d.arrival_source is ArrivalSource.RECEIVED
    assert d.delivery_seconds == pytest.approx(0.3)  # middle of [hand-off, 12:00:01)


def test_a_held_delivery_is_the_middle_of_the_window_between_two_looks():
    # Held 5 s: our look at T0+5.0 missed it, the next saw it at T0+5.18 (IDLE would have
    # said T0+5.6; the whole-second stamp only [12:00:05, 12:00:06)).
    stamp = (T0 + timedelta(seconds=5)).replace(microsecond=0)
    d = verdict.found(sent(), seen(5.18, internal=stamp, missed=5.0), DEADLINE)
    assert d.arrival_source is ArrivalSource.LOOKOUT
    assert (d.arrived_after, d.arrived_before) == (
        T0 + timedelta(seconds=5),
        seen(5.18).detected_at,
    )
    assert d.delivery_seconds == pytest.approx(5.09)
    # the stamp clips the window: our [T0+5.5, T0+5.9] and its [12:00:05, 12:00:06), T0 being
    # 12:00:00.4, leave [T0+5.5, T0+5.6]
    stamp = (T0 + timedelta(seconds=4.7)).replace(microsecond=0)
    d = verdict.found(sent(), seen(5.9, internal=stamp, missed=5.5), DEADLINE)
    assert d.arrival_source is ArrivalSource.INTERNALDATE  # the stamp closed it
    assert (d.arrived_after, d.arrived_before) == (
        T0 + timedelta(seconds=5.5),
        stamp + timedelta(seconds=1),
    )
    assert d.delivery_seconds == pytest.approx(5.55)


def test_a_window_is_only_as_good_as_its_evidence():
    # A look long before (a reconnect in between) is a wider window than the stamp's second.
    stamp = (T0 + timedelta(seconds=8)).replace(microsecond=0)
    d = verdict.found(sent(), seen(30.0, internal=stamp, missed=2.0), DEADLINE)
    assert d.arrival_source is ArrivalSource.INTERNALDATE
    assert (d.arrived_after, d.arrived_before) == (stamp, stamp + timedelta(seconds=1))
    # A stamp before our own look missed it is skew: our clock's window stands alone.
    early = (T0 + timedelta(seconds=2)).replace(microsecond=0)
    d = verdict.found(sent(), seen(5.2, internal=early, missed=5.0), DEADLINE)
    assert d.arrival_source is ArrivalSource.LOOKOUT
    assert d.arrived_after == T0 + timedelta(seconds=5) < d.arrived_at < d.arrived_before
    # Without a stamp, a window over a second wide leaves detection as the estimate.
    d = verdict.found(sent(), seen(30.0, missed=2.0), DEADLINE)
    assert (d.arrival_source, d.arrived_at) == (ArrivalSource.DETECTED, d.arrived_before)
    assert d.arrived_after == T0 + timedelta(seconds=2)
    # An explicit search knows of no look that missed it.
    d = verdict.found(sent(), seen(14.0), DEADLINE)
    assert (d.arrived_after, d.arrived_before, d.arrival_source) == (
        T0,
        T0 + timedelta(seconds=14),
        ArrivalSource.DETECTED,
    )


def test_spam_and_late_placements():
    assert verdict.found(sent(), seen(1, Role.SPAM), DEADLINE).verdict is Verdict.SPAM
    late = verdict.found(sent(), seen(700, Role.SPAM), DEADLINE)
    assert (late.verdict, late.folder, late.role) == (Verdict.LATE, "Junk", Role.SPAM)


def test_found_without_handoff_has_no_delivery_time():
    d = verdict.found(None, seen(1), DEADLINE)
    assert d.verdict is Verdict.INBOX and d.delivery_seconds is None


def test_only_a_handed_off_canary_can_be_missing():
    auth = Failure("auth_failed", Phase.AUTH, False, "535 5.7.8 bad", 535, "5.7.8")
    failed = SendOutcome(phase=Phase.AUTH, failure=auth)
    handed_off = verdict.not_found(sent(), "restart")
    assert (handed_off.verdict, handed_off.reason) == (Verdict.MISSING, "restart")
    # the failure on record stays the verdict, whatever the deadline says
    refused = verdict.not_found(failed, "restart")
    assert (refused.verdict, refused.failure, refused.reason) == (
        Verdict.SEND_FAILED,
        auth,
        "restart",
    )
    # nothing recorded (planned, or stopped mid-conversation): interrupted, never missing
    for outcome in (None, SendOutcome(phase=Phase.DATA)):
        unknown = verdict.not_found(outcome, "restart")
        assert unknown.verdict is Verdict.SEND_FAILED and unknown.failure is not None
        assert (unknown.failure.kind, unknown.failure.transient) == (verdict.INTERRUPTED, True)
        assert verdict.revisable(unknown)  # should the canary turn up after all
    assert verdict.revisable(handed_off) and not verdict.revisable(refused)


def test_failures_and_exit_codes():
    failure = Failure("auth_failed", Phase.AUTH, False, "535 5.7.8 bad", 535, "5.7.8")
    out = SendOutcome(phase=Phase.AUTH, failure=failure)
    assert verdict.send_failed(out).failure is failure
    V = Verdict
    assert verdict.exit_code([V.INBOX, V.INBOX]) == 0
    assert verdict.exit_code([V.INBOX, V.SPAM]) == 1
    assert verdict.exit_code([V.LATE, V.MISSING]) == 2
    assert verdict.exit_code([V.SEND_FAILED, V.SPAM]) == 2
    assert verdict.exit_code([V.CHECK_FAILED, V.MISSING]) == 3
    assert verdict.exit_code([]) == 0
