"""What the daemon holds in memory once it is up, and which heavy packages it imported.

    sudo .venv/bin/python bench/startup.py --runs 3 [--tree DIR] [--listen]

Starts a private Postfix + Dovecot and the demo's config (18 accounts, every route of
`mailcanary demo`, `monitor.listen` off unless --listen, which serves /metrics and the status
page), then per run: the console script's `run` until it logs "mailcanary running" (resident
set then), `--settle` seconds more (the first round of canaries sent and judged: resident set
and peak), SIGTERM; the heavy packages named are those in sys.modules when it exited. Also
the peak RSS of a fresh interpreter importing only what `run` imports before it starts.
`--tree` measures another checkout's `monitor` package with this script (e.g. the main
branch, for a before/after). Medians over the runs; the last line is one JSON object.
Resident memory does not vary with the host's load as CPU does, but the first round's work
(and so the settled figure) varies a little.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.harness.demo import demo_monitor, write_config  # noqa: E402
from monitor.harness.mailstack import MailStack  # noqa: E402

# Packages worth naming when the daemon imports them (each costs megabytes to import).
HEAVY = (
    "aiohttp alembic apscheduler cryptography dns httpx jinja2 matplotlib prometheus_client "
    "pydantic pygments rich sqlalchemy structlog typer"
).split()
# What `run` imports before the daemon starts: the console script, the command (serve.py
# since it runs before typer; in older trees app.py, i.e. typer) and the daemon.
IMPORTS = """import importlib.util
import monitor.cli.entry
if importlib.util.find_spec("monitor.cli.serve"):
    import monitor.cli.serve
else:
    import monitor.cli.app
import monitor.daemon.main
"""
# The console script's code, plus the names of the modules loaded by the time it exits.
CONSOLE = """import atexit, os, sys
def names():
    with open(os.environ["MC_MODULES"], "w") as out:
        out.write("\\n".join(name for name, module in sys.modules.items() if module))
atexit.register(names)
from monitor.cli.entry import main
main()
"""


def memory(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) in MB, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def one_run(command: list[str], env: dict[str, str], work: Path, settle: float) -> dict:
    # A new database each run, migrated before the daemon starts, as a daemon usually starts
    # on its (a migration loads Alembic, Mako and Pygments into the daemon that runs it); in
    # the last run's database this slot's canaries would be claimed already, and not sent.
    for old in work.glob("mailcanary.db*"):
        old.unlink()
    upgrade = [*command[:-1], "db", "upgrade"]
    subprocess.run(upgrade, env=env, check=True, capture_output=True, cwd=work)
    log = work / "daemon.log"
    with log.open("wb") as sink:
        daemon = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=work)
    try:
        up = time.monotonic() + 90
        while b"mailcanary running" not in log.read_bytes():  # a benchmark's clock
            if daemon.poll() is not None or time.monotonic() > up:
                raise SystemExit(f"daemon did not come up; see {log}:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        at_start, _ = memory(daemon.pid)
        time.sleep(settle)  # a benchmark's clock: the first round's canaries are judged
        settled, peak = memory(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    packages = {name.split(".")[0] for name in Path(env["MC_MODULES"]).read_text().split()}
    return {
        "start_mb": round(at_start, 1),
        "settled_mb": round(settled, 1),
        "peak_mb": round(peak, 1),
        "heavy": sorted(p for p in HEAVY if p in packages),
    }


def import_only(env: dict[str, str]) -> float:
    code = f"{IMPORTS}import resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/"
    )
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after start")
    parser.add_argument("--tree", type=Path, default=REPO, help="whose monitor package")
    parser.add_argument("--listen", action="store_true", help="serve /metrics and the page")
    options = parser.parse_args()
    tree = options.tree.resolve()
    work = Path(tempfile.mkdtemp(prefix="mc-startup-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(tree), PYTHONPYCACHEPREFIX=str(work / "pycache"))
    stack = MailStack.start()
    try:
        # Off unless asked: the default (127.0.0.1:9842) would clash with another daemon.
        listen = f"127.0.0.1:{free_port()}" if options.listen else ""
        config = write_config(stack, work, monitor=demo_monitor(work) + f'listen = "{listen}"\n')
        env["MC_MODULES"] = str(work / "modules")
        command = [sys.executable, "-c", CONSOLE, "--config", str(config), "run"]
        import_only(env)  # compiles the bytecode cache; not counted
        imports = [import_only(env) for _ in range(options.runs)]
        runs = [one_run(command, env, work, options.settle) for _ in range(options.runs)]
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    result: dict = {"tree": str(tree), "runs": options.runs, "listen": options.listen}
    result["import_only_mb"] = round(statistics.median(imports), 1)
    for key in ("start_mb", "settled_mb", "peak_mb"):
        result[key] = round(statistics.median(r[key] for r in runs), 1)
    result["heavy_imported"] = runs[-1]["heavy"]
    print(
        f"import only {result['import_only_mb']} MB; daemon up {result['start_mb']} MB, "
        f"after {options.settle:g} s {result['settled_mb']} MB (peak {result['peak_mb']} MB); "
        f"medians of {options.runs}",
        flush=True,
    )
    print("heavy packages imported:", " ".join(result["heavy_imported"]) or "none")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
