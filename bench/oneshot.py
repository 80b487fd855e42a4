"""What one check costs as a whole process: CPU seconds (user + system, from the kernel's
rusage of each child) for `--help`, `probe --nagios` (one canary through a private Postfix +
Dovecot) and `status --nagios` (the passive check reading the record those probes left).

    sudo .venv/bin/python bench/oneshot.py --runs 20

Prints one line per command (median, p95, max) and, last, one JSON object. For comparison,
check_email_delivery's best settings measured 0.11 CPU-s per check on this kind of machine
(issue #17); the goals are --help <= 0.15 and a Nagios check <= 0.2. Two reference lines
say what no command can go below: the interpreter starting (`python -c pass`) and importing
pydantic, which the config needs.

Each process runs the console script pyproject.toml declares (written here, as pip writes
it), so a venv installed before the entry point changed is measured as a new install would
be. Bytecode is cached in a private directory and each command runs once before it is
timed, as an installed wheel's modules are compiled at install (PYTHONDONTWRITEBYTECODE
would make every run compile the whole tree).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.core.models import Verdict  # noqa: E402
from monitor.harness.demo import write_config  # noqa: E402
from monitor.harness.mailstack import MailStack  # noqa: E402


def console_script(directory: Path) -> list[str]:
    """The `mailcanary` script for pyproject's entry point, as pip writes it."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["mailcanary"].partition(":")
    script = directory / "mailcanary"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
        f"if __name__ == '__main__':\n    sys.exit({function}())\n"
    )
    script.chmod(0o755)
    return [str(script)]


def child_environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


ENV: dict[str, str] = {}
# What the config's models import of pydantic and its first model (the rest of its imports),
# with plugins off as the console script sets it.
PYDANTIC = (
    "import os\nos.environ['PYDANTIC_DISABLE_PLUGINS'] = '__all__'\n"
    "from pydantic import BaseModel, SecretStr\nclass First(BaseModel):\n    x: int = 0"
)


def cpu_seconds(args: list[str]) -> tuple[float, int]:
    """Run one process to its end; its CPU seconds and exit code, from wait4's rusage."""
    child = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd="/"
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, child.returncode


def measure(name: str, args: list[str], runs: int, ok: set[int]) -> dict[str, float]:
    cpu_seconds(args)  # compiles what it imports into the bytecode cache; not counted
    seconds = []
    for _ in range(runs):
        spent, code = cpu_seconds(args)
        if code not in ok:
            raise SystemExit(f"{name}: exit {code} ({' '.join(args)})")
        seconds.append(spent)
    seconds.sort()
    figures = {
        "median": round(statistics.median(seconds), 3),
        "p95": round(seconds[max(0, int(0.95 * len(seconds)) - 1)], 3),
        "max": round(seconds[-1], 3),
    }
    print(
        f"{name:16} CPU-s median {figures['median']}  p95 {figures['p95']}  "
        f"max {figures['max']}  ({runs} runs)",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="processes per command")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mc-oneshot-", dir="/tmp"))
    stack = MailStack.start()
    try:
        routes = [("inbox", "alice", {"bob": Verdict.INBOX})]
        config = write_config(
            stack,
            work,
            routes=routes,
            monitor=f'interval = "1m"\ndeadline = "20s"\ndatabase = "sqlite:///{work}/mc.db"\n'
            f'state_dir = "{work}/state"\n',
        )
        ENV.update(child_environment(work))
        command = console_script(work)
        base = [*command, "--config", str(config)]
        python = [sys.executable, "-c"]
        results = {
            "python": measure("python -c pass", [*python, "pass"], options.runs, {0}),
            "pydantic": measure("import pydantic", [*python, PYDANTIC], options.runs, {0}),
            "help": measure("--help", [*command, "--help"], options.runs, {0}),
            "probe_nagios": measure(
                "probe --nagios", [*base, "probe", "--nagios"], options.runs, {0}
            ),
            "status_nagios": measure(
                "status --nagios", [*base, "status", "--nagios"], options.runs, {0}
            ),
        }
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"runs": options.runs, **results}))


if __name__ == "__main__":
    main()
