"""OAuth2 access tokens for xoauth2 accounts: refreshed over HTTP, cached, kept on disk.

Each account's tokens live in `<state_dir>/oauth/<account>.json` (mode 0600, written to a temp
file and renamed, so a crash never leaves half a file). A `TokenProvider` hands out an access
token, refreshing it with the refresh token ahead of expiry; a rotated refresh token is saved
before the new access token is used. When a mail server refuses an access token before its
expiry (the issuer withdrew it early), the login calls `forget(token)` and asks again: it then
gets a freshly refreshed one. Tokens never reach a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog

from monitor.config.oauth_settings import OAuthSettings
from monitor.core.models import Failure, Phase, utcnow
from monitor.core.oauth import Grant, TokenRefused, parse_token_reply

log = structlog.get_logger(__name__)

HTTP_TIMEOUT = 20.0


class TokenSource(Protocol):
    """What an XOAUTH2 login needs: an access token, and a way to drop one a server refused."""

    async def access_token(self) -> str: ...

    def forget(self, token: str) -> None: ...


class OAuthError(Exception):
    """No access token could be had. `failure(phase)` gives the probe's Failure (auth_failed)."""

    def __init__(self, account: str, error: str, message: str, *, transient: bool) -> None:
        self.account = account
        self.error = error  # "invalid_grant", "no_refresh_token", "http_error"…
        self.transient = transient
        super().__init__(message)

    def failure(self, phase: Phase) -> Failure:
        return Failure(kind="auth_failed", phase=phase, transient=self.transient, message=str(self))


@dataclass(frozen=True, slots=True)
class StoredTokens:
    refresh_token: str | None
    grant: Grant | None  # the cached access token, if any
    saved_at: datetime | None = None


class TokenStore:
    """One JSON file per account under `<state_dir>/oauth`, readable by the owner only."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "oauth"

    def path(self, account: str) -> Path:
        return self.directory / f"{account}.json"

    def load(self, account: str) -> StoredTokens | None:
        try:
            data = json.loads(self.path(account).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # Unreadable means "no token": the operator sees it in `oauth status` and logs in.
            log.warning("oauth token file unreadable", account=account, error=type(exc).__name__)
            return None
        grant = None
        if isinstance(data.get("access_token"), str) and data.get("expires_at"):
            grant = Grant(
                access_token=data["access_token"],
                issued_at=datetime.fromisoformat(data.get("issued_at") or data["expires_at"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
            )
        saved = data.get("saved_at")
        return StoredTokens(
            refresh_token=data.get("refresh_token") or None,
            grant=grant,
            saved_at=datetime.fromisoformat(saved) if saved else None,
        )

    def save(self, account: str, refresh_token: str | None, grant: Grant | None) -> None:
        data: dict[str, Any] = {"refresh_token": refresh_token, "saved_at": utcnow().isoformat()}
        if grant is not None:
            data |= {
                "access_token": grant.access_token,
                "issued_at": grant.issued_at.isoformat(),
                "expires_at": grant.expires_at.isoformat(),
            }
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file 0600: the token is never readable by others, not even briefly.
        handle, temp = tempfile.mkstemp(prefix=f".{account}.", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path(account))
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


class TokenProvider:
    """Access tokens for one account; `await provider.access_token()` before every login."""

    def __init__(self, account: str, settings: OAuthSettings, store: TokenStore) -> None:
        self.account = account
        self.settings = settings
        self.store = store
        self.refreshes = 0  # how many times the issuer was asked (for status and tests)
        self._grant: Grant | None = None
        # Tokens servers refused lately: never handed out again (a few: late refusals of older
        # tokens must not push out the newest).
        self._refused: deque[str] = deque(maxlen=8)
        self._lock = asyncio.Lock()

    async def access_token(self) -> str:
        async with self._lock:  # one refresh at a time, however many sessions log in at once
            now = utcnow()
            if self._grant is None:
                stored = self.store.load(self.account)
                self._grant = stored.grant if stored else None
            grant = self._grant
            if grant is None or grant.refresh_due(now) or grant.access_token in self._refused:
                self._grant = await self._refresh()
            return self._grant.access_token

    def forget(self, token: str) -> None:
        """A server refused `token`: the next `access_token()` refreshes.

        Only that token is dropped. Sessions logging in at the same moment all see the same
        refusal; the first one's refresh serves the others, so a withdrawn token costs exactly
        one refresh. The copy on disk is skipped as well, since it is the same token.
        """
        self._refused.append(token)
        if self._grant is not None and self._grant.access_token == token:
            self._grant = None

    def _refresh_token(self) -> str:
        stored = self.store.load(self.account)
        if stored is not None and stored.refresh_token:
            return stored.refresh_token
        if self.settings.refresh_token is not None:
            return self.settings.refresh_token.get_secret_value()
        raise OAuthError(
            self.account,
            "no_refresh_token",
            f"account {self.account} has no OAuth refresh token yet "
            f"(run `mailcanary oauth login {self.account}`)",
            transient=False,
        )

    async def _refresh(self) -> Grant:
        refresh_token = self._refresh_token()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.settings.client_id,
        }
        if self.settings.client_secret is not None:
            form["client_secret"] = self.settings.client_secret.get_secret_value()
        if self.settings.scopes:
            form["scope"] = " ".join(self.settings.scopes)
        # Imported here: every probe loads this module (IMAP and SMTP log in through it),
        # and only an xoauth2 account, about once an hour, refreshes (issue #17).
        import httpx

        host = urlsplit(self.settings.token_url).netloc
        self.refreshes += 1
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                reply = await client.post(self.settings.token_url, data=form)
            try:
                body: object = reply.json()
            except ValueError:
                body = None
            grant = parse_token_reply(reply.status_code, body, utcnow())
        except httpx.HTTPError as exc:
            message = f"token refresh at {host} failed: {type(exc).__name__}"
            raise OAuthError(self.account, "http_error", message, transient=True) from None
        except TokenRefused as refused:
            remedy = (
                f" (run `mailcanary oauth login {self.account}`)" if refused.needs_login else ""
            )
            message = f"OAuth token refresh refused by {host}: {refused}{remedy}"
            log.warning("oauth refresh refused", account=self.account, error=refused.error)
            raise OAuthError(
                self.account, refused.error, message, transient=refused.transient
            ) from None
        # Save the rotated refresh token first: the old one may already be dead at the issuer.
        self.store.save(self.account, grant.refresh_token or refresh_token, grant)
        log.info(
            "oauth token refreshed",
            account=self.account,
            rotated=grant.refresh_token is not None,
            expires_at=grant.expires_at.isoformat(),
        )
        return grant


_providers: dict[tuple[Path, str], TokenProvider] = {}


def token_source(account: Any, state_dir: Path) -> TokenProvider | None:
    """The shared token provider for an xoauth2 account (None for password accounts).

    Shared per (state directory, account), so the sender and every watcher session reuse one
    cached token, and one refusal makes one refresh for all of them; a changed configuration
    (after a reload) gets a fresh provider.
    """
    if getattr(account, "auth", "password") != "xoauth2" or account.oauth is None:
        return None
    key = (Path(state_dir).absolute(), account.name)
    provider = _providers.get(key)
    if provider is None or provider.settings != account.oauth:
        provider = TokenProvider(account.name, account.oauth, TokenStore(state_dir))
        _providers[key] = provider
    return provider
