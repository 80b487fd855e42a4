"""`mailcanary oauth …`: sign-in for auth = "xoauth2" accounts (the work is in service.oauthcli)."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor.cli_common import EX_CONFIG, config, fail, known_account, run_async, state
from monitor.service import logging as logsetup

oauth_app = typer.Typer(
    help='OAuth2 (XOAUTH2) sign-in for auth = "xoauth2" accounts.', no_args_is_help=True
)


@oauth_app.command("status")
def oauth_status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Each xoauth2 account's token state and expiry (never the tokens); exit 1: one is missing."""
    from monitor.service.oauthcli import show_status

    cfg = config()
    logsetup.configure("INFO" if state.verbose else "WARNING")
    raise typer.Exit(show_status(cfg, as_json=as_json))


@oauth_app.command("login")
def oauth_login(
    account: Annotated[str, typer.Argument(help="The account to sign in.")],
    refresh_token: Annotated[
        str | None,
        typer.Option(
            "--refresh-token", help='Import this refresh token ("-": read it from stdin).'
        ),
    ] = None,
) -> None:
    """Sign an account in (device code: prints a code and a URL) or import a refresh token."""
    from monitor.service.oauthcli import device_login, import_refresh_token

    cfg = config()
    logsetup.configure("INFO" if state.verbose else "WARNING")
    chosen = known_account(cfg, account)
    if chosen.auth != "xoauth2":
        fail(f'account {account!r} does not use auth = "xoauth2"', EX_CONFIG)
    if refresh_token is not None:
        raise typer.Exit(run_async(lambda: import_refresh_token(cfg, chosen, refresh_token)))
    raise typer.Exit(run_async(lambda: device_login(cfg, chosen)))
