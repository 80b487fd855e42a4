"""`mailcanary demo --keep`: the stack stays up, the printed commands work on it from any
directory, and the printed `kill` stops the stack's processes."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from monitor.harness.demo import KEPT_COMMANDS
from monitor.harness.mailstack import missing_requirements
from monitor.harness.postfix import alive, children

pytestmark = pytest.mark.mailstack

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0  # seconds for the stack to start and the 14 demo canaries to be judged


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's stdout lines as they come; None once it closes."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        try:
            for line in process.stdout or ():
                lines.put(line.rstrip("\n"))
        finally:
            lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_demo_keep_prints_commands_that_work_anywhere_and_kill_stops_the_stack(tmp_path):
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "monitor.cli", "demo", "--keep", "--deadline", "10s"]
    with (tmp_path / "demo.err").open("w") as stderr:
        demo = subprocess.Popen(
            argv, cwd=here, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        output = lines_of(demo)
        shown: list[str] = []
        while not shown or not shown[-1].startswith("Stop it:"):
            line = output.get(timeout=READY_TIMEOUT)
            assert line is not None, "\n".join(shown) + (tmp_path / "demo.err").read_text()
            shown.append(line)
        text = "\n".join(shown)

        # The config it wrote names every file absolutely, the database included.
        config = here / "var/demo/mailcanary.toml"
        written = tomllib.loads(config.read_text())
        assert written["monitor"]["database"] == f"sqlite:///{here}/var/mailcanary.db"
        assert written["monitor"]["state_dir"] == f"{here}/var"
        files = [a[k] for a in written["accounts"] for k in ("password_file", "ca_file") if k in a]
        assert files and all(Path(f).is_absolute() for f in files), files

        up = re.search(r"stays up \(((?:\w+ pid \d+, )*\w+ pid \d+); files in (\S+)\)", text)
        assert up, text
        masters = [int(pid) for pid in re.findall(r"pid (\d+)", up.group(1))]
        assert len(masters) >= 2  # postfix and dovecot, and spamd when SpamAssassin is there
        assert all(alive(pid) for pid in masters)
        stack_pids = {pid for m in masters for pid in (m, *children(m))}
        assert f"Stop it: kill {demo.pid} " in text

        prefix = f"{sys.executable} -m monitor.cli --config {config}"
        printed = {
            line.strip()[len(prefix) :].split("#")[0].strip(): line
            for line in shown
            if line.startswith(f"  {prefix} ")
        }
        assert list(printed) == [args for args, _ in KEPT_COMMANDS]

        def try_(args: str, *more: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [*shlex.split(printed[args], comments=True), *more],
                cwd=elsewhere,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert "internal error" not in done.stderr, done.stderr
            return done

        # All but `run` (a daemon) and the full `probe` (waits out the blackhole's deadline).
        again = try_("probe --route to-inboxes")
        assert again.returncode == 0, again.stdout + again.stderr  # both in the inbox
        history = try_("history")
        assert history.returncode == 0 and "to-inboxes" in history.stdout, history.stdout
        assert len(try_("history", "--json").stdout.splitlines()) == 14 + 2
        status = try_("status")
        assert status.returncode == 3, status.stdout  # worst last verdict: check_failed
        report = try_("report --since 1h")
        assert report.returncode == 0 and "to-inboxes" in report.stdout, report.stdout
        diagnosed = try_("diagnose alice")
        assert diagnosed.returncode in (0, 1), diagnosed.stdout  # 2: her services fail
        assert not (elsewhere / "var").exists()  # no empty database where the commands ran

        os.kill(demo.pid, signal.SIGTERM)
        assert demo.wait(timeout=60) == 0  # every demo canary got its built verdict
        assert [pid for pid in stack_pids if alive(pid)] == []
        assert not Path(up.group(2)).exists()
    finally:
        if demo.poll() is None:
            demo.terminate()  # on SIGTERM the demo stops its stack by pid; SIGKILL would leak it
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
