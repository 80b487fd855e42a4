"""What every `mailcanary` command shares: the global options, config loading, one-line failures.

Exit codes: see exits.py (re-exported here). A user never sees a traceback: every failure is
one line naming the culprit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.markup import escape

from monitor.cli.argv import default_config_path
from monitor.cli.console import err
from monitor.cli.exits import EX_CONFIG as EX_CONFIG
from monitor.cli.exits import EX_IOERR as EX_IOERR
from monitor.cli.exits import EX_SOFTWARE as EX_SOFTWARE
from monitor.cli.exits import EX_TEMPFAIL as EX_TEMPFAIL
from monitor.cli.exits import EX_UNAVAILABLE as EX_UNAVAILABLE
from monitor.core.durations import DurationRange, parse_duration

if TYPE_CHECKING:  # `--help` and a mistyped command must not pay for pydantic and SQLAlchemy
    from monitor.config.load import Config
    from monitor.config.schema import Account

T = TypeVar("T")


class State:
    config_path: Path | None = None
    verbose: bool = False


state = State()


def fail(message: str, code: int) -> NoReturn:
    err.print(
        f"[bold red]mailcanary:[/] {escape(str(message))}",
        highlight=False,
        soft_wrap=True,
        markup=True,
    )
    raise typer.Exit(code)


def internal_error(exc: Exception) -> NoReturn:
    """The last line of defence, for a bug: one line, exit 70, never a traceback for a user
    (MAILCANARY_DEBUG=1 re-raises)."""
    if os.environ.get("MAILCANARY_DEBUG"):
        raise exc
    err.print(
        f"[bold red]mailcanary: internal error:[/] {escape(str(type(exc).__name__))}: "
        f"{escape(str(exc))} "
        "(set MAILCANARY_DEBUG=1 for a traceback; please report it)",
        highlight=False,
        markup=True,
    )
    sys.exit(EX_SOFTWARE)


def log_level(quiet: str, *, verbose: str = "INFO") -> None:
    """Configure logging for a command: `quiet` by default, `verbose` with -v."""
    from monitor import logs

    logs.configure(verbose if state.verbose else quiet)


def config(*, routes: bool = False) -> Config:
    """The config, or exit 78 naming every problem. `routes`: a command that sends (probe,
    run) also needs a route; with none it would check nothing and say all is well."""
    from monitor.cli.configured import checked_config

    cfg = checked_config(state.config_path or default_config_path(), routes=routes)
    if cfg is None:
        raise typer.Exit(EX_CONFIG)
    return cfg


def known_account(cfg: Config, name: str) -> Account:
    try:
        return cfg.account(name)
    except KeyError:
        known = ", ".join(a.name for a in cfg.accounts)
        fail(f"unknown account {name!r}; known: {known}", EX_CONFIG)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning the failures a user can cause into one line each."""
    import asyncio  # here: `--help` and `status --nagios` on SQLite never start a loop

    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except (KeyboardInterrupt, Exception) as exc:
        explain(exc)


def explain(exc: BaseException) -> NoReturn:
    """A failure a user can cause (interrupted, I/O, key file, database) as one line on
    stderr and typer.Exit with its code; anything else is raised again."""
    if isinstance(exc, KeyboardInterrupt):
        fail("interrupted", 130)
    if isinstance(exc, OSError):
        fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", EX_IOERR)
    if isinstance(exc, Exception) and _key_error(exc):
        fail(str(exc), EX_IOERR)
    if isinstance(exc, Exception) and _instance_taken(exc):
        fail(str(exc), EX_TEMPFAIL)
    if not isinstance(exc, Exception) or not _database_error(exc):
        raise exc
    fail(
        f"database: {str(exc.orig if getattr(exc, 'orig', None) else exc).splitlines()[0]}",
        EX_IOERR,
    )


def _key_error(exc: Exception) -> bool:
    keyfile = sys.modules.get("monitor.adapters.keyfile")  # as below: only if it was used
    return keyfile is not None and isinstance(exc, keyfile.KeyFileError)


def _instance_taken(exc: Exception) -> bool:
    sharing = sys.modules.get("monitor.core.sharing")  # only a daemon on PostgreSQL meets it
    return sharing is not None and isinstance(exc, sharing.InstanceTaken)


def _database_error(exc: Exception) -> bool:
    # Only a command that opened the store can meet a database error; looking it up this way
    # keeps SQLAlchemy out of the commands that never touch it (status --nagios, --help).
    store = sys.modules.get("monitor.adapters.store")
    return store is not None and isinstance(exc, store.DatabaseError)


def duration_option(
    value: str | None, name: str, bounds: DurationRange | None = None
) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
        return bounds.check(seconds) if bounds is not None else seconds
    except ValueError as exc:
        fail(f"{name}: {exc}", 2)
