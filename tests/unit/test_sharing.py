"""Who watches which mailbox: the fair assignment and one instance's round, without I/O."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.sharing import Holder, Lease, assign, fair_share, plan, renewed, taken_message

MAILBOXES = [f"user{n:04d}" for n in range(1, 101)]
NOW = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
EARLIER = NOW - timedelta(seconds=1)


@pytest.mark.parametrize(("mailboxes", "instances"), [(100, 3), (10, 3), (7, 7), (3, 5), (1, 1)])
def test_every_mailbox_gets_one_instance_and_nobody_more_than_its_share(mailboxes, instances):
    names = [f"i{n}" for n in range(instances)]
    chosen = assign(MAILBOXES[:mailboxes], names)
    assert sorted(chosen) == sorted(MAILBOXES[:mailboxes])
    loads = Counter(chosen.values())
    assert set(loads) <= set(names)
    assert max(loads.values()) <= fair_share(mailboxes, instances)
    # Fair both ways: nobody idles while another holds more than the share of the rest.
    if mailboxes >= instances:
        assert min(loads[name] for name in names) >= mailboxes // instances - 1


def test_every_instance_computes_the_same_assignment_whatever_the_order():
    assert assign(MAILBOXES, ["a", "b", "c"]) == assign(reversed(MAILBOXES), ["c", "a", "b"])


def test_adding_an_instance_moves_about_its_share_to_it_and_little_else():
    before = assign(MAILBOXES, ["a", "b", "c"])
    after = assign(MAILBOXES, ["a", "b", "c", "d"])
    moved = [m for m in MAILBOXES if before[m] != after[m]]
    to_new = [m for m in moved if after[m] == "d"]
    assert len(to_new) == Counter(after.values())["d"] >= 24
    # Moves between old instances come only from the bound shrinking from 34 to 25.
    assert len(moved) - len(to_new) <= 15


def test_a_leaving_instance_gives_up_only_its_own_mailboxes_beyond_the_reshuffle():
    before = assign(MAILBOXES, ["a", "b", "c"])
    after = assign(MAILBOXES, ["a", "b"])
    orphans = {m for m in MAILBOXES if before[m] == "c"}
    assert {m for m in MAILBOXES if before[m] != after[m]} >= orphans
    assert max(Counter(after.values()).values()) == 50


def test_no_live_instance_means_no_assignment():
    assert assign(MAILBOXES, []) == {}


def test_a_free_or_expired_lease_is_taken_and_ours_renewed():
    leases = {
        "m1": Lease("m1", "a", LATER),
        "m2": Lease("m2", "b", EARLIER),  # b died: its lease ran out
    }
    assignment = {"m1": "a", "m2": "a", "m3": "a"}
    round_ = plan("a", NOW, assignment, leases, live={"a"})
    assert round_.renew == {"m1"} and round_.take == {"m2", "m3"} and not round_.wait
    assert round_.watch == {"m1", "m2", "m3"} and not round_.hand_over


def test_a_mailbox_changes_hands_make_before_break():
    assignment = {"m1": "b"}
    live = {"a", "b"}
    # 1. b is assigned m1 while a holds it: b watches and waits, a keeps watching.
    leases = {"m1": Lease("m1", "a", LATER)}
    assert plan("b", NOW, assignment, leases, live).wait == {"m1"}
    assert plan("b", NOW, assignment, leases, live).watch == {"m1"}
    assert plan("a", NOW, assignment, leases, live).watch == {"m1"}
    # 2. b's sessions are up, it offered itself: a hands over and stops watching.
    leases = {"m1": Lease("m1", "a", LATER, successor="b")}
    handing = plan("a", NOW, assignment, leases, live)
    assert handing.hand_over == {"m1": "b"} and handing.watch == frozenset()
    # 3. b owns it and renews.
    leases = {"m1": Lease("m1", "b", LATER)}
    assert plan("b", NOW, assignment, leases, live).renew == {"m1"}


def test_a_successor_that_died_or_lost_the_assignment_gets_nothing():
    leases = {"m1": Lease("m1", "a", LATER, successor="b")}
    assert plan("a", NOW, {"m1": "c"}, leases, {"a", "b", "c"}).hand_over == {}
    assert plan("a", NOW, {"m1": "b"}, leases, {"a", "c"}).hand_over == {}
    assert plan("a", NOW, {"m1": "b"}, leases, {"a", "c"}).watch == {"m1"}


def test_a_mailbox_no_longer_configured_is_dropped_and_others_leases_are_left_alone():
    leases = {"gone": Lease("gone", "a", LATER), "theirs": Lease("theirs", "b", LATER)}
    round_ = plan("a", NOW, {"theirs": "b"}, leases, {"a", "b"})
    assert round_.drop == {"gone"} and round_.watch == frozenset()
    assert not (round_.take | round_.wait | round_.renew)


# -- one process per instance name ----------------------------------------------------------

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def holder(owner: str | None = "t1", beat: float = 0.0, stopping: bool = False) -> Holder:
    return Holder(owner, "mx1", 4242, T0 + timedelta(seconds=beat), stopping)


def test_a_holder_that_renews_runs_and_one_that_stays_silent_may_have_crashed():
    assert renewed(holder(), holder(beat=10))  # it heartbeated again: a second daemon
    assert not renewed(holder(), holder())  # the same heartbeat: wait for it to go stale
    # Another process took the name meanwhile (a third daemon): that one is alive.
    assert renewed(holder(), holder(owner="t2"))
    assert renewed(holder(owner=None), holder(owner="t2"))
    # A row from before migration 0009 (no token) that is renewed: an older daemon runs it.
    assert renewed(holder(owner=None), holder(owner=None, beat=10))


def test_a_draining_holder_is_waited_for_not_refused():
    assert not renewed(holder(), holder(beat=10, stopping=True))
    assert not renewed(holder(stopping=True), holder(beat=10, stopping=True))


def test_the_refusal_names_the_instance_the_host_the_pid_and_the_fix():
    line = taken_message("eu-1", holder(), T0 + timedelta(seconds=3.4))
    assert line == (
        'monitor.instance: "eu-1" is already running (heartbeat 3 s ago from host mx1 pid'
        " 4242); give each daemon its own instance name"
    )
    legacy = Holder(None, None, None, T0, False)
    assert "from host unknown pid unknown)" in taken_message("eu-1", legacy, T0)
