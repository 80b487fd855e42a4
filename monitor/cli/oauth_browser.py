"""`mailcanary oauth login ACCOUNT` in a browser: the authorization-code flow with PKCE and a
loopback redirect (RFC 8252 §7.3, RFC 7636), the way Google wants installed apps to sign in.

1. Listen on 127.0.0.1 on a port the system picks (never on every interface).
2. Print the issuer's authorization URL, and open it when a graphical browser is at hand.
3. Wait for the browser to come back with `?code=…&state=…`; a visit without our state is
   answered 400 and ignored (an old tab, or someone else's page poking at the port).
4. Exchange the code and the PKCE verifier at the token endpoint.
5. Store the refresh token as the device flow does (TokenStore: 0600, written atomically) and
   tell the browser it can close. No token or code is ever printed.

Exit codes: 0 signed in; 1 failed or timed out; 2 the issuer has no authorization endpoint;
77 (EX_NOPERM) the user did not grant access at the consent screen.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
import webbrowser
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.markup import escape

from monitor.adapters.oauth import HTTP_TIMEOUT, TokenStore
from monitor.adapters.oauth_redirect import RedirectListener, Visit
from monitor.cli.console import out
from monitor.config.load import Config
from monitor.config.schema import Account
from monitor.core.models import utcnow
from monitor.core.oauth import (
    TokenRefused,
    authorization_url,
    judge_redirect,
    parse_token_reply,
    pkce_challenge,
)

EX_DENIED = 77
LOGIN_TIMEOUT = 600.0  # seconds for a person to get through the issuer's pages
_CLOSE = "You can close this window and go back to the terminal."


async def loopback_login(
    cfg: Config,
    account: Account,
    *,
    browser: bool = True,
    timeout: float = LOGIN_TIMEOUT,  # noqa: ASYNC109 - how long a person has
) -> int:
    settings = account.oauth
    assert settings is not None
    if not settings.auth_url:
        out.print(
            f"[red]{escape(account.name)}:[/] the issuer has no authorization endpoint "
            "(set oauth.auth_url), or use --refresh-token",
            highlight=False,
            markup=True,
        )
        return 2
    verifier = secrets.token_urlsafe(48)  # 64 characters of the 43–128 PKCE allows
    state = secrets.token_urlsafe(24)
    async with RedirectListener() as listener:
        url = authorization_url(
            settings.auth_url,
            issuer=settings.issuer,
            client_id=settings.client_id,
            redirect_uri=listener.redirect_uri,
            scopes=settings.scopes,
            state=state,
            code_challenge=pkce_challenge(verifier),
            login_hint=account.email,
        )
        out.print(f"To sign in {escape(account.name)}, open this address in a browser:")
        out.print(url, soft_wrap=True, markup=False, highlight=False)  # whole, to copy
        if browser and open_browser(url):
            out.print("(a browser was asked to open it)")
        minutes = f"{timeout / 60:g} min"
        back = listener.redirect_uri
        out.print(
            f"Waiting up to {minutes} for the browser to come back to {back}", highlight=False
        )
        out.print(
            "(Browser on another machine? It fails to load that 127.0.0.1 address: copy the "
            "address from its address bar and run `curl '<address>'` on this machine.)",
            highlight=False,
            markup=False,
        )
        sys.stdout.flush()
        try:
            async with asyncio.timeout(timeout):
                return await _conclude(account, cfg, listener, state, verifier)
        except TimeoutError:
            out.print(
                f"[red]{escape(account.name)}:[/] no sign-in came back within "
                f"{escape(str(minutes))}",
                markup=True,
            )
            return 1


async def _conclude(
    account: Account, cfg: Config, listener: RedirectListener, state: str, verifier: str
) -> int:
    name = escape(account.name)
    while True:
        visit = await listener.next_visit()
        answer = judge_redirect(visit.query, state)
        if answer.kind == "foreign":
            visit.answer(400, "This is not the answer to the sign-in under way; it was ignored.")
            out.print("ignored a visit to the redirect address that is not from this sign-in")
            continue
        if answer.kind == "denied":
            visit.answer(200, f"Access was not granted. {_CLOSE}")
            out.print(
                f"[red]{escape(str(name))}:[/] sign-in refused: access was not granted at the "
                f"consent screen "
                "(access_denied); run the command again and allow access",
                highlight=False,
                markup=True,
            )
            return EX_DENIED
        if answer.kind == "error":
            visit.answer(200, f"Signing in failed ({answer.error}). {_CLOSE}")
            detail = f": {answer.description}" if answer.description else ""
            out.print(
                f"[red]{escape(str(name))}:[/] sign-in failed at the issuer: "
                f"{escape(answer.error or '')}"
                f"{escape(detail)}",
                highlight=False,
                markup=True,
            )
            return 1
        assert answer.code is not None
        return await _redeem(account, cfg, visit, answer.code, verifier, listener.redirect_uri)


async def _redeem(
    account: Account, cfg: Config, visit: Visit, code: str, verifier: str, redirect_uri: str
) -> int:
    """The code and the verifier for tokens; the refresh token goes to the token store."""
    settings = account.oauth
    assert settings is not None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,  # must be the very one the authorization went with
        "client_id": settings.client_id,
        "code_verifier": verifier,
    }
    if settings.client_secret is not None:  # Google's "installed app" clients have one
        form["client_secret"] = settings.client_secret.get_secret_value()
    host, name = urlsplit(settings.token_url).netloc, escape(account.name)
    failed = f"Signing in failed; the terminal says why. {_CLOSE}"
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            reply = await client.post(settings.token_url, data=form)
        grant = parse_token_reply(reply.status_code, _body(reply), utcnow())
    except httpx.HTTPError as exc:
        out.print(
            f"[red]{escape(str(name))}:[/] token endpoint at {escape(str(host))} failed: "
            f"{escape(str(type(exc).__name__))}",
            markup=True,
        )
        visit.answer(200, failed)
        return 1
    except TokenRefused as refused:
        out.print(
            f"[red]{escape(str(name))}:[/] {escape(str(host))} refused the code: "
            f"{escape(str(refused))}",
            markup=True,
        )
        visit.answer(200, failed)
        return 1
    if grant.refresh_token is None:
        out.print(
            f"[red]{escape(str(name))}:[/] {escape(str(host))} gave no refresh token (is "
            f"offline access allowed?)",
            markup=True,
        )
        visit.answer(200, failed)
        return 1
    TokenStore(cfg.monitor.state_dir).save(account.name, grant.refresh_token, grant)
    out.print(f"{name}: signed in; refresh token stored", highlight=False)
    visit.answer(200, f"Signed in: mailcanary can now reach {account.email}. {_CLOSE}")
    return 0


def open_browser(url: str) -> bool:
    """Ask a graphical browser to open `url`, without waiting; False when there is none.

    Never a text-mode browser (lynx, w3m): it would take over this terminal while we wait.
    Headless (no display) nothing is tried at all.
    """
    graphical = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not graphical:
        return False
    try:
        chosen = webbrowser.get()
    except webbrowser.Error:
        return False
    foreground = isinstance(chosen, webbrowser.GenericBrowser) and not isinstance(
        chosen, webbrowser.BackgroundBrowser
    )
    if foreground or not getattr(chosen, "background", True):
        return False
    # A thread of its own: some launchers wait for the browser, and we must not.
    threading.Thread(target=chosen.open, args=(url,), daemon=True).start()
    return True


def _body(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None
