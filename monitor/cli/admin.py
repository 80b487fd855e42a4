"""The set-up commands: `db upgrade`, `web-password` and `demo` (registered on the app by
`register`, so app.py stays the table of the everyday commands)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from monitor.cli.common import (
    EX_UNAVAILABLE,
    config,
    duration_option,
    fail,
    log_level,
    run_async,
)

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("web-password")(web_password)
    app.command()(demo)


def web_password() -> None:
    """Print a salted hash of a password for [web] auth = "password" (password_hash_env/_file).

    Asks twice on a terminal; reads one line from standard input otherwise."""
    from monitor.web.security import hash_password

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        fail("web-password: the password is empty", 2)
    typer.echo(hash_password(password))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (the daemon also does this on start)."""
    from monitor.adapters.store import Store

    cfg = config()
    log_level("WARNING")

    async def work() -> None:
        store = await Store.open(cfg.monitor.database)
        try:
            await store.upgrade()
        finally:
            await store.close()

    run_async(work)
    typer.echo(f"database at head: {cfg.monitor.database}")


def demo(
    deadline: Annotated[
        str, typer.Option(metavar="DURATION", help="How long each demo canary may take.")
    ] = "20s",
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Leave the stack up afterwards, print commands to try, wait for kill."
        ),
    ] = False,
) -> None:
    """Start a private Postfix + Dovecot on 127.0.0.1 and probe it: verdicts live."""
    try:
        from monitor.harness.demo import run_demo
    except ImportError as exc:
        fail(f"demo: {exc.name} is not installed; pip install 'mailcanary[demo]'", EX_UNAVAILABLE)
    log_level("ERROR")
    seconds = duration_option(deadline, "--deadline") or 20.0
    raise typer.Exit(run_async(lambda: run_demo(deadline=seconds, keep=keep)))
