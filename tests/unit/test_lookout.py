from monitor.probe.lookout import FIRST_LOOK, MAX_GAP, WINDOW, gap, pause_before_look


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
