"""A small real OAuth2 issuer for the harness: token, introspection and revocation endpoints.

Dovecot's oauth2 passdb asks `/introspect` whether a bearer token is good; mailcanary asks
`/token` for access tokens with a refresh token. Knobs make access tokens short-lived and
rotate refresh tokens; `revoke` ends a grant the way a user withdrawing consent does, and
`invalidate_access` withdraws only the access tokens (the refresh token still works).
Sign-in: the device-code flow (`/devicecode`, `approve`) and the browser flow: `/authorize`
plays the user at the consent screen (`sign_in_as`, `consent`) and redirects back with a
code, which `/token` exchanges once, checking the PKCE verifier (S256).
Runs in a thread on a free loopback port (stdlib only); `stop()` ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

AUTHORIZATION_CODE_LIFE = 60.0  # seconds, as big issuers do (Google: minutes, single use)


@dataclass
class _Access:
    username: str
    expires_at: float  # time.monotonic()
    refresh_token: str


@dataclass(frozen=True)
class _Code:
    username: str
    redirect_uri: str
    challenge: str
    expires_at: float  # time.monotonic()


class TokenServer:
    """Issues refresh tokens (`issue`), serves /token, /introspect, /revoke on 127.0.0.1."""

    def __init__(
        self,
        *,
        port: int = 0,
        expires_in: float = 3600.0,
        rotate: bool = False,
        client_id: str = "mailcanary-test",
        device_interval: float = 5.0,
    ) -> None:
        self.expires_in = expires_in
        self.rotate = rotate
        self.client_id = client_id
        self.device_interval = device_interval
        self.device_offers: list[str] = []  # user codes shown, oldest first
        self._devices: dict[str, tuple[str, str | None]] = {}  # device code -> (user code, user)
        self.refresh_grants: list[str] = []  # username of each successful refresh, in order
        self.refused: list[str] = []  # error codes handed out
        self.introspections: list[bool] = []  # verdicts given to Dovecot
        self.issued: list[str] = []  # every token ever handed out (tests look for leaks)
        self.sign_in_as: str | None = None  # who is signed in at the browser's consent screen
        self.consent = True  # False: that user refuses (the redirect carries access_denied)
        self.authorizations: list[dict[str, str]] = []  # each /authorize query, in order
        self._codes: dict[str, _Code] = {}  # authorization code -> what it was issued for
        self._refresh: dict[str, str] = {}  # live refresh token -> username
        self._access: dict[str, _Access] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        handler = type("Handler", (_Handler,), {"issuer": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test does -------------------------------------------------------------------

    def issue(self, username: str) -> str:
        """A new refresh token for `username` (what a completed login would have given)."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = username
            self.issued.append(token)
        return token

    def revoke(self, username: str) -> None:
        """Withdraw consent: every refresh and access token of `username` stops working."""
        with self._lock:
            self._refresh = {t: u for t, u in self._refresh.items() if u != username}
            self._access = {t: a for t, a in self._access.items() if a.username != username}

    def invalidate_access(self, username: str) -> None:
        """Withdraw the access tokens of `username` before they expire (a password change,
        an admin's action); the refresh token keeps working."""
        with self._lock:
            self._access = {t: a for t, a in self._access.items() if a.username != username}

    def live_refresh_tokens(self, username: str) -> set[str]:
        with self._lock:
            return {t for t, u in self._refresh.items() if u == username}

    def wait_refreshes(self, count: int, timeout: float) -> bool:
        """Block until `count` refreshes have been granted (False after `timeout`)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.refresh_grants) >= count, timeout)

    # -- the endpoints ----------------------------------------------------------------------

    def wait_device_offer(self, timeout: float) -> str | None:
        """The newest user code shown by /devicecode, waiting up to `timeout` for one."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self.device_offers), timeout)
            return self.device_offers[-1] if self.device_offers else None

    def approve(self, user_code: str, username: str) -> None:
        """The user signs in and enters `user_code` (device-code flow)."""
        with self._lock:
            for device, (code, _) in list(self._devices.items()):
                if code == user_code:
                    self._devices[device] = (code, username)

    def device_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id:
            return self._refuse(401, "invalid_client", "unknown client")
        device, user_code = secrets.token_urlsafe(16), secrets.token_hex(4).upper()
        with self._lock:
            self._devices[device] = (user_code, None)
            self.device_offers.append(user_code)
            self._changed.notify_all()
        return 200, {
            "device_code": device,
            "user_code": user_code,
            "verification_uri": f"{self.url}/device",
            "interval": self.device_interval,
            "expires_in": 600,
        }

    def _device_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            found = self._devices.get(form.get("device_code", ""))
        if found is None:
            return self._refuse(400, "expired_token", "unknown or expired device code")
        if found[1] is None:
            return self._refuse(400, "authorization_pending", "the user has not signed in yet")
        with self._lock:
            del self._devices[form["device_code"]]
        refresh = self.issue(found[1])
        status, reply = self.token(
            {**form, "grant_type": "refresh_token", "refresh_token": refresh}
        )
        if status == 200:  # a sign-in always hands out the refresh token
            reply.setdefault("refresh_token", refresh)
        return status, reply

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The browser at the consent screen: 302 back to the loopback redirect URI with a
        code (or error=access_denied when `consent` is off). A bad client or redirect URI
        gets a page of its own, never a redirect (RFC 6749 §4.1.2.1)."""
        with self._lock:
            self.authorizations.append(dict(query))
        redirect_uri = query.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        # RFC 8252 §7.3: any port on the loopback address, plain http.
        if query.get("client_id") != self.client_id:
            return self._refuse(400, "invalid_client", "unknown client")
        if target.scheme != "http" or target.hostname != "127.0.0.1" or not target.port:
            return self._refuse(400, "invalid_request", "redirect_uri is not a loopback URI")
        reply = {"state": query.get("state", "")}
        if query.get("response_type") != "code":
            reply |= {"error": "unsupported_response_type"}
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            reply |= {"error": "invalid_request", "error_description": "PKCE S256 required"}
        elif not self.consent or self.sign_in_as is None:
            reply |= {"error": "access_denied", "error_description": "the user said no"}
        else:
            code = "ac-" + secrets.token_urlsafe(18)
            with self._lock:
                self._codes[code] = _Code(
                    self.sign_in_as,
                    redirect_uri,
                    query["code_challenge"],
                    time.monotonic() + AUTHORIZATION_CODE_LIFE,
                )
                self.issued.append(code)
            reply |= {"code": code}
        joiner = "&" if target.query else "?"
        return 302, {"location": redirect_uri + joiner + urlencode(reply)}

    def _code_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            found = self._codes.pop(form.get("code", ""), None)  # single use
        if found is None or found.expires_at < time.monotonic():
            return self._refuse(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != found.redirect_uri:
            return self._refuse(400, "invalid_grant", "redirect_uri differs from /authorize")
        verifier = form.get("code_verifier", "").encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if not hmac.compare_digest(digest, found.challenge.encode()):
            return self._refuse(400, "invalid_grant", "PKCE verification failed")
        refresh = self.issue(found.username)
        status, reply = self.token(
            {**form, "grant_type": "refresh_token", "refresh_token": refresh}
        )
        if status == 200:  # a sign-in always hands out the refresh token
            reply.setdefault("refresh_token", refresh)
        return status, reply

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_grant(form)
        if form.get("grant_type") == "authorization_code":
            if form.get("client_id") != self.client_id:
                return self._refuse(401, "invalid_client", "unknown client")
            return self._code_grant(form)
        if form.get("grant_type") != "refresh_token":
            return self._refuse(400, "unsupported_grant_type", "only refresh_token is served")
        if form.get("client_id") != self.client_id:
            return self._refuse(401, "invalid_client", "unknown client")
        with self._lock:
            username = self._refresh.get(form.get("refresh_token", ""))
            if username is None:
                return self._refuse(400, "invalid_grant", "the refresh token is revoked or unknown")
            old = form["refresh_token"]
            reply: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.expires_in}
            if self.rotate:
                del self._refresh[old]
                old = "rt-" + secrets.token_urlsafe(24)
                self._refresh[old] = username
                self.issued.append(old)
                reply["refresh_token"] = old
            access = "at-" + secrets.token_urlsafe(24)
            self._access[access] = _Access(username, time.monotonic() + self.expires_in, old)
            reply["access_token"] = access
            self.issued.append(access)
            self.refresh_grants.append(username)
            self._changed.notify_all()
        return 200, reply

    def introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            access = self._access.get(form.get("token", ""))
            active = access is not None and access.expires_at > time.monotonic()
            self.introspections.append(active)
        if not active or access is None:
            return 200, {"active": False}
        return 200, {"active": True, "username": access.username, "client_id": self.client_id}

    def revoke_endpoint(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form.get("token", "")
        with self._lock:
            username = self._refresh.get(token) or getattr(
                self._access.get(token), "username", None
            )
        if username is not None:
            self.revoke(username)
        return 200, {}

    def _refuse(self, status: int, error: str, description: str) -> tuple[int, dict[str, Any]]:
        self.refused.append(error)
        return status, {"error": error, "error_description": description}


class _Handler(BaseHTTPRequestHandler):
    issuer: TokenServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/authorize":
            return self._reply(404, {"error": "not_found"})
        fields = {key: values[0] for key, values in parse_qs(query).items()}
        status, reply = self.issuer.authorize(fields)
        if status != 302:
            return self._reply(status, reply)
        self.send_response(302)
        self.send_header("Location", reply["location"])
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fields = parse_qs(self.rfile.read(length).decode("utf-8", errors="replace"))
        form = {key: values[0] for key, values in fields.items()}
        routes = {
            "/token": self.issuer.token,
            "/introspect": self.issuer.introspect,
            "/revoke": self.issuer.revoke_endpoint,
            "/devicecode": self.issuer.device_code,
        }
        route = routes.get(self.path.split("?", 1)[0])
        status, reply = route(form) if route else (404, {"error": "not_found"})
        self._reply(status, reply)

    def _reply(self, status: int, reply: dict[str, Any]) -> None:
        body = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines would carry no tokens, but the test output needs no noise
