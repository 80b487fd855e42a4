"""A reload's look-out cadence reaches the running watchers: seen in the recorded windows.

Postfix holds mail for `slow` a few seconds. Without the fine look-out (`look_out_fine_for =
0`) the watcher looks ever less often (a quarter of the canary's age), so a canary that lands
after 3 s sits in a window of 0.5 s or more (to the next look, or to Dovecot's push 0.5 s
late), which the server's whole-second stamp narrows only when a second happens to end just
after the look that missed it. After a reload to a 200 ms resolution the same watcher, never
restarted, keeps every window under 0.3 s whatever the stamps.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.support import rows, wait_for

pytestmark = pytest.mark.mailstack

FINALS = (
    "SELECT id, planned_at, arrived_after, arrived_before FROM probes"
    " WHERE state = 'final' AND verdict = 'inbox' ORDER BY id"
)
AFTER_RELOAD = 4  # each would be under 0.3 s by chance with the old cadence ~1 time in 3


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def widths(db: Path, after: float = 0.0, skip_first: bool = False) -> list[float]:
    """The arrival windows (seconds) of the judged canaries planned after `after`."""
    found = rows(db, FINALS)[1 if skip_first else 0 :]
    return [at(hi) - at(lo) for _, planned, lo, hi in found if at(planned) > after]


def watching_sessions(log: Path) -> int:
    return sum('"event": "watching"' in line for line in log.read_text().splitlines())


def test_a_reload_hands_the_new_lookout_cadence_to_the_running_watcher(mailstack, tmp_path, daemon):
    assert mailstack.delay_seconds >= 2  # canaries older than 2 s: back-off gaps over 0.5 s
    base = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        # Canaries 8 s apart (less the jitter) never overlap: one's looks never serve another.
        'interval = "8s"\ndeadline = "20s"\npoll_interval = "2s"\nlisten = ""\n'
    )
    route = [("held", "alice", {"slow": Verdict.INBOX})]
    path = write_config(
        mailstack, tmp_path, routes=route, monitor=base + 'look_out_fine_for = "0s"\n'
    )
    db, log = tmp_path / "mc.db", tmp_path / "daemon.log"
    d = daemon(path)
    d.start()
    # The first canary goes soon after the start and may overlap the second: left out.
    wait_for(
        lambda: [width for width in widths(db, skip_first=True) if width >= 0.5],
        60,
        "a held canary judged in a wide window, by the back-off look-out alone",
    )
    sessions = watching_sessions(log)

    fine = 'look_out_fine_for = "30s"\nlook_out_resolution = "200ms"\n'
    write_config(mailstack, tmp_path, routes=route, monitor=base + fine)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: '"event": "config reloaded"' in log.read_text(), 30, "the reload to be applied"
    )
    reloaded = time.time()
    judged = wait_for(
        lambda: (found := widths(db, after=reloaded)) and len(found) >= AFTER_RELOAD and found,
        60,
        f"{AFTER_RELOAD} held canaries judged after the reload",
    )
    assert all(width < 0.3 for width in judged), judged
    assert watching_sessions(log) == sessions  # the same IMAP sessions, not a restarted watcher
    assert '"event": "reconnecting"' not in log.read_text()
    assert d.signal(signal.SIGTERM) == 0
