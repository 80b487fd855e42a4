"""Two daemons started with one instance name on one PostgreSQL: the second is refused while
the first runs, and takes the name over once the first has crashed and gone silent; a daemon
stalled past its lease whose name was taken meanwhile stops when it wakes."""

from __future__ import annotations

import os
import re
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.fleet_support import query
from tests.integration.support import Daemon, wait_for
from tests.integration.test_instances import LEASE as FLEET_LEASE
from tests.integration.test_instances import fleet_config
from tests.integration.test_report_support import mailcanary

pytestmark = pytest.mark.mailstack

TAKEN_EXIT = 75
# Longer than a daemon takes to start, so the restart after the crash surely finds the
# crashed daemon's heartbeat still fresh and has to wait for it to go silent.
LEASE = 15.0


def holder(url: str) -> dict | None:
    rows = query(url, "SELECT *, now() AS db_now FROM instances WHERE name = 'i1'")
    return dict(rows[0]) if rows else None


def finals(url: str) -> int:
    return query(url, "SELECT count(*) AS n FROM probes WHERE state = 'final'")[0]["n"]


def test_a_second_daemon_with_a_running_name_is_refused_and_a_crashed_one_replaced(
    mailstack, postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    config = fleet_config(mailstack, url, tmp_path, "i1")
    text = config.read_text()
    assert f'lease = "{FLEET_LEASE:g}s"' in text
    config.write_text(text.replace(f'lease = "{FLEET_LEASE:g}s"', f'lease = "{LEASE:g}s"'))
    first = Daemon(config, tmp_path / "first.log")
    second = Daemon(config, tmp_path / "second.log")
    third = Daemon(config, tmp_path / "third.log")
    fourth = Daemon(config, tmp_path / "fourth.log")
    try:
        first.start()
        assert first.proc is not None
        wait_for(lambda: (h := holder(url)) and h["pid"] == first.proc.pid, 60, "first's row")
        wait_for(lambda: finals(url) >= 2, 60, "the first daemon's verdicts")

        second.start()
        assert second.proc is not None
        assert second.proc.wait(timeout=LEASE + 30) == TAKEN_EXIT
        said = [line for line in second.log.read_text().splitlines() if "already running" in line]
        assert len(said) == 1, said
        assert re.fullmatch(
            r'mailcanary: monitor\.instance: "i1" is already running \(heartbeat \d+ s ago from'
            rf" host \S+ pid {first.proc.pid}\); give each daemon its own instance name",
            said[0],
        ), said[0]
        assert "Traceback" not in second.log.read_text()
        # The first runs on, alone in its name, and its probes continue.
        done = finals(url)
        wait_for(lambda: finals(url) >= done + 2, 60, "verdicts after the refusal")
        assert first.proc.poll() is None
        assert holder(url)["pid"] == first.proc.pid  # type: ignore[index]

        # Crashed: a restart at once waits until the heartbeat is silent, then takes the name.
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        last_beat = holder(url)["heartbeat_at"]  # type: ignore[index]
        third.start()
        assert third.proc is not None
        taken = wait_for(
            lambda: (h := holder(url)) and h["pid"] == third.proc.pid and h,
            LEASE + 30,
            "the restart taking the name",
        )
        assert taken["started_at"] >= last_beat + timedelta(seconds=LEASE)  # type: ignore[index]
        assert "waiting for its holder" in third.log.read_text()
        done = finals(url)
        wait_for(lambda: finals(url) >= done + 2, 60, "verdicts after the restart")

        # Stalled past its lease (SIGSTOP), the name is taken by a new daemon; resumed, the
        # stalled one finds its row in other hands at its next heartbeat and stops.
        os.kill(third.proc.pid, signal.SIGSTOP)
        fourth.start()
        assert fourth.proc is not None
        wait_for(
            lambda: (h := holder(url)) and h["pid"] == fourth.proc.pid, LEASE + 30, "the takeover"
        )
        os.kill(third.proc.pid, signal.SIGCONT)
        assert third.proc.wait(timeout=LEASE) == TAKEN_EXIT
        lost = [
            line for line in third.log.read_text().splitlines() if "stopping this daemon" in line
        ]
        assert len(lost) == 1 and f"pid {fourth.proc.pid})" in lost[0], lost
        assert fourth.proc.poll() is None
        assert holder(url)["pid"] == fourth.proc.pid  # type: ignore[index]
        shown = mailcanary(config, "status").stdout
        assert re.search(rf"\bi1\b.*live.* s ago \(\S+ pid {fourth.proc.pid}\)", shown), shown
        done = finals(url)
        wait_for(lambda: finals(url) >= done + 2, 60, "the new holder's verdicts")
        assert fourth.signal(signal.SIGTERM) == 0
        assert holder(url)["stopped_at"] is not None  # type: ignore[index]
    finally:
        for daemon in (first, second, third, fourth):
            daemon.stop()
