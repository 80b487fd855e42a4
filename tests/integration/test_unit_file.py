"""The shipped systemd unit stays valid and hardened: checked and scored by systemd itself,
offline (no running systemd is needed). The README's steps around it: test_service_setup.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "mailcanary.service"
TARGET = 1.5


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_exposure_is_at_most_target():
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= TARGET, done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies_without_a_warning(tmp_path):
    # verify insists that ExecStart exists: the same unit, pointing at an executable here.
    executable = tmp_path / "mailcanary"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/mailcanary/bin/mailcanary", str(executable)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""  # unknown keys and bad values are only warnings


def test_unit_is_notify_with_watchdog_and_reload():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "ExecReload=",
        "StateDirectory=mailcanary",
        "ConfigurationDirectory=mailcanary",
    ):
        assert re.search(rf"^{re.escape(line)}", text, re.M), line
