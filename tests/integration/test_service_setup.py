"""The README's "Running as a service" steps, run in order, in a temp root.

Without a running systemd (this machine has none), `systemctl` and `journalctl` steps are not
run; the test asserts exactly which are left out, so a new step in the README is either run
or breaks the test. Every path under / that the steps name is rewritten into the temp root,
and what systemd would do at start is done by hand from the installed unit and its drop-ins:
the credentials are copied to a directory only the service user can read, and the unit's
ExecStart (with `check-config` for `run`) runs as `nobody` in the environment systemd gives a
DynamicUser= service. The steps install the package from this tree into a fresh venv.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_bare_install import INSTALL_TIMEOUT, ROOT, bare_env

pytestmark = [
    pytest.mark.mailstack,
    pytest.mark.skipif(os.geteuid() != 0, reason="installs files as root and runs as nobody"),
    pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze"),
]

SUDO_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's secure_path
NEEDS_RUNNING_SYSTEMD = [
    "systemctl daemon-reload",
    "systemctl enable --now mailcanary",
    "journalctl -u mailcanary -f",
    "systemctl status mailcanary",
    "systemctl reload mailcanary",
]
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "-i"]

# "then edit it": the example's accounts read passwords from the environment; a service's
# come from credentials only. Hosts are never contacted by check-config.
SERVICE_CONFIG = """\
[[accounts]]
name = "own"
email = "canary@mail.example.org"
username = "canary"
password_credential = "own-password"
smtp = { host = "127.0.0.1", port = 2587, security = "starttls" }
imap = { host = "127.0.0.1", port = 2993, security = "tls" }

[[routes]]
from = "own"
to = ["own"]
"""


def service_steps(readme: str) -> list[str]:
    """The shell statements of the section's first sh block, in order, comments left out;
    a statement keeps its continuation lines and its here-document."""
    section = readme.split("\n## Running as a service\n", 1)[1]
    found = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert found, "README: no sh block under 'Running as a service'"
    lines = iter(found.group(1).splitlines())
    statements = []
    for first in lines:
        if not first.strip() or first.lstrip().startswith("#"):
            continue
        statement = first
        while statement.endswith("\\"):
            statement += "\n" + next(lines)
        heredoc = re.search(r"(?<!<)<<-?'?(\w+)'?\s*$", statement)
        if heredoc:
            for body in lines:
                statement += "\n" + body
                if body == heredoc.group(1):
                    break
        statements.append(statement)
    return statements


def unit_settings(unit: Path, key: str) -> list[str]:
    """Every `key=` value of the unit and its drop-ins, in systemd's reading order."""
    files = [unit, *sorted(unit.parent.glob(f"{unit.name}.d/*.conf"))]
    return [
        line.split("=", 1)[1].strip()
        for path in files
        for line in path.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


@pytest.fixture
def root() -> Iterator[Path]:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700 and `nobody` must get to the files.
    path = Path(tempfile.mkdtemp(prefix="mcsvc", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_readme_service_steps_give_a_service_that_reads_its_config_but_not_the_secrets(root):
    statements = service_steps((ROOT / "README.md").read_text())
    # The shipped unit as it would be at /etc/systemd/system, with / moved to the temp root.
    unit_source = root / "mailcanary.service"
    (root / "etc/systemd/system").mkdir(parents=True)  # there on every systemd machine
    unit_source.write_text(
        (ROOT / "systemd" / "mailcanary.service").read_text().replace("/opt/", f"{root}/opt/")
    )

    def in_root(statement: str) -> str:
        text = statement.replace("/path/to/mailcanary", str(ROOT))
        text = re.sub(r"(?<![\w.])/(etc|opt)/", rf"{root}/\1/", text)
        return re.sub(r"(?<![\w/])systemd/mailcanary\.service", str(unit_source), text)

    left_out = []
    for statement in statements:
        command = statement.removeprefix("sudo ")
        if command.split()[0] in {"systemctl", "journalctl"}:
            left_out.append(re.sub(r"\s+#.*", "", command))
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", in_root(command)],
            cwd=ROOT,
            env=bare_env(PATH=SUDO_PATH),
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{statement}\n{done.stdout}{done.stderr}"
        if "systemd-analyze verify" in command:
            assert done.stdout + done.stderr == "", done.stdout + done.stderr
        if "config/example.toml" in command:
            config = root / "etc/mailcanary/mailcanary.toml"
            config.write_text(SERVICE_CONFIG)  # keeps the mode and owner the step gave it
    assert left_out == NEEDS_RUNNING_SYSTEMD

    # What systemd does at start, from the unit as installed.
    unit = root / "etc/systemd/system/mailcanary.service"
    assert unit_settings(unit, "DynamicUser") == ["yes"]
    assert unit_settings(unit, "ConfigurationDirectory") == ["mailcanary"]
    assert unit_settings(unit, "StateDirectory") == ["mailcanary"]
    sources = dict(entry.split(":", 1) for entry in unit_settings(unit, "LoadCredential"))
    assert sources == {"own-password": f"{root}/etc/mailcanary/secrets/own-password"}
    credentials = root / "run/credentials/mailcanary.service"
    credentials.mkdir(parents=True)
    for name, source in sources.items():
        shutil.copyfile(source, credentials / name)
        (credentials / name).chmod(0o400)
        os.chown(credentials / name, 65534, 65534)
    os.chown(credentials, 65534, 65534)
    credentials.chmod(0o500)
    state = root / "var/lib/mailcanary"
    state.mkdir(parents=True)
    os.chown(state, 65534, 65534)
    service_env = [
        f"CONFIGURATION_DIRECTORY={root}/etc/mailcanary",
        f"STATE_DIRECTORY={state}",
        f"CREDENTIALS_DIRECTORY={credentials}",
    ]
    (start,) = unit_settings(unit, "ExecStart")
    argv = shlex.split(start)
    assert argv[-1] == "run"
    check = [*AS_NOBODY, *service_env, *argv[:-1], "check-config"]

    def as_nobody(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)

    config = root / "etc/mailcanary/mailcanary.toml"
    assert as_nobody([*AS_NOBODY, "/bin/cat", str(config)]).stdout == SERVICE_CONFIG
    for source in sources.values():
        peek = as_nobody([*AS_NOBODY, "/bin/cat", source])
        assert (peek.returncode, peek.stdout) == (1, ""), peek
        assert "Permission denied" in peek.stderr
    checked = as_nobody(check)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"{config}: ok — 1 accounts, 1 routes"), checked.stdout

    # The set-up this replaced: a root-only config the service cannot read, one line, 78.
    config.chmod(0o640)
    refused = as_nobody(check)
    assert refused.returncode == 78, refused.stdout + refused.stderr
    assert refused.stderr.strip() == f"{config}: cannot read: Permission denied"
