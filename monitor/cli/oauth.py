"""`mailcanary oauth …`: sign-in for auth = "xoauth2" accounts (the conversations are in
oauth_signin.py and oauth_browser.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor.cli.common import EX_CONFIG, config, fail, known_account, log_level, run_async

oauth_app = typer.Typer(
    help='OAuth2 (XOAUTH2) sign-in for auth = "xoauth2" accounts.',
    no_args_is_help=True,
    rich_markup_mode=None,
)


@oauth_app.command("status")
def oauth_status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Each xoauth2 account's token state and expiry (never the tokens); exit 1: one is missing."""
    from monitor.cli.oauth_signin import show_status

    cfg = config()
    log_level("WARNING")
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
    device: Annotated[
        bool, typer.Option("--device", help="Device code: a code to enter on any device.")
    ] = False,
    loopback: Annotated[
        bool,
        typer.Option("--loopback", help="A browser on this machine, back to 127.0.0.1."),
    ] = False,
    browser: Annotated[
        bool,
        typer.Option("--browser/--no-browser", help="Open a graphical browser if there is one."),
    ] = True,
) -> None:
    """Sign an account in, or import a refresh token.

    By default the device-code flow where the issuer has a device endpoint (Microsoft),
    else a browser sign-in that comes back to 127.0.0.1 (Google). Exit 0 signed in,
    1 failed, 2 no way to sign in, 77 access not granted at the consent screen.
    """
    from monitor.cli.oauth_signin import import_refresh_token, login

    cfg = config()
    log_level("WARNING")
    chosen = known_account(cfg, account)
    if chosen.auth != "xoauth2":
        fail(f'account {account!r} does not use auth = "xoauth2"', EX_CONFIG)
    if sum((device, loopback, refresh_token is not None)) > 1:
        fail("choose one of --device, --loopback and --refresh-token", 2)
    if refresh_token is not None:
        raise typer.Exit(run_async(lambda: import_refresh_token(cfg, chosen, refresh_token)))
    flow = "device" if device else "loopback" if loopback else None
    raise typer.Exit(run_async(lambda: login(cfg, chosen, flow=flow, browser=browser)))
