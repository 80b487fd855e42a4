"""OAuth2 for mail accounts, the pure part: issuer endpoints, token replies, expiry, XOAUTH2.

Nothing here talks to the network; `monitor.adapters.oauth` does, and hands the replies here.
Token values never appear in a message or a repr: a `Grant` shows only its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

ISSUERS = ("google", "microsoft", "custom")

# Refresh this long before expiry, so a token never runs out mid-conversation; short-lived
# tokens (the tests' seconds) are refreshed once half their life has gone.
REFRESH_MARGIN = timedelta(minutes=5)

# Errors of RFC 6749 §5.2 that a retry cannot fix: the grant is gone or the client is wrong.
PERMANENT_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"}
)
# A refresh that fails this way needs a person to sign in again.
RELOGIN_ERRORS = frozenset({"invalid_grant"})


@dataclass(frozen=True, slots=True)
class IssuerEndpoints:
    token_url: str
    device_url: str | None
    auth_url: str | None
    scopes: tuple[str, ...]


# No device endpoint for Google: its device flow does not grant the mail scope, so a Google
# account signs in through the browser (the loopback flow) or imports a refresh token.
_GOOGLE = IssuerEndpoints(
    token_url="https://oauth2.googleapis.com/token",
    device_url=None,
    auth_url="https://accounts.google.com/o/oauth2/v2/auth",
    scopes=("https://mail.google.com/",),
)
_MICROSOFT_SCOPES = (
    "offline_access",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)


def issuer_endpoints(
    issuer: str,
    *,
    tenant: str | None = None,
    token_url: str | None = None,
    device_url: str | None = None,
    auth_url: str | None = None,
    scopes: tuple[str, ...] | None = None,
) -> IssuerEndpoints:
    """The endpoints of a known issuer (explicit values win), or of a custom one.

    ValueError names what is missing; a custom issuer needs at least `token_url`.
    """
    if issuer == "google":
        base = _GOOGLE
    elif issuer == "microsoft":
        root = f"https://login.microsoftonline.com/{tenant or 'common'}/oauth2/v2.0"
        base = IssuerEndpoints(
            f"{root}/token", f"{root}/devicecode", f"{root}/authorize", _MICROSOFT_SCOPES
        )
    elif issuer == "custom":
        if not token_url:
            raise ValueError('token_url: required for issuer = "custom"')
        base = IssuerEndpoints(token_url, None, None, ())
    else:
        raise ValueError(f'issuer: must be one of {", ".join(ISSUERS)}, got "{issuer}"')
    return IssuerEndpoints(
        token_url=token_url or base.token_url,
        device_url=device_url or base.device_url,
        auth_url=auth_url or base.auth_url,
        scopes=tuple(scopes) if scopes is not None else base.scopes,
    )


@dataclass(frozen=True, slots=True)
class Grant:
    """What one token reply gave: an access token, its life, maybe a new refresh token."""

    access_token: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    refresh_token: str | None = field(default=None, repr=False)  # set only when rotated
    scope: str | None = None

    def refresh_due(self, now: datetime) -> bool:
        margin = min(REFRESH_MARGIN, (self.expires_at - self.issued_at) / 2)
        return now >= self.expires_at - margin


class TokenRefused(Exception):
    """The issuer refused the request (RFC 6749 §5.2) or answered nonsense.

    `error` is the issuer's code ("invalid_grant"), `transient` says whether a retry may help.
    The message carries the code and the issuer's description, never a token.
    """

    def __init__(self, error: str, description: str = "", *, transient: bool = False) -> None:
        self.error = error
        self.description = description
        self.transient = transient
        super().__init__(f"{error}: {description}" if description else error)

    @property
    def needs_login(self) -> bool:
        return self.error in RELOGIN_ERRORS


def parse_token_reply(status: int, body: object, now: datetime) -> Grant:
    """A Grant from the token endpoint's HTTP status and decoded JSON body, or TokenRefused."""
    if not isinstance(body, Mapping):
        raise TokenRefused("invalid_response", f"HTTP {status}, not a JSON object", transient=True)
    if status != 200 or "error" in body:
        error = str(body.get("error") or f"http_{status}")
        description = _short(str(body.get("error_description") or ""))
        # 5xx and rate limits pass; refusals of the grant or the client do not.
        transient = error not in PERMANENT_ERRORS and (status >= 500 or status == 429)
        raise TokenRefused(error, description, transient=transient)
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenRefused("invalid_response", "no access_token in the reply", transient=True)
    lifetime = body.get("expires_in", 3600)
    if isinstance(lifetime, str) and lifetime.isdigit():  # some issuers quote numbers
        lifetime = int(lifetime)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise TokenRefused(
            "invalid_response", "expires_in is not a positive number", transient=True
        )
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    return Grant(
        access_token=access,
        issued_at=now,
        expires_at=now + timedelta(seconds=float(lifetime)),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
    )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def xoauth2_string(user: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response, before base64 (Google's and Microsoft's format)."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


def xoauth2_base64(user: str, access_token: str) -> str:
    return base64.b64encode(xoauth2_string(user, access_token).encode()).decode("ascii")


def describe_expiry(expires_at: datetime | None, now: datetime) -> str:
    """ "expires in 42 min", "expired 3 min ago", "no access token yet"."""
    if expires_at is None:
        return "no access token yet"
    seconds = int((expires_at - now).total_seconds())
    span = _span(abs(seconds))
    return f"expires in {span}" if seconds > 0 else f"expired {span} ago"


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# -- the authorization-code flow with a loopback redirect (RFC 8252 §7.3, PKCE: RFC 7636) ----


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier (43–128 unreserved characters)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def authorization_url(
    auth_url: str,
    *,
    issuer: str,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...] | list[str],
    state: str,
    code_challenge: str,
    login_hint: str | None = None,
) -> str:
    """Where the browser goes to sign in; the issuer sends it back to `redirect_uri`."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if issuer == "google":
        # Google hands out a refresh token only for offline access, and a second time only
        # when the consent screen is shown again.
        params |= {"access_type": "offline", "prompt": "consent"}
    if login_hint:
        params["login_hint"] = login_hint  # preselects the mailbox's own account
    joiner = "&" if "?" in auth_url else "?"
    return auth_url + joiner + urlencode(params, quote_via=quote)


@dataclass(frozen=True, slots=True)
class RedirectAnswer:
    """What the browser brought back to the loopback listener.

    kind: "code" (signed in), "denied" (the user refused consent), "error" (the issuer failed
    the request) or "foreign" (not an answer to this sign-in: the state does not match).
    """

    kind: str
    code: str | None = field(default=None, repr=False)
    error: str | None = None
    description: str = ""


def judge_redirect(query: Mapping[str, str], state: str) -> RedirectAnswer:
    """Read the redirect's query; anything without our `state` is foreign (RFC 6749 §10.12)."""
    given = query.get("state", "").encode("utf-8", errors="replace")
    if not hmac.compare_digest(given, state.encode("utf-8")):
        return RedirectAnswer("foreign")
    error = query.get("error")
    if error:
        kind = "denied" if error == "access_denied" else "error"
        return RedirectAnswer(
            kind, error=_short(error, 60), description=_short(query.get("error_description", ""))
        )
    code = query.get("code")
    if not code:
        return RedirectAnswer("error", error="invalid_response", description="no code and no error")
    return RedirectAnswer("code", code=code)
