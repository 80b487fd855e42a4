import itertools
import math
import random
from datetime import UTC, datetime, timedelta

from monitor.core.slots import (
    LATEST,
    first_run,
    jitter,
    next_run,
    phase,
    slot_for,
    slot_start,
)
from monitor.daemon.slots import SlotTrigger


def test_phases_are_stable_inside_the_slot_and_spread() -> None:
    names = [f"m{n:05d}" for n in range(1000)]
    phases = [phase(name, 60.0) for name in names]
    assert phases == [phase(name, 60.0) for name in names]  # the same on every instance
    assert all(0 <= p < 48.0 for p in phases) and jitter(60.0) == 6.0  # 48 + 6 < 60
    per_ten_seconds = [sum(lo <= p < lo + 10 for p in phases) for lo in range(0, 48, 10)]
    assert min(per_ten_seconds[:4]) > 150, per_ten_seconds  # ~208 expected each: no pile-up


def test_a_start_after_the_routes_phase_still_sends_in_that_slot() -> None:
    # 40 s into a 60 s slot, past this route's phase (10 s): the first run is paced from now,
    # in this slot, not at the next slot's phase as the regular runs are.
    assert phase("m00042", 60.0) < 40.0
    at = first_run(now=1000.0, interval=60.0, soon=2.0, span=10.0)  # slot 960
    assert at == 1002.0 and slot_start(at, 60.0) == 960.0
    assert next_run(at, interval=60.0, offset=10.0) == 1030.0  # then one run per slot


def test_first_runs_that_would_overrun_the_slot_are_squeezed_into_what_is_left() -> None:
    # 1,000 routes paced at 20 a second take ~55 s; started 40 s into a 60 s slot only 14 s
    # are left before 90 % of it, the bound regular runs keep too.
    span = 1 + 999 / 20 + 5.0
    runs = [first_run(1000.0, 60.0, soon=1 + q / 20 + 2.5, span=span) for q in range(1000)]
    assert all(1000.0 < at <= 960.0 + LATEST * 60.0 for at in runs)
    assert runs == sorted(runs)  # the pacing's order kept, spread over the room, not a burst
    per_second = [sum(lo <= at < lo + 1 for at in runs) for lo in range(1001, 1013)]
    assert max(per_second) <= 80, per_second


def test_near_the_slot_end_first_runs_that_cannot_all_fit_all_take_the_next_slot() -> None:
    # 50 s into a 60 s slot: 4 s left before 90 % of it. 1,000 routes paced over 56 s would
    # need 14 times the pace, MAX_SQUEEZE allows 4: none take this slot (a slot that some
    # routes had and the rest lacked would be a gap in theirs); all go at the pace from the
    # next slot's start, squeezed into its 54 s just a little (56 s of pacing).
    span = 1 + 999 / 20 + 5.0
    runs = [first_run(1010.0, 60.0, soon=1 + q / 20 + 2.5, span=span) for q in range(1000)]
    assert {slot_start(at, 60.0) for at in runs} == {1020.0}
    assert max(runs) <= 1020.0 + LATEST * 60.0 and runs == sorted(runs)
    assert min(b - a for a, b in itertools.pairwise(runs)) >= 0.05 * 54 / span - 1e-9
    # With 4 times the pace they would fit: squeezed into this slot, all of them.
    few = 1 + 199 / 20 + 5.0  # 200 routes, 15.95 s of pacing; 4 s left takes 3.99 times
    runs = [first_run(1010.0, 60.0, soon=1 + q / 20 + 2.5, span=few) for q in range(200)]
    assert {slot_start(at, 60.0) for at in runs} == {960.0}
    assert max(runs) <= 960.0 + LATEST * 60.0
    # Past 90 % of the slot nothing is squeezed: the pacing starts at the next slot's start.
    assert first_run(1015.0, 60.0, soon=3.0, span=50.0) == 1023.0
    # A single route whose pacing fits before the bound still takes the slot.
    assert slot_start(first_run(1012.0, 60.0, soon=1.5, span=2.0), 60.0) == 960.0
    # More routes than even the next whole slot holds at the pace: squeezed into it.
    runs = [first_run(1010.0, 60.0, soon=1 + q / 20, span=100.0) for q in range(1980)]
    assert {slot_start(at, 60.0) for at in runs} == {1020.0}


def test_a_restart_or_reload_in_a_slot_that_has_its_canary_aims_at_that_same_slot() -> None:
    # The run before a restart (or the reload that changed the route) sent slot 900's canary
    # at 1000; the first run after it falls in slot 900 again and is claimed under the same
    # key, which the store refuses (SlotTaken): no second canary.
    before = datetime.fromtimestamp(1000.0, UTC)
    after = datetime.fromtimestamp(first_run(1100.0, 300.0, soon=1.0, span=6.0), UTC)
    assert slot_for(after, 300.0) == slot_for(before, 300.0) == datetime.fromtimestamp(900.0, UTC)


def test_a_route_added_by_a_reload_fires_in_the_current_slot() -> None:
    # The daemon schedules an added route like a started one: a SlotTrigger with no run yet.
    trigger = SlotTrigger(600.0, phase("added", 600.0), soon=1.0, span=6.0)
    now = datetime(2026, 11, 29, 0, 8, 0, tzinfo=UTC)  # 480 s into its 600 s slot
    assert phase("added", 600.0) < 480.0  # its moment in this slot has passed
    first = trigger.get_next_fire_time(None, now)
    assert first == now + timedelta(seconds=1.0)
    second = trigger.get_next_fire_time(first, first)
    assert second is not None and second >= datetime(2026, 11, 29, 0, 10, tzinfo=UTC)


def test_the_runner_claims_the_slot_the_scheduler_fired_in() -> None:
    # One arithmetic for both: a run placed in a slot is claimed under that slot's start.
    fired = next_run(900.0 - 300.0, interval=300.0, offset=250.0)  # slot 900 + 250
    moment = datetime.fromtimestamp(fired, UTC)
    assert slot_for(moment, 300.0) == datetime.fromtimestamp(900.0, UTC)
    assert slot_for(moment, 300.0).tzinfo is UTC


def test_one_run_per_slot_for_ever_whatever_the_jitter() -> None:
    # IntervalTrigger added each jitter to the next base and drifted into skipping slots.
    trigger = SlotTrigger(60.0, phase("m00042", 60.0))
    random.seed(7)
    now = datetime(2026, 11, 29, 0, 0, 50, tzinfo=UTC)  # past its phase: a late start
    runs = [trigger.get_next_fire_time(None, now)]
    assert runs[0] == now
    for _ in range(10_000):
        runs.append(trigger.get_next_fire_time(runs[-1], runs[-1]))
    slots = [math.floor(run.timestamp() / 60) for run in runs]  # type: ignore[union-attr]
    assert slots == list(range(slots[0], slots[0] + len(runs)))
    assert "(" not in str(trigger)  # bench/scale.py reads APScheduler's run lines
