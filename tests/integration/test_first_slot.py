"""The real daemon's first runs: a start late in a slot, a reload, a restart in the same slot.

The tests pick the interval so that the daemon starts where it must in its slot (slots are
whole intervals since the epoch), and read when it started from its own log.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.core.models import Verdict
from monitor.core.slots import LATEST, MAX_SQUEEZE, first_run, jitter, phase, slot_start
from monitor.daemon.main import FIRST_RUNS_PER_SECOND
from monitor.harness.demo import write_config
from tests.integration.support import rows, wait_for

pytestmark = pytest.mark.mailstack

STARTUP = 5.0  # seconds from launching the daemon to its scheduler running, about


def interval_placing(at: float, fraction: float, candidates: range) -> int:
    """The interval (whole seconds) whose slot has `at` nearest `fraction` of the way in."""
    return min(candidates, key=lambda n: abs((at % n) / n - fraction))


def events(log: Path, event: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"event": "{event}"' in line:
            found.append(json.loads(line))
    return found


def moment(entry: dict[str, object]) -> float:
    return datetime.fromisoformat(str(entry["timestamp"])).timestamp()


def stored(text: str) -> float:
    """A time the SQLite store wrote: UTC without an offset."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def in_slot(db: Path, slot: float, columns: str) -> list[tuple]:
    """The probes claimed under this slot (SQLite keeps it as text)."""
    found = rows(db, f"SELECT slot, {columns} FROM probes")
    return [row[1:] for row in found if stored(row[0]) == slot]


def monitor_keys(tmp_path: Path, interval: int) -> str:
    return (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        f'interval = "{interval}s"\ndeadline = "20s"\npoll_interval = "2s"\nlisten = ""\n'
    )


def span_of(routes: int, interval: float) -> float:
    """The daemon's pacing of `routes` first runs, the last one's jitter included."""
    return 1 + (routes - 1) / FIRST_RUNS_PER_SECOND + min(jitter(interval), 5)


def start_with(mailstack, tmp_path: Path, daemon, routes: list, interval: int, work=None):
    """A daemon on these routes, its config and database in `work` (default: tmp_path); with
    its database and when its scheduler started (the daemon fixture logs to tmp_path)."""
    work = work or tmp_path
    path = write_config(mailstack, work, routes=routes, monitor=monitor_keys(work, interval))
    log = tmp_path / "daemon.log"
    before = len(events(log, "mailcanary running")) if log.exists() else 0
    d = daemon(path)
    d.start()
    running = wait_for(
        lambda: (found := events(log, "mailcanary running")) and len(found) > before and found,
        30,
        "the start",
    )
    return d, work / "mc.db", moment(running[-1])


def test_a_start_late_in_a_slot_sends_every_routes_canary_in_it(mailstack, tmp_path, daemon):
    # 60 routes paced at 20 a second need ~8 s; started ~70 % into a ~40 s slot, past most
    # routes' phases, they must all still send in this slot, squeezed into what is left.
    interval = interval_placing(time.time() + STARTUP, 0.7, range(36, 45))
    routes = [(f"late{n:02d}", "alice", {"bob": Verdict.INBOX}) for n in range(60)]
    d, db, started = start_with(mailstack, tmp_path, daemon, routes, interval)
    slot = slot_start(started, interval)
    into = started - slot
    span = span_of(len(routes), interval)
    fits = slot_start(first_run(started, interval, span, span), interval) == slot
    assert fits, f"started too late for every route to fit: {into:.1f} s into {interval} s"
    passed = [name for name, _, _ in routes if phase(name, interval) < into]
    assert len(passed) > len(routes) / 2, "started before most routes' phase: not a late start"

    def judged() -> list[tuple]:
        found = in_slot(db, slot, "route, verdict, planned_at")
        return found if len(found) >= len(routes) and all(v for _, v, _ in found) else []

    found = wait_for(judged, 60, "every route's canary in the first slot, judged")
    assert sorted(route for route, _, _ in found) == sorted(name for name, _, _ in routes)
    assert {verdict for _, verdict, _ in found} == {"inbox"}
    # Spread over what was left, never past the bound regular runs keep.
    assert max(stored(at) for _, _, at in found) <= slot + LATEST * interval + 1.0
    assert d.signal(signal.SIGTERM) == 0


def test_a_start_too_late_for_all_first_runs_leaves_that_slot_to_none_of_them(
    mailstack, tmp_path, daemon
):
    # 400 routes paced at 20 a second need ~25 s, 4 times faster ~6 s. Started with less than
    # that left before 90 % of a slot (36-59 s, whichever places the start best), some would
    # fit and the rest not: none may take that slot (the rest would have a gap in it), all
    # take the next one.
    count = 400

    routes = [(f"r{n:03d}", "alice", {"bob": Verdict.INBOX}) for n in range(count)]
    startup = STARTUP
    for attempt in range(3):  # a start that misses the window is retried, placed by its own
        launched = time.time()
        at = launched + startup  # aim at the middle of the room that does not fit them all
        interval = min(
            range(36, 60), key=lambda n: abs(at % n - (LATEST * n - span_of(count, n) / 8))
        )
        work = tmp_path / f"start{attempt}"
        work.mkdir()
        d, db, started = start_with(mailstack, tmp_path, daemon, routes, interval, work)
        slot = slot_start(started, interval)
        room = slot + LATEST * interval - started
        if 0 < room < span_of(count, interval) / MAX_SQUEEZE:
            break
        assert d.signal(signal.SIGTERM) == 0
        startup = started - launched  # this machine's start-up, for the next placement
    else:
        pytest.fail(
            f"three starts missed the window this test needs (the last {started - slot:.1f} s"
            f" into a {interval} s slot): the machine is too slow or too uneven for it"
        )

    def judged() -> list[tuple]:
        found = in_slot(db, slot + interval, "route, verdict")
        return found if len(found) >= count and all(v for _, v in found) else []

    found = wait_for(judged, 120, "every route's canary in the next slot, judged")
    assert sorted(route for route, _ in found) == [name for name, _, _ in routes]
    assert {verdict for _, verdict in found} == {"inbox"}
    assert in_slot(db, slot, "route") == []  # not one of them in the slot the start was in
    assert d.signal(signal.SIGTERM) == 0


def test_a_reload_and_a_restart_late_in_a_slot_keep_one_canary_per_route_in_it(
    mailstack, tmp_path, daemon
):
    # A slot long enough for a start, a reload adding a route and a restart, all inside it.
    interval = interval_placing(time.time() + STARTUP, 0.1, range(80, 121))
    keys = monitor_keys(tmp_path, interval)
    path = write_config(
        mailstack, tmp_path, routes=[("a", "alice", {"bob": Verdict.INBOX})], monitor=keys
    )
    db, log = tmp_path / "mc.db", tmp_path / "daemon.log"
    first = daemon(path)
    first.start()
    started = moment(wait_for(lambda: events(log, "mailcanary running"), 30, "the start")[0])
    slot = slot_start(started, interval)
    assert started - slot < 0.4 * interval, "the machine is too slow for this test's timing"

    def judged() -> list[str]:
        return sorted(route for route, verdict in in_slot(db, slot, "route, verdict") if verdict)

    wait_for(lambda: judged() == ["a"], 30, "route a's canary")

    # A route added by a reload after its phase in this slot has passed sends in it.
    now = time.time() - slot
    added = next(f"b{n}" for n in range(1000) if phase(f"b{n}", interval) < now - 1)
    both = [("a", "alice", {"bob": Verdict.INBOX}), (added, "alice", {"bob": Verdict.INBOX})]
    write_config(mailstack, tmp_path, routes=both, monitor=keys)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: events(log, "config reloaded"), 30, "the reload")
    wait_for(lambda: judged() == sorted(["a", added]), 30, f"{added}'s canary")

    # A restart in the same slot fires both again; the slot claim refuses a second canary.
    assert first.signal(signal.SIGTERM) == 0
    second = daemon(path)
    second.start()
    wait_for(lambda: len(events(log, "mailcanary running")) == 2, 30, "the restart")
    refused = wait_for(
        lambda: (found := events(log, "slot already claimed")) and len(found) >= 2 and found,
        30,
        "both first runs after the restart",
    )
    assert sorted(str(entry["route"]) for entry in refused) == sorted(["a", added])
    assert {datetime.fromisoformat(str(e["slot"])).timestamp() for e in refused} == {slot}
    assert sorted(route for (route,) in in_slot(db, slot, "route")) == sorted(["a", added])
    assert second.signal(signal.SIGTERM) == 0
