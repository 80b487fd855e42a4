from itertools import pairwise

import pytest

from monitor.probe.lookout import (
    FIRST_LOOK,
    IDLE_AT_LEAST,
    MAX_GAP,
    MIN_SPACING,
    WAKE_SLACK,
    WINDOW,
    Cadence,
    gap,
    pause_before_look,
    worth_idling,
)


def test_nothing_on_its_way_means_wait_for_the_server():
    assert pause_before_look([], since_look=5.0) is None
    assert pause_before_look([WINDOW, WINDOW + 30], since_look=0.0) is None


def test_a_fresh_canary_is_looked_for_soon_and_then_ever_less_often():
    assert pause_before_look([0.0], since_look=0.0) == FIRST_LOOK
    assert pause_before_look([0.0], since_look=300.0) == FIRST_LOOK  # not at the hand-off itself
    assert pause_before_look([0.05], since_look=0.04) == FIRST_LOOK - 0.04
    assert pause_before_look([0.3], since_look=0.5) == 0.0  # overdue: look now
    gaps = [gap(age) for age in (0.1, 1.0, 4.0, 20.0, 100.0)]
    assert gaps == sorted(gaps) and gaps[0] == FIRST_LOOK and gaps[-1] == MAX_GAP


def test_the_youngest_canary_sets_the_pace():
    assert pause_before_look([60.0, 0.2], since_look=0.0) == FIRST_LOOK


def test_a_whole_window_costs_a_bounded_number_of_looks():
    age, looks = 0.0, 0
    while (pause := pause_before_look([age], since_look=0.0)) is not None:
        age += pause
        looks += 1
    assert 20 <= looks <= 40, looks  # vs 1,200 for fixed 0.1 s polling


def looks(
    handoffs: list[float], cadence: Cadence | None, takes: float, until: float
) -> list[float]:
    """When a watcher following the cadence starts its looks (seconds), each look taking
    `takes` seconds; canaries handed off at `handoffs` and never seen."""
    t, started = 0.0, [-1000.0]
    while t < until:
        ages = [t - h for h in handoffs if h <= t]
        pause = pause_before_look(ages, t - started[-1], cadence, takes)
        if pause is None:
            later = [h for h in handoffs if h > t]
            if not later:
                break
            t = min(later)
            continue
        t += pause
        started.append(t)
        t += takes
    return started[1:]


def windows(starts: list[float], takes: float, since: float, until: float) -> list[float]:
    """For a canary landing anywhere in (since, until]: the widest window between the start of
    the last look that missed it and the answer of the first that saw it."""
    inside = [s for s in starts if s > since]
    return [b + takes - a for a, b in zip([since, *inside], inside, strict=False) if b <= until]


def test_a_held_canary_lands_in_a_window_no_wider_than_the_resolution():
    cadence = Cadence(resolution=0.2, fine_for=30.0)
    takes = 0.03  # a NOOP's round trip
    starts = looks([0.0], cadence, takes, until=60.0)
    fine = windows(starts, takes, since=0.0, until=30.0)
    assert fine and max(fine) <= 0.2 + 1e-9, max(fine)
    # after fine_for it backs off as before: a canary 40 s late is bounded within seconds
    assert max(windows(starts, takes, since=30.0, until=60.0)) > 5.0
    # without the fine phase, a canary held 5 s lands in a window over a second wide
    coarse = looks([0.0], Cadence(0.2, 0.0), takes, until=10.0)
    assert max(windows(coarse, takes, since=4.0, until=6.0)) > 1.0


def test_fine_looks_are_bounded_per_folder_however_many_canaries():
    cadence = Cadence(resolution=0.1, fine_for=30.0)
    handoffs = [i * 0.013 for i in range(200)]  # 200 canaries in flight, staggered
    starts = looks(handoffs, cadence, takes=0.0, until=20.0)
    spacing = [b - a for a, b in pairwise(starts)]
    assert min(spacing) >= MIN_SPACING - 1e-9
    assert len(starts) <= 20.0 / MIN_SPACING + 1
    # a slow server cannot push the looks faster either
    assert gap(1.0, Cadence(0.2, 30.0), look_takes=0.5) == MIN_SPACING


def test_the_fine_phase_ends_and_short_pauses_are_not_idled():
    cadence = Cadence(resolution=0.2, fine_for=30.0)
    assert gap(10.0, cadence) == gap(29.9, cadence) == pytest.approx(0.2 - WAKE_SLACK)
    assert gap(30.0, cadence) == gap(30.0) == 7.5  # as without a fine phase
    assert gap(0.0, cadence) == FIRST_LOOK  # the first look comes sooner than the resolution
    assert not worth_idling(0.2) and worth_idling(IDLE_AT_LEAST) and worth_idling(None)
