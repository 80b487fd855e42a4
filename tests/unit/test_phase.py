import math
import random
from datetime import UTC, datetime

from monitor.core.slots import jitter, next_run, phase, slot_for
from monitor.daemon.slots import SlotTrigger


def test_phases_are_stable_inside_the_slot_and_spread() -> None:
    names = [f"m{n:05d}" for n in range(1000)]
    phases = [phase(name, 60.0) for name in names]
    assert phases == [phase(name, 60.0) for name in names]  # the same on every instance
    assert all(0 <= p < 48.0 for p in phases) and jitter(60.0) == 6.0  # 48 + 6 < 60
    per_ten_seconds = [sum(lo <= p < lo + 10 for p in phases) for lo in range(0, 48, 10)]
    assert min(per_ten_seconds[:4]) > 150, per_ten_seconds  # ~208 expected each: no pile-up


def test_the_first_run_takes_the_current_slot_only_if_its_moment_is_ahead() -> None:
    assert next_run(None, now=1000.0, interval=60.0, offset=50.0) == 1010.0  # slot 960 + 50
    assert next_run(None, now=1000.0, interval=60.0, offset=10.0) == 1030.0  # next slot


def test_the_runner_claims_the_slot_the_scheduler_fired_in() -> None:
    # One arithmetic for both: a run placed in a slot is claimed under that slot's start.
    fired = next_run(None, now=1000.0, interval=300.0, offset=250.0)  # slot 900 + 250
    moment = datetime.fromtimestamp(fired, UTC)
    assert slot_for(moment, 300.0) == datetime.fromtimestamp(900.0, UTC)
    assert slot_for(moment, 300.0).tzinfo is UTC


def test_one_run_per_slot_for_ever_whatever_the_jitter() -> None:
    # IntervalTrigger added each jitter to the next base and drifted into skipping slots.
    trigger = SlotTrigger(60.0, phase("m00042", 60.0))
    random.seed(7)
    now = datetime(2026, 11, 29, 0, 0, 3, tzinfo=UTC)
    runs = [trigger.get_next_fire_time(None, now)]
    for _ in range(10_000):
        runs.append(trigger.get_next_fire_time(runs[-1], runs[-1]))
    slots = [math.floor(run.timestamp() / 60) for run in runs]  # type: ignore[union-attr]
    assert slots == list(range(slots[0], slots[0] + len(runs)))
    assert "(" not in str(trigger)  # bench/scale.py reads APScheduler's run lines
