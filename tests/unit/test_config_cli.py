"""`mailcanary check-config` on broken configs, as a user runs it: the real CLI in a process of
its own, one line naming the key, exit 78, and no secret in what it prints."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests.unit.test_config import SECRET, write

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = """
[[accounts]]
name = "a"
email = "a@example.test"
smtp = { host = "127.0.0.1", port = 587, security = "starttls" }
"""
# Blocks asyncpg as if the postgresql extra were not installed, then runs the CLI as -m does.
WITHOUT_ASYNCPG = (
    "import runpy, sys; sys.modules['asyncpg'] = None; "
    "runpy.run_module('monitor.cli', run_name='__main__')"
)


def _limit_memory() -> None:
    # Reading /dev/zero whole would take the machine's memory before failing: 2 GiB is plenty.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def check_config(tmp_path: Path, config: Path, *python_args: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr) of `check-config` on `config`."""
    args = python_args or ("-m", "monitor.cli")
    done = subprocess.run(
        [sys.executable, *args, "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "PW": SECRET},
        preexec_fn=_limit_memory,
        # A guard, not a measurement: a FIFO used to block check-config for ever.
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_good_config_passes(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        "good.toml",
        ACCOUNT.replace("smtp =", 'password_env = "PW"\nsmtp ='),
    )
    code, out = check_config(tmp_path, good)
    assert code == 0 and "ok — 1 accounts, 0 routes" in out and SECRET not in out


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("interval-nan", "monitor.interval: must be a finite duration (1s..7d), got nan"),
        ("interval-weeks", 'monitor.interval: must be 1s..7d, got "99999999999999w"'),
        ("timezone-directory", "reports.timezone: unknown time zone; use an IANA name"),
        ("secret-in-auth", 'accounts[0] (a).auth: must be "password" or "xoauth2"'),
        ("garbage-ca", "monitor.ca_file: "),
        ("password-from-dev-zero", "accounts[0] (a).password_file: cannot read /dev/zero: "),
        ("config-is-a-fifo", "cannot read: not a regular file (a FIFO)"),
        ("postgresql-without-asyncpg", "monitor.database: postgresql needs asyncpg: pip install"),
    ],
)
def test_bad_input_is_one_line_naming_the_key_with_exit_78(
    tmp_path: Path, case: str, key: str
) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "real-ca.pem"))
    write(tmp_path, "garbage.pem", f"{SECRET}\n")
    texts = {
        "interval-nan": "[monitor]\ninterval = nan\n" + ACCOUNT + 'password_env = "PW"\n',
        "interval-weeks": '[monitor]\ninterval = "99999999999999w"\n',
        "timezone-directory": '[reports]\ntimezone = "Europe"\n',
        "secret-in-auth": ACCOUNT + f'auth = "{SECRET}"\npassword_env = "PW"\n',
        "garbage-ca": '[monitor]\nca_file = "garbage.pem"\n',
        "password-from-dev-zero": ACCOUNT + 'password_file = "/dev/zero"\n',
        "postgresql-without-asyncpg": f'[monitor]\ndatabase = "postgresql://u:{SECRET}@h/db"\n',
    }
    config = tmp_path / "mailcanary.toml"
    if case == "config-is-a-fifo":
        os.mkfifo(config)
    else:
        write(tmp_path, config.name, texts[case])
    python = ("-c", WITHOUT_ASYNCPG) if case == "postgresql-without-asyncpg" else ()
    code, out = check_config(tmp_path, config, *python)
    lines = out.splitlines()
    assert (code, len(lines)) == (78, 1), out[:2000]
    assert key in lines[0]
    assert SECRET not in out and "Traceback" not in out and "internal error" not in out
    if case == "garbage-ca":
        assert f"{tmp_path / 'garbage.pem'} is not a PEM CA bundle" in lines[0]
