"""Who may read the status page: a bearer token or a user with a salted scrypt hash.

`hash_password` makes the string `mailcanary web-password` prints:
"scrypt$<n>$<r>$<p>$<salt b64>$<key b64>". Checking a password costs ~50 ms of CPU by design;
a browser repeats the same Authorization header on every request, so a header once found
good is remembered by its keyed digest (never the header itself) and not hashed again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from monitor.config.web_settings import WebSettings

if TYPE_CHECKING:  # the daemon holds a Gate even when it serves nothing: aiohttp stays out
    from aiohttp import web

N, R, P = 2**14, 8, 1
_KEY_BYTES = 32
_REMEMBERED = 64  # distinct good headers kept; a browser or two per user
# On every answer. The pages load only their own stylesheet and live.js; SVG charts are
# inline markup coloured by classes, so no inline style or script is ever needed.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
PUBLIC = frozenset({"/healthz", "/metrics"})  # as today: load balancers and Prometheus


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=_KEY_BYTES)
    encoded = (base64.b64encode(x).decode() for x in (salt, key))
    return f"scrypt${N}${R}${P}$" + "$".join(encoded)


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_text, key_text = stored.split("$")
        salt, key = base64.b64decode(salt_text), base64.b64decode(key_text)
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(key)
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, key)


class Gate:
    """Decides whether a request's Authorization header lets it read the page."""

    def __init__(self, settings: WebSettings):
        self.settings = settings
        self._pepper = secrets.token_bytes(32)
        self._good: dict[bytes, None] = {}

    @property
    def challenge(self) -> str:
        return 'Basic realm="mailcanary"' if self.settings.auth == "password" else "Bearer"

    def allows(self, header: str | None) -> bool:
        kind = self.settings.auth
        if kind == "none":
            return True
        if not header:
            return False
        digest = hmac.digest(self._pepper, header.encode("utf-8", "replace"), "sha256")
        if digest in self._good:
            return True
        if not self._check(kind, header):
            return False
        if len(self._good) >= _REMEMBERED:
            self._good.pop(next(iter(self._good)))
        self._good[digest] = None
        return True

    def _check(self, kind: str, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if kind == "token" and scheme.lower() == "bearer" and self.settings.token is not None:
            wanted = self.settings.token.get_secret_value().encode()
            return hmac.compare_digest(value.strip().encode(), wanted)
        if kind == "password" and scheme.lower() == "basic" and self.settings.password_hash:
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return False
            same_user = hmac.compare_digest(user.encode(), (self.settings.user or "").encode())
            stored = self.settings.password_hash.get_secret_value()
            return check_password(password, stored) and same_user
        return False


def middleware(gate: Callable[[], Gate]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Pages need the gate's consent; /metrics and /healthz stay open as before."""
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        current = gate()
        if request.path not in PUBLIC and not current.allows(request.headers.get("Authorization")):
            raise web.HTTPUnauthorized(
                text="authorization required\n", headers={"WWW-Authenticate": current.challenge}
            )
        return await handler(request)

    return guard
