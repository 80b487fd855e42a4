"""A private PostgreSQL server for tests and benchmarks: Debian's binaries, a temp cluster.

`initdb` into a directory under /tmp, `pg_ctl start` on a free 127.0.0.1 port with its unix
socket inside that directory, trust authentication on loopback only. The system's own
cluster (`pg_lsclusters`) is never touched. Stopped by the postmaster's pid.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["Postgres", "PostgresError", "missing_requirements"]

HOST = "127.0.0.1"
USER = "postgres"


class PostgresError(RuntimeError):
    """The server could not start (the message carries the tail of its log)."""


def _bindir() -> Path | None:
    """Debian keeps each major version's server binaries apart; take the newest."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
    )
    if versions:
        return versions[-1]
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def missing_requirements() -> str | None:
    """Why this machine cannot run a private server, or None when it can."""
    if os.geteuid() != 0:
        return "the PostgreSQL harness needs root (it runs the server as the postgres user)"
    if _bindir() is None:
        return "the PostgreSQL harness needs Debian's postgresql package (pg_ctl not found)"
    if shutil.which("runuser") is None:
        return "the PostgreSQL harness needs runuser (util-linux)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Postgres:
    """A running private cluster; build it with `Postgres.start()`, end it with `stop()`."""

    def __init__(self, root: Path, bindir: Path, port: int) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.pid: int | None = None

    @classmethod
    def start(cls, *, database: str = "mailcanary") -> Postgres:
        reason = missing_requirements()
        if reason is not None:
            raise PostgresError(reason)
        bindir = _bindir()
        assert bindir is not None
        # /tmp, not pytest's 0700 tmp_path: the postgres user must reach its own directory.
        root = Path(tempfile.mkdtemp(prefix="mcpg", dir="/tmp"))
        root.chmod(0o755)
        shutil.chown(root, USER, USER)
        server = cls(root, bindir, _free_port())
        atexit.register(server.stop)  # a crashed run must not leave a postmaster behind
        try:
            server._boot()
            server.create_database(database)
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, program: str, *args: str) -> str:
        command = ["runuser", "-u", USER, "--", str(self.bindir / program), *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, check=True, timeout=60, cwd=self.root
            )
        except subprocess.CalledProcessError as exc:
            raise PostgresError(
                f"{program} exited with {exc.returncode}: {exc.stderr.strip()}\n{self._tail()}"
            ) from exc
        return done.stdout

    def _boot(self) -> None:
        # Trust only makes sense because the server listens on loopback alone.
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Throwaway data: durability only costs time here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        pidfile = self.data / "postmaster.pid"
        self.pid = int(pidfile.read_text().splitlines()[0])

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL. Without a name, a unique one (for test isolation)."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", HOST, "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def url(self, database: str = "mailcanary") -> str:
        return f"postgresql://{USER}@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        """Fast shutdown of the postmaster by its pid, then remove the cluster."""
        atexit.unregister(self.stop)
        pid, self.pid = self.pid, None
        if pid is not None:
            _end(pid)
        shutil.rmtree(self.root, ignore_errors=True)

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _end(pid: int, timeout: float = 20.0) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown: sessions are ended, nothing waits for clients.
    # The postmaster is not our child (pg_ctl detached it), so poll instead of waitpid.
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not _alive(pid):
                return
            time.sleep(0.05)
