from monitor.service.daemon import phase


def test_phases_are_stable_inside_the_slot_and_spread() -> None:
    names = [f"m{n:05d}" for n in range(1000)]
    phases = [phase(name, 60.0) for name in names]
    assert phases == [phase(name, 60.0) for name in names]  # the same on every instance
    assert all(0 <= p < 48.0 for p in phases)  # + jitter (6 s) stays inside the 60 s slot
    per_ten_seconds = [sum(lo <= p < lo + 10 for p in phases) for lo in range(0, 48, 10)]
    assert min(per_ten_seconds[:4]) > 150, per_ten_seconds  # ~208 expected each: no pile-up
