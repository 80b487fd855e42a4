"""`mailcanary oauth status` and `mailcanary oauth login ACCOUNT`.

`status` shows, per auth = "xoauth2" account, where its refresh token comes from and when its
access token expires; it never prints a token. With --json, one object per account per line:
account, issuer, refresh_token (stored | env NAME | credential NAME | missing), saved_at,
access_expires_at (ISO 8601 UTC or null), state (ok | expired | missing), file.

`login` gets a refresh token and stores it in the state directory (0600): imported with
--refresh-token (read from stdin when "-", so it stays out of shell history; it is tried at
once with a refresh), through the issuer's device-code flow (it prints the code and the URL to
open, then polls), or through a browser sign-in with a loopback redirect (oauth_browser.py).
Which flow: --device or --loopback; by default the device flow where the issuer has a device
endpoint (Microsoft), else the browser (Google: its device flow does not grant mail access).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx
from rich.markup import escape
from rich.table import Table

from monitor.adapters.oauth import HTTP_TIMEOUT, OAuthError, TokenProvider, TokenStore
from monitor.cli.console import out
from monitor.cli.oauth_browser import loopback_login
from monitor.config.load import Config
from monitor.config.schema import Account
from monitor.core.models import utcnow
from monitor.core.oauth import TokenRefused, describe_expiry, parse_token_reply

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def xoauth2_accounts(cfg: Config) -> list[Account]:
    return [a for a in cfg.accounts if a.auth == "xoauth2" and a.oauth is not None]


def token_status(cfg: Config, account: Account) -> dict[str, Any]:
    """What is known of one account's tokens, without any token in it."""
    assert account.oauth is not None
    store = TokenStore(cfg.monitor.state_dir)
    stored = store.load(account.name)
    if stored is not None and stored.refresh_token:
        source = "stored"
    elif account.oauth.refresh_token is not None:
        source = account.oauth.refresh_token_source or "configured"
    else:
        source = "missing"
    grant = stored.grant if stored else None
    now = utcnow()
    state = "missing" if source == "missing" else "ok"
    if state == "ok" and grant is not None and grant.expires_at <= now:
        state = "expired"  # harmless: the next use refreshes it
    return {
        "account": account.name,
        "issuer": account.oauth.issuer,
        "refresh_token": source,
        "saved_at": stored.saved_at.isoformat() if stored and stored.saved_at else None,
        "access_expires_at": grant.expires_at.isoformat() if grant else None,
        "access": describe_expiry(grant.expires_at if grant else None, now),
        "state": state,
        "file": str(store.path(account.name)),
    }


def show_status(cfg: Config, *, as_json: bool) -> int:
    """Exit 0 when every xoauth2 account has a refresh token, 1 when one has none."""
    rows = [token_status(cfg, account) for account in xoauth2_accounts(cfg)]
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
    elif not rows:
        out.print('No account uses auth = "xoauth2".')
    else:
        table = Table("account", "issuer", "refresh token", "access token", "state")
        for row in rows:
            style = "red" if row["state"] == "missing" else ""
            table.add_row(
                row["account"],
                row["issuer"],
                row["refresh_token"],
                row["access"],
                f"[{style}]{row['state']}[/]" if style else row["state"],
            )
        out.print(table)
        for row in rows:
            if row["state"] == "missing":
                out.print(f"{row['account']}: run `mailcanary oauth login {row['account']}`")
    return 1 if any(row["state"] == "missing" for row in rows) else 0


async def _try(cfg: Config, account: Account) -> int:
    assert account.oauth is not None
    provider = TokenProvider(account.name, account.oauth, TokenStore(cfg.monitor.state_dir))
    try:
        await provider.access_token()
    except OAuthError as exc:
        out.print(
            f"[red]{escape(str(account.name))}:[/] {escape(str(exc))}", highlight=False, markup=True
        )
        return 1
    status = token_status(cfg, account)
    out.print(f"{account.name}: signed in; access token {status['access']}", highlight=False)
    return 0


async def import_refresh_token(cfg: Config, account: Account, token: str) -> int:
    """Store `token` ("-": read it from stdin) as the account's refresh token, then try it."""
    if token == "-":
        token = sys.stdin.readline().strip()
    if not token:
        out.print("[red]no refresh token given[/]", markup=True)
        return 2
    TokenStore(cfg.monitor.state_dir).save(account.name, token, None)
    return await _try(cfg, account)


def choose_flow(account: Account, asked: str | None) -> str | None:
    """ "device" or "loopback" (`asked` wins), None when the issuer offers neither."""
    settings = account.oauth
    assert settings is not None
    if asked is not None:
        return asked
    if settings.device_url:
        return "device"
    return "loopback" if settings.auth_url else None


async def login(cfg: Config, account: Account, *, flow: str | None, browser: bool) -> int:
    """Sign in with the chosen flow (see `choose_flow`); the exit code."""
    chosen = choose_flow(account, flow)
    if chosen == "device":
        return await device_login(cfg, account)
    if chosen == "loopback":
        return await loopback_login(cfg, account, browser=browser)
    out.print(
        f"[red]{escape(str(account.name))}:[/] the issuer has no device or authorization "
        f"endpoint: set "
        "oauth.device_url or oauth.auth_url, or import a token with --refresh-token",
        highlight=False,
        markup=True,
    )
    return 2


async def device_login(cfg: Config, account: Account, *, timeout: float = 900.0) -> int:  # noqa: ASYNC109 - how long a person has
    """The device-code flow (RFC 8628): show the code, poll until the user has signed in."""
    settings = account.oauth
    assert settings is not None
    if not settings.device_url:
        out.print(
            f"[red]{escape(str(account.name))}:[/] the issuer has no device endpoint (set "
            f"oauth.device_url); "
            "use --loopback or --refresh-token",
            highlight=False,
            markup=True,
        )
        return 2
    form = {"client_id": settings.client_id, "scope": " ".join(settings.scopes)}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        started = await client.post(settings.device_url, data=form)
        offer = _json(started)
        if started.status_code != 200 or "device_code" not in offer:
            error = offer.get("error") or f"HTTP {started.status_code}"
            out.print(
                f"[red]{escape(str(account.name))}:[/] device sign-in refused: "
                f"{escape(str(error))}",
                highlight=False,
                markup=True,
            )
            return 1
        url = offer.get("verification_uri") or offer.get("verification_url")
        out.print(f"To sign in {account.name}, open {url} and enter the code {offer['user_code']}")
        interval = float(offer.get("interval") or 5)
        deadline = time.monotonic() + min(timeout, float(offer.get("expires_in") or timeout))
        poll = {"grant_type": DEVICE_GRANT, "device_code": offer["device_code"]}
        poll["client_id"] = settings.client_id
        if settings.client_secret is not None:
            poll["client_secret"] = settings.client_secret.get_secret_value()
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)  # the issuer's own pace (RFC 8628 §3.5)
            reply = await client.post(settings.token_url, data=poll)
            try:
                grant = parse_token_reply(reply.status_code, _json(reply), utcnow())
            except TokenRefused as refused:
                if refused.error == "authorization_pending":
                    continue
                if refused.error == "slow_down":
                    interval += 5
                    continue
                out.print(
                    f"[red]{escape(str(account.name))}:[/] sign-in failed: {escape(str(refused))}",
                    highlight=False,
                    markup=True,
                )
                return 1
            if grant.refresh_token is None:
                out.print(
                    f"[red]{escape(str(account.name))}:[/] no refresh token (scope "
                    f"offline_access?)",
                    markup=True,
                )
                return 1
            TokenStore(cfg.monitor.state_dir).save(account.name, grant.refresh_token, grant)
            out.print(f"{account.name}: signed in; refresh token stored", highlight=False)
            return 0
    out.print(
        f"[red]{escape(str(account.name))}:[/] the code expired before sign-in finished",
        markup=True,
    )
    return 1


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
