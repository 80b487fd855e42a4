"""How the daemon scales with mailboxes: a private Postfix + Dovecot with N extra users,
one route per mailbox, the real daemon for a while, then figures from its database.

    sudo /tmp/venv/bin/python bench/scale.py --mailboxes 1000 --interval 60 --duration 600

Prints planned / finished / dropped probes, slots planned / expected (every mailbox in every
slot the run went through, the one the daemon started in included; the run ends late in a
slot, so the last counts whole), schedule lag (planned_at after the scheduler's
own fire time), detection lag (the message file's mtime in the Maildir → verdict), delivery
time, daemon CPU seconds per probe (over the run, and after start-up: from 1.5 intervals in)
and peak RSS; the last line is one JSON object.
`--profile FILE` runs the daemon under pyinstrument (if installed) and writes its text report
(a FILE ending in .pyisession: the whole session, for `python -m pyinstrument --load FILE`).
`--recipients-per-route R` gives each route R mailboxes (their canaries share one SMTP session
per slot) instead of one, so the CPU per probe shows what the shared session saves.

    sudo /tmp/venv/bin/python bench/scale.py --instances 3 --mailboxes 100 --duration 180

`--instances K` runs K daemons on a private PostgreSQL instead (see bench/fleet.py): the
figures per instance, IMAP sessions per mailbox, and the hand-over after one is killed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import Routes, measure, parse_time, proc_stats, report, scheduled_runs  # noqa: E402
from bench.fleet import ROWS, Sessions, probe_rows, wait_balanced, wait_resolved  # noqa: E402
from bench.slots import coverage, scheduler_started, stop_moment  # noqa: E402
from monitor.core.models import Verdict  # noqa: E402
from monitor.harness.demo import write_config  # noqa: E402
from monitor.harness.mailstack import MailStack  # noqa: E402


def bench_routes(users: list[str], per: int) -> Routes:
    """From alice: one route per `per` mailboxes (the last may have fewer)."""
    groups = [users[i : i + max(per, 1)] for i in range(0, len(users), max(per, 1))]
    inboxes = [dict.fromkeys(group, Verdict.INBOX) for group in groups]
    return [(f"m{n:05d}", "alice", to) for n, to in enumerate(inboxes, 1)]  # m00001 as ever


def run_daemon(config: str) -> None:
    """The daemon as `mailcanary run`; each route run's scheduled time goes to `runs_file`
    (for schedule lag) through a scheduler listener: APScheduler's own per-run INFO lines
    would go through the daemon's log formatting, two lines a run, and be measured as the
    daemon's CPU."""
    from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from monitor.cli import entry

    sink = runs_file(config).open("a", buffering=1)  # a line each: a SIGKILL loses none
    start = AsyncIOScheduler.start

    def note(event: JobSubmissionEvent) -> None:
        if event.job_id.startswith("route:"):
            route = event.job_id.removeprefix("route:")
            sink.writelines(f"{route}\t{at.isoformat()}\n" for at in event.scheduled_run_times)

    def start_and_note(self: AsyncIOScheduler, *args: object, **kwargs: object) -> None:
        self.add_listener(note, EVENT_JOB_SUBMITTED)
        start(self, *args, **kwargs)  # type: ignore[arg-type]

    AsyncIOScheduler.start = start_and_note  # type: ignore[method-assign]
    # As the console script starts it (before typer loads), so peak RSS is an installation's.
    sys.argv = ["mailcanary", "--config", config, "run"]
    entry.main()


def runs_file(config: str | Path) -> Path:
    """Where `run_daemon` notes the scheduled time of each route run: beside its config."""
    return Path(config).parent / "runs.tsv"


def ensure_inotify(needed: int, say: Callable[[str], None]) -> None:
    """Every IDLE session of the bench's Dovecot holds an inotify instance (all as the uid
    `mail`); past the host's limit Dovecot stops pushing and checks only every 30 s, which
    would measure the host, not mailcanary. Raised when we may (root), else said."""
    knob = Path("/proc/sys/fs/inotify/max_user_instances")
    have = int(knob.read_text())
    if have >= needed:
        return
    try:
        knob.write_text(str(max(needed, 8192)))
        say(f"raised fs.inotify.max_user_instances {have} -> {max(needed, 8192)} for Dovecot")
    except OSError:
        say(
            f"warning: fs.inotify.max_user_instances is {have}, below the {needed} IDLE"
            " sessions: detection lag will show Dovecot's 30 s fallback; raise it with"
            " sysctl -w fs.inotify.max_user_instances=8192"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between canaries")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds to run")
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds to wait for one")
    parser.add_argument("--profile", type=Path, help="pyinstrument report (text, or .pyisession)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--instances", type=int, help="K daemons on PostgreSQL (else SQLite)")
    parser.add_argument("--lease", type=float, default=30.0, help="monitor.lease, seconds")
    parser.add_argument("--recipients-per-route", type=int, default=1, help="one SMTP session")
    parser.add_argument("--launch-at", type=float, help="launch the daemon this far into a slot")
    parser.add_argument("--run-daemon", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_daemon:
        run_daemon(args.run_daemon)
        return 0
    if args.instances:
        return run_fleet(args)

    work = Path(tempfile.mkdtemp(prefix="mcbench"))
    say = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731
    ensure_inotify(args.mailboxes + 100, say)  # one IDLE session per mailbox
    say(f"starting a mail stack with {args.mailboxes} extra mailboxes")
    stack = MailStack.start(extra_users=args.mailboxes)
    daemon: subprocess.Popen[bytes] | None = None
    try:
        users = [f"user{n:05d}" for n in range(1, args.mailboxes + 1)]
        routes = bench_routes(users, args.recipients_per_route)
        database = work / "mc.db"
        monitor = (
            f'database = "sqlite:///{database}"\nstate_dir = "{work}/state"\n'
            f'interval = "{args.interval:g}s"\ndeadline = "{args.deadline:g}s"\n'
            'poll_interval = "15s"\ncleanup = false\nlisten = ""\n'
        )
        config = write_config(stack, work, routes=routes, monitor=monitor)
        log = work / "daemon.log"
        command = [sys.executable, str(Path(__file__).resolve()), "--run-daemon", str(config)]
        if args.profile:
            # A .pyisession file keeps the whole session (pyinstrument --load), else text.
            kind = "pyisession" if args.profile.suffix == ".pyisession" else "text"
            prof = ["-m", "pyinstrument", "-r", kind, "-o", str(args.profile.resolve())]
            command = [sys.executable, *prof, *command[1:]]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if args.launch_at is not None:  # a start late in a slot (its watchers log in first)
            time.sleep((args.launch_at - time.time()) % args.interval)  # a benchmark's clock
        with log.open("wb") as sink:
            daemon = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=work)
        started = datetime.now(UTC)
        say(f"daemon {daemon.pid} running for {args.duration:g} s (log {log})")
        # Stopped late in a slot, once all its runs have fired: the last slot counts whole.
        end = stop_moment(time.time() + args.duration, args.interval)
        # Steady state: once start-up (one IMAP login per mailbox, the first runs) is over.
        steady_from, steady = time.time() + min(1.5 * args.interval, args.duration / 2), None
        while time.time() < end and daemon.poll() is None:
            time.sleep(min(1.0, max(end - time.time(), 0.0)))  # a benchmark's clock
            if steady is None and time.time() >= steady_from:
                steady = (proc_stats(daemon.pid)[0], datetime.now(UTC))
        if daemon.poll() is not None:
            say(f"daemon exited early with {daemon.returncode}; see {log}")
            return 1
        cpu, peak_rss = proc_stats(daemon.pid)
        stopped = datetime.now(UTC)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
        say("daemon stopped; reading the record")
        with sqlite3.connect(database) as conn:
            rows = conn.execute(ROWS).fetchall()
        runs = scheduled_runs(runs_file(config))
        figures = measure(rows, stack, users, routes, runs, started, stopped, args.interval)
        claims = {(r[0], parse_time(r[2]).timestamp()) for r in rows}
        began = scheduler_started(log) or started.timestamp()
        names = {name for name, _, _ in routes}
        figures |= coverage(claims, names, began, stopped.timestamp(), args.interval)
        figures["routes"] = len(names)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        stack.stop()
    figures.update(
        mailboxes=args.mailboxes,
        recipients_per_route=args.recipients_per_route,
        cpu_seconds=round(cpu, 2),
        cpu_seconds_per_probe=round(cpu / max(figures["finished"], 1), 4),
        cpu_cores=round(cpu / (stopped - started).total_seconds(), 3),
        peak_rss_mb=round(peak_rss, 1),
    )
    if steady is not None:  # probes planned since then, and the CPU spent since then
        since = sum(parse_time(r[3]) >= steady[1] for r in rows)
        figures["cpu_steady_per_probe"] = round((cpu - steady[0]) / max(since, 1), 4)
    report(figures)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def run_fleet(args: argparse.Namespace) -> int:
    """K daemons on one private PostgreSQL; the last is killed (SIGKILL) halfway through."""
    from monitor.harness.postgres import Postgres

    work = Path(tempfile.mkdtemp(prefix="mcbench"))
    say = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731
    ensure_inotify(2 * args.mailboxes + 100, say)  # two per mailbox during a hand-over
    say(f"starting PostgreSQL and a mail stack with {args.mailboxes} extra mailboxes")
    postgres = Postgres.start()
    stack = MailStack.start(extra_users=args.mailboxes)
    names = [f"i{n}" for n in range(1, args.instances + 1)]
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    stats: dict[str, tuple[float, float]] = {}
    handover: dict[str, float | None] = {}
    configs: dict[str, Path] = {}
    try:
        users = [f"user{n:05d}" for n in range(1, args.mailboxes + 1)]
        routes = bench_routes(users, args.recipients_per_route)
        url = postgres.url()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name in names:
            monitor = (
                f'database = "{url}"\nstate_dir = "{work}/{name}"\ninstance = "{name}"\n'
                f'interval = "{args.interval:g}s"\ndeadline = "{args.deadline:g}s"\n'
                f'lease = "{args.lease:g}s"\npoll_interval = "15s"\ncleanup = false\nlisten = ""\n'
            )
            config = configs[name] = write_config(
                stack, work / name, routes=routes, monitor=monitor
            )
            command = [sys.executable, str(Path(__file__).resolve()), "--run-daemon", str(config)]
            with (work / f"{name}.log").open("wb") as sink:
                daemons[name] = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        started, begun = datetime.now(UTC), time.monotonic()
        say(f"{len(names)} daemons running for {args.duration:g} s (logs in {work})")
        victim = names[-1] if len(names) > 1 else None
        with Sessions(stack, users) as sessions:
            while time.monotonic() - begun < args.duration:
                gone = [n for n, d in daemons.items() if d.poll() is not None and n not in stats]
                if gone:
                    say(f"daemon {gone[0]} exited early; see {work / gone[0]}.log")
                    return 1
                if victim and victim not in stats and time.monotonic() - begun > args.duration / 2:
                    stats[victim] = proc_stats(daemons[victim].pid)
                    daemons[victim].kill()
                    killed = time.monotonic()
                    say(f"killed {victim} (SIGKILL)")
                    alive = set(names) - {victim}
                    handover["mailboxes_s"] = wait_balanced(url, alive, len(users), 4 * args.lease)
                    handover["probes_s"] = wait_resolved(
                        url, victim, 4 * args.lease + args.deadline
                    )
                    window = (killed, time.monotonic() + args.lease / 3)
                time.sleep(1)  # a benchmark's clock, not a test's synchronisation
            for name, daemon in daemons.items():
                if daemon.poll() is None:
                    stats[name] = proc_stats(daemon.pid)
            stopped = datetime.now(UTC)
        for daemon in daemons.values():
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=120)
        say("daemons stopped; reading the record")
        rows = probe_rows(url)
        runs: dict[str, list[datetime]] = {}
        for name in names:
            for route, at in scheduled_runs(runs_file(configs[name])).items():
                runs.setdefault(route, []).extend(at)
        fleet = measure(rows, stack, users, routes, runs, started, stopped, args.interval)
        # Start-up (every instance takes its share) and the kill's hand-over are not steady.
        calm = lambda at: not (victim and window[0] - 5 <= at <= window[1] + 5)  # noqa: E731
        fleet |= sessions.figures(begun + min(60.0, args.duration / 4), calm)
        per = {}
        for name in names:
            mine = measure(
                [r for r in rows if r[9] == name],
                stack,
                users,
                routes,
                runs,
                started,
                stopped,
                args.interval,
            )
            cpu, rss = stats[name]
            per[name] = {
                k: mine[k]
                for k in (
                    "planned",
                    "finished",
                    "verdicts",
                    "schedule_lag_p99",
                    "detection_lag_p50",
                    "detection_lag_p95",
                    "delivery_p50",
                )
            }
            per[name] |= {
                "cpu_seconds": round(cpu, 2),
                "cpu_seconds_per_probe": round(cpu / max(mine["finished"], 1), 4),
                "peak_rss_mb": round(rss, 1),
            }
    finally:
        for daemon in daemons.values():
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        stack.stop()
        postgres.stop()
    fleet |= {
        "mailboxes": args.mailboxes,
        "instances": len(names),
        "killed": victim,
        "handover": handover,
    }
    for name, figures in per.items():
        print(f"{name}  {json.dumps(figures)}")
    print(json.dumps({k: v for k, v in fleet.items() if k not in ("lag_samples",)}))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
