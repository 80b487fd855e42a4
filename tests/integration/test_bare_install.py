"""What `pip install .` (no extras) gives a user: the wheel, in a fresh venv, run for real.

The wheel is built from this tree and installed with its base dependencies only, from the
package index, into a venv made for this run (nothing of it is kept between runs). The harness
runs here, in the dev venv; the bare venv only runs the `mailcanary` CLI against it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.core.models import Verdict
from monitor.harness.demo import write_config

pytestmark = pytest.mark.mailstack

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600  # seconds: a cold package cache downloads ~50 MB


def bare_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would make another Python find our tree."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("MAILCANARY")
    }
    env.update(extra)
    return env


def run(
    args: list[str | Path], cwd: Path, *, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env) if env is not None else bare_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Bare:
    wheel: Path
    venv: Path
    work: Path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([self.venv / "bin" / "mailcanary", *args], self.work, timeout=timeout)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Bare:
    work = tmp_path_factory.mktemp("bare")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", ROOT],
        work,
        timeout=INSTALL_TIMEOUT,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("mailcanary-*.whl")
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", venv], work)
    assert made.returncode == 0, made.stderr
    installed = run([venv / "bin" / "pip", "install", "-q", wheel], work, timeout=INSTALL_TIMEOUT)
    assert installed.returncode == 0, installed.stderr
    return Bare(wheel=wheel, venv=venv, work=work)


def test_the_wheel_carries_the_migrations_and_every_data_file(bare: Bare):
    names = set(zipfile.ZipFile(bare.wheel).namelist())
    migrations = {
        f"monitor/migrations/{p.relative_to(ROOT / 'alembic')}"
        for p in (ROOT / "alembic").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "monitor/migrations/env.py" in migrations
    assert any(m.startswith("monitor/migrations/versions/") for m in migrations)
    data = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "monitor").rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    assert migrations | data <= names, sorted((migrations | data) - names)


# Imports every module of the installed package except the harness (it needs the demo
# extra), the migrations (alembic runs them: `db upgrade` below does) and `__main__` modules
# (importing one runs the program).
IMPORT_ALL = """
import importlib, importlib.util, json, pathlib, sys
spec = importlib.util.find_spec("monitor")
top = pathlib.Path(spec.origin).parent
names = []
for path in sorted(top.rglob("*.py")):
    parts = path.relative_to(top).with_suffix("").parts
    if parts[0] in ("harness", "migrations") or parts[-1] == "__main__":
        continue
    names.append(".".join(("monitor", *parts[: -1 if parts[-1] == "__init__" else None])))
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
extras = [m for m in ("trustme", "asyncpg", "pytest") if importlib.util.find_spec(m)]
print(json.dumps({"top": str(top), "count": len(names), "failed": failed, "extras": extras}))
"""


def test_every_module_outside_the_harness_imports_without_extras(bare: Bare):
    done = run([bare.venv / "bin" / "python", "-c", IMPORT_ALL], bare.work)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["top"]).is_relative_to(bare.venv), found["top"]
    assert found["extras"] == []  # the venv really is bare
    assert found["count"] > 50
    assert found["failed"] == {}


def test_the_bare_cli_checks_migrates_probes_and_diagnoses_the_harness(
    bare: Bare, mailstack, tmp_path
):
    routes = [
        ("to-inboxes", "alice", {"bob": Verdict.INBOX}),
        ("untrusted-certificate", "alice-no-ca", {"bob": Verdict.SEND_FAILED}),
    ]
    monitor = f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
    config = str(write_config(mailstack, tmp_path, routes=routes, monitor=monitor))

    checked = bare.cli("--config", config, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert "2 routes" in checked.stdout

    upgraded = bare.cli("--config", config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at head" in upgraded.stdout

    probed = bare.cli("--config", config, "probe", "--json", "--deadline", "20s")
    assert "internal error" not in probed.stderr, probed.stderr
    assert probed.returncode == 2, probed.stdout + probed.stderr  # 2: a send_failed
    lines = {r["route"]: r for r in map(json.loads, probed.stdout.splitlines())}
    assert lines["to-inboxes"]["verdict"] == "inbox"
    refused = lines["untrusted-certificate"]
    assert (refused["verdict"], refused["failure"]) == ("send_failed", "tls_failed")
    # The refused certificate is described (read with cryptography, a base dependency).
    described = re.search(r"; subject (.+), expires \d{4}-\d\d-\d\d ", refused["failure_message"])
    assert described, refused["failure_message"]

    diagnosed = bare.cli("--config", config, "diagnose", "alice-no-ca", "--json")
    assert "internal error" not in diagnosed.stderr, diagnosed.stderr
    assert diagnosed.returncode == 2, diagnosed.stdout + diagnosed.stderr  # SMTP TLS refused
    report = json.loads(diagnosed.stdout)
    certificates = [
        s for s in report["steps"] if (s["service"], s["step"]) == ("smtp", "certificate")
    ]
    assert certificates and all(s["data"]["trusted"] is False for s in certificates), certificates
    assert {s["data"]["subject"] for s in certificates} == {described.group(1)}
