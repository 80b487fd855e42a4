"""What every `mailcanary` command shares: the global options, config loading, one-line failures.

Exit codes: probe follows Nagios (0 inbox, 1 spam/late, 2 missing/send_failed,
3 check_failed); 78 bad config (EX_CONFIG); 74 database or state trouble (EX_IOERR);
69 the demo's mail stack is unavailable (EX_UNAVAILABLE); 70 an internal error.
A user never sees a traceback: every failure is one line naming the culprit.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from monitor.core.durations import DurationRange, parse_duration

if TYPE_CHECKING:  # `--help` and a mistyped command must not pay for pydantic and SQLAlchemy
    from monitor.config.load import Config
    from monitor.config.schema import Account

EX_CONFIG, EX_IOERR, EX_UNAVAILABLE, EX_SOFTWARE = 78, 74, 69, 70
T = TypeVar("T")

err = Console(stderr=True, markup=False)  # see console.py


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


def default_config_path() -> Path:
    env = os.environ
    if env.get("MAILCANARY_CONFIG"):
        return Path(env["MAILCANARY_CONFIG"])
    for base in filter(None, (env.get("CONFIGURATION_DIRECTORY"), "/etc/mailcanary")):
        candidate = Path(base) / "mailcanary.toml"
        if candidate.exists():
            return candidate
    return Path("mailcanary.toml")


def log_level(quiet: str, *, verbose: str = "INFO") -> None:
    """Configure logging for a command: `quiet` by default, `verbose` with -v."""
    from monitor import logs

    logs.configure(verbose if state.verbose else quiet)


def config(*, routes: bool = False) -> Config:
    """The config, or exit 78 naming every problem. `routes`: a command that sends (probe,
    run) also needs a route; with none it would check nothing and say all is well."""
    from monitor.config.load import ConfigError, load_config

    path = state.config_path or default_config_path()
    try:
        cfg = load_config(path)
        if routes:
            cfg.require_routes()
    except ConfigError as exc:
        for line in exc.problems:
            err.print(line, highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EX_CONFIG) from None
    for warning in cfg.warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
    return cfg


def known_account(cfg: Config, name: str) -> Account:
    try:
        return cfg.account(name)
    except KeyError:
        known = ", ".join(a.name for a in cfg.accounts)
        fail(f"unknown account {name!r}; known: {known}", EX_CONFIG)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning the failures a user can cause into one line each."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as exc:
        fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", EX_IOERR)
    except Exception as exc:
        if _key_error(exc):
            fail(str(exc), EX_IOERR)
        if not _database_error(exc):
            raise
        fail(
            f"database: {str(exc.orig if getattr(exc, 'orig', None) else exc).splitlines()[0]}",
            EX_IOERR,
        )


def _key_error(exc: Exception) -> bool:
    keyfile = sys.modules.get("monitor.adapters.keyfile")  # as below: only if it was used
    return keyfile is not None and isinstance(exc, keyfile.KeyFileError)


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


GLOBAL_OPTIONS = {"--config": True, "-c": True, "--verbose": False, "-v": False}


def hoist_global_options(args: list[str]) -> list[str]:
    """`mailcanary check-config --config X` means what `mailcanary --config X check-config`
    does: global options given after the command move in front of it."""
    front: list[str] = []
    rest: list[str] = []
    seen_command = False
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(args[i:])
            break
        if name in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
            taken = args[i : i + 2] if takes_value else [arg]
            (front if seen_command else rest).extend(taken)
            i += len(taken)
            continue
        if not arg.startswith("-"):
            seen_command = True
        rest.append(arg)
        i += 1
    return front + rest
