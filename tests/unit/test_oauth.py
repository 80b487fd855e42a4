"""OAuth2: the pure rules, the config keys, and the token provider against a real issuer."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from monitor.adapters.oauth import OAuthError, TokenProvider, TokenStore, token_source
from monitor.config.load import ConfigError, load_config
from monitor.core.catalogue import advise
from monitor.core.models import Phase
from monitor.core.oauth import (
    Grant,
    RedirectAnswer,
    TokenRefused,
    authorization_url,
    issuer_endpoints,
    judge_redirect,
    parse_token_reply,
    pkce_challenge,
    xoauth2_base64,
    xoauth2_string,
)
from monitor.harness.tokenserver import TokenServer

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_issuer_endpoints_know_google_microsoft_and_need_a_token_url_for_custom():
    ms = issuer_endpoints("microsoft", tenant="organizations")
    assert ms.token_url == "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    assert ms.device_url and ms.device_url.endswith("/organizations/oauth2/v2.0/devicecode")
    assert "offline_access" in ms.scopes
    google = issuer_endpoints("google", scopes=("https://mail.google.com/",))
    assert google.token_url == "https://oauth2.googleapis.com/token"
    custom = issuer_endpoints("custom", token_url="http://127.0.0.1:1/token")
    assert (custom.token_url, custom.scopes) == ("http://127.0.0.1:1/token", ())
    with pytest.raises(ValueError, match="token_url"):
        issuer_endpoints("custom")


def test_token_reply_parsing_expiry_and_refusals():
    grant = parse_token_reply(200, {"access_token": "A", "expires_in": 3600}, NOW)
    assert grant.expires_at == NOW + timedelta(hours=1) and grant.refresh_token is None
    assert "A" not in repr(grant)
    assert not grant.refresh_due(NOW + timedelta(minutes=54))
    assert grant.refresh_due(NOW + timedelta(minutes=55, seconds=1))  # < 5 min left
    short = parse_token_reply(200, {"access_token": "A", "expires_in": "2"}, NOW)
    assert not short.refresh_due(NOW) and short.refresh_due(NOW + timedelta(seconds=1))
    rotated = parse_token_reply(200, {"access_token": "A", "refresh_token": "R2"}, NOW)
    assert rotated.refresh_token == "R2"

    with pytest.raises(TokenRefused) as refused:
        parse_token_reply(400, {"error": "invalid_grant", "error_description": "revoked"}, NOW)
    assert (refused.value.error, refused.value.transient, refused.value.needs_login) == (
        "invalid_grant",
        False,
        True,
    )
    with pytest.raises(TokenRefused) as busy:
        parse_token_reply(503, {"error": "temporarily_unavailable"}, NOW)
    assert busy.value.transient and not busy.value.needs_login
    for status, body in (
        (200, {"expires_in": 5}),
        (200, ["x"]),
        (200, {"access_token": "A", "expires_in": 0}),
    ):
        with pytest.raises(TokenRefused, match="invalid_response"):
            parse_token_reply(status, body, NOW)


def test_xoauth2_initial_response():
    assert xoauth2_string("u@x.test", "T") == "user=u@x.test\x01auth=Bearer T\x01\x01"
    assert (
        base64.b64decode(xoauth2_base64("u@x.test", "T"))
        == b"user=u@x.test\x01auth=Bearer T\x01\x01"
    )


def _config(tmp_path: Path, account: str, env: dict[str, str] | None = None):
    path = tmp_path / "mc.toml"
    path.write_text(
        '[monitor]\nstate_dir = "state"\n'
        '[[accounts]]\nname = "ok"\nemail = "ok@x.test"\npassword_env = "PW"\n'
        'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n' + account
    )
    return load_config(path, env={"PW": "pw", **(env or {})})


def test_config_xoauth2_needs_no_password_and_resolves_the_issuer(tmp_path):
    cfg = _config(
        tmp_path,
        '[[accounts]]\nname = "m365"\nemail = "m@x.test"\nauth = "xoauth2"\n'
        'oauth = { issuer = "microsoft", tenant = "organizations", client_id = "cid", '
        'client_secret_env = "CS", refresh_token_env = "RT" }\nprovider = "office365"\n',
        {"CS": "client-secret-value", "RT": "refresh-value"},
    )
    account = cfg.account("m365")
    assert (account.auth, account.password) == ("xoauth2", None)
    assert account.oauth is not None and account.oauth.token_url.endswith("/oauth2/v2.0/token")
    assert account.oauth.client_secret_source == "env CS"
    assert "client-secret-value" not in repr(cfg) and "refresh-value" not in repr(cfg)
    assert cfg.account("ok").oauth is None and cfg.account("ok").auth == "password"


def test_config_problems_are_named_by_key_path_without_secrets(tmp_path):
    with pytest.raises(ConfigError) as error:
        _config(
            tmp_path,
            '[[accounts]]\nname = "m365"\nemail = "m@x.test"\nauth = "xoauth2"\n'
            'oauth = { issuer = "microsoft", tenant = "organizations", toke_url = "x" }\n'
            'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n'
            '[[accounts]]\nname = "c"\nemail = "c@x.test"\nauth = "xoauth2"\n'
            'oauth = { issuer = "custom", client_id = "x", client_secret_env = "NOPE" }\n'
            'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n'
            '[[accounts]]\nname = "n"\nemail = "n@x.test"\nauth = "xoauth2"\n'
            'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n'
            '[[accounts]]\nname = "p"\nemail = "p@x.test"\nauth = "bearer"\npassword_env = "PW"\n'
            'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n',
        )
    assert error.value.problems == [
        'accounts[1] (m365).oauth.toke_url: unknown key; did you mean "token_url"?',
        'accounts[1] (m365).oauth.client_id: required for auth = "xoauth2"',
        'accounts[2] (c).oauth.token_url: required for issuer = "custom"',
        'accounts[3] (n).oauth: required for auth = "xoauth2" (e.g. oauth = { issuer = …})',
        'accounts[4] (p).auth: must be "password" or "xoauth2"',  # what is typed here may be one
    ]


def test_token_store_writes_atomically_with_mode_0600(tmp_path):
    store = TokenStore(tmp_path / "state")
    assert store.load("a") is None
    grant = Grant("access", NOW, NOW + timedelta(hours=1))
    store.save("a", "refresh", grant)
    store.save("a", "refresh-2", grant)  # replaces, never appends or leaves temp files
    assert stat.S_IMODE(store.path("a").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert os.listdir(store.directory) == ["a.json"]
    loaded = store.load("a")
    assert loaded is not None and loaded.refresh_token == "refresh-2"
    assert loaded.grant is not None and loaded.grant.expires_at == grant.expires_at


async def test_provider_refreshes_ahead_caches_rotates_and_classifies_refusal(tmp_path):
    with TokenServer(expires_in=2, rotate=True) as issuer:
        first = issuer.issue("u@x.test")
        cfg = _config(
            tmp_path,
            '[[accounts]]\nname = "g"\nemail = "u@x.test"\nauth = "xoauth2"\n'
            f'oauth = {{ issuer = "custom", client_id = "{issuer.client_id}", '
            f'token_url = "{issuer.url}/token", refresh_token_env = "RT" }}\n'
            'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n',
            {"RT": first},
        )
        account = cfg.account("g")
        source = token_source(account, tmp_path / "state")
        assert source is not None and token_source(cfg.account("ok"), tmp_path) is None
        token = await source.access_token()
        assert await source.access_token() == token  # cached: 2 s life, refreshed after 1 s
        assert len(issuer.refresh_grants) == 1
        saved = TokenStore(tmp_path / "state").load("g")
        assert saved is not None and saved.refresh_token in issuer.live_refresh_tokens("u@x.test")
        assert first not in issuer.live_refresh_tokens("u@x.test")  # rotated away

        issuer.revoke("u@x.test")
        # A new provider (as after a restart) reads the cached token from disk.
        provider = TokenProvider("g", account.oauth, TokenStore(tmp_path / "state"))
        assert await provider.access_token() == token
        provider.forget("some older token")  # refused earlier: nothing to drop now
        assert await provider.access_token() == token
        # A server refused the cached token: neither the memory nor the disk copy is used again.
        provider.forget(token)
        with pytest.raises(OAuthError) as error:
            await provider.access_token()
    failure = error.value.failure(Phase.AUTH)
    assert (failure.kind, failure.phase, failure.transient) == ("auth_failed", Phase.AUTH, False)
    assert "invalid_grant" in failure.message and "mailcanary oauth login g" in failure.message
    assert not any(t in failure.message for t in issuer.issued)
    assert "mailcanary oauth login" in advise(failure).remedy


async def test_provider_without_a_refresh_token_says_how_to_get_one(tmp_path):
    cfg = _config(
        tmp_path,
        '[[accounts]]\nname = "g"\nemail = "u@x.test"\nauth = "xoauth2"\n'
        'oauth = { issuer = "google", client_id = "cid" }\n'
        'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n',
    )
    source = token_source(cfg.account("g"), tmp_path / "state")
    assert source is not None
    with pytest.raises(OAuthError) as error:
        await source.access_token()
    failure = error.value.failure(Phase.IMAP_AUTH)
    assert failure.transient is False and "oauth login g" in failure.message
    assert "--refresh-token" in advise(failure).remedy


def _issuer_config(tmp_path: Path, issuer: TokenServer, extra: str = "", env=None):
    return _config(
        tmp_path,
        '[[accounts]]\nname = "g"\nemail = "u@x.test"\nauth = "xoauth2"\n'
        f'oauth = {{ issuer = "custom", client_id = "{issuer.client_id}", '
        f'token_url = "{issuer.url}/token"{extra} }}\n'
        'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n',
        env,
    )


async def test_login_by_import_and_by_device_code_then_status(tmp_path, capsys):
    from monitor.cli.oauth_signin import device_login, import_refresh_token, token_status

    with TokenServer(device_interval=0.05) as issuer:
        cfg = _issuer_config(tmp_path, issuer, f', device_url = "{issuer.url}/devicecode"')
        account = cfg.account("g")
        assert token_status(cfg, account)["state"] == "missing"

        assert await import_refresh_token(cfg, account, "not-a-token") == 1
        good = issuer.issue("u@x.test")
        assert await import_refresh_token(cfg, account, good) == 0
        status = token_status(cfg, account)
        assert (status["refresh_token"], status["state"]) == ("stored", "ok")
        assert status["access_expires_at"] is not None

        issuer.revoke("u@x.test")
        signing_in = asyncio.ensure_future(device_login(cfg, account, timeout=30))
        code = await asyncio.to_thread(issuer.wait_device_offer, 10)
        assert code is not None
        issuer.approve(code, "u@x.test")
        assert await asyncio.wait_for(signing_in, 30) == 0
        saved = TokenStore(tmp_path / "state").load("g")
        assert saved is not None and saved.refresh_token in issuer.live_refresh_tokens("u@x.test")
    shown = capsys.readouterr().out
    assert code in shown and f"{issuer.url}/device" in shown  # what the person needs
    assert not any(token in shown for token in issuer.issued)


def test_pkce_and_the_authorization_url():
    # RFC 7636 Appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    common = {
        "client_id": "cid",
        "redirect_uri": "http://127.0.0.1:4711/",
        "state": "st",
        "code_challenge": "ch",
    }
    google = issuer_endpoints("google")
    assert google.device_url is None and google.auth_url  # Gmail signs in by browser
    url = authorization_url(
        google.auth_url, issuer="google", scopes=google.scopes, login_hint="u@x.test", **common
    )
    assert url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    asked = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    assert asked == {
        **common,
        "response_type": "code",
        "scope": "https://mail.google.com/",
        "code_challenge_method": "S256",
        "access_type": "offline",  # else Google gives no refresh token
        "prompt": "consent",
        "login_hint": "u@x.test",
    }
    custom = authorization_url(
        "http://127.0.0.1:1/auth?tenant=t", issuer="custom", scopes=["a", "b"], **common
    )
    asked = {key: values[0] for key, values in parse_qs(urlsplit(custom).query).items()}
    assert asked["tenant"] == "t" and asked["scope"] == "a b" and "access_type" not in asked


def test_judging_the_redirect():
    assert judge_redirect({"code": "C", "state": "s"}, "s") == RedirectAnswer("code", code="C")
    assert "C" not in repr(judge_redirect({"code": "C", "state": "s"}, "s"))
    for foreign in ({"code": "C", "state": "t"}, {"code": "C"}, {"code": "C", "state": "ß"}):
        assert judge_redirect(foreign, "s").kind == "foreign"
    denied = judge_redirect({"error": "access_denied", "state": "s"}, "s")
    assert (denied.kind, denied.error) == ("denied", "access_denied")
    failed = judge_redirect(
        {"error": "invalid_scope", "error_description": "no  such\nscope", "state": "s"}, "s"
    )
    assert (failed.kind, failed.error, failed.description) == (
        "error",
        "invalid_scope",
        "no such scope",
    )
    assert judge_redirect({"state": "s"}, "s").kind == "error"


def test_which_sign_in_flow(tmp_path):
    from monitor.cli.oauth_signin import choose_flow

    cfg = _config(
        tmp_path,
        "".join(
            f'[[accounts]]\nname = "{name}"\nemail = "{name}@x.test"\nauth = "xoauth2"\n'
            f"oauth = {{ {oauth} }}\n"
            'smtp = { host = "127.0.0.1", port = 587, security = "starttls" }\n'
            for name, oauth in (
                ("g", 'issuer = "google", client_id = "c"'),
                ("m", 'issuer = "microsoft", client_id = "c", tenant = "organizations"'),
                (
                    "a",
                    'issuer = "custom", client_id = "c", token_url = "https://t/t", '
                    'auth_url = "https://t/a"',
                ),
                ("n", 'issuer = "custom", client_id = "c", token_url = "https://t/t"'),
            )
        ),
    )
    flows = {name: choose_flow(cfg.account(name), None) for name in "gman"}
    assert flows == {"g": "loopback", "m": "device", "a": "loopback", "n": None}
    assert choose_flow(cfg.account("m"), "loopback") == "loopback"


async def test_a_refused_token_is_refreshed_once_for_every_session(tmp_path):
    with TokenServer() as issuer:
        cfg = _issuer_config(
            tmp_path, issuer, ', refresh_token_env = "RT"', {"RT": issuer.issue("u@x.test")}
        )
        provider = token_source(cfg.account("g"), tmp_path / "state")
        assert provider is not None
        refused = await provider.access_token()
        issuer.invalidate_access("u@x.test")

        async def session() -> str:  # each session saw the refusal and asks again
            provider.forget(refused)
            return await provider.access_token()

        fresh = await asyncio.gather(*(session() for _ in range(3)))
        assert len(set(fresh)) == 1 and refused not in fresh
        assert len(issuer.refresh_grants) == 2
        # The refused token was not taken back from the disk copy: the disk holds the fresh one.
        saved = TokenStore(tmp_path / "state").load("g")
        assert saved is not None and saved.grant is not None
        assert saved.grant.access_token == fresh[0]


async def test_the_redirect_listener_answers_only_its_get(tmp_path):
    from monitor.adapters.oauth_redirect import RedirectListener

    async def ask(port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        answer = await reader.read()
        writer.close()
        return answer

    async with RedirectListener() as listener:
        port = listener.port
        assert listener.redirect_uri == f"http://127.0.0.1:{port}/"
        assert (await ask(port, b"POST / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert (await ask(port, b"GET /favicon.ico HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        visiting = asyncio.ensure_future(ask(port, b"GET /?code=C&state=s HTTP/1.1\r\n\r\n"))
        visit = await asyncio.wait_for(listener.next_visit(), 5)
        assert visit.query == {"code": "C", "state": "s"}
        visit.answer(200, "Signed in <ok>")
        page = await asyncio.wait_for(visiting, 5)
        assert page.startswith(b"HTTP/1.1 200") and b"Signed in &lt;ok&gt;" in page
        assert b"Cache-Control: no-store" in page
        # One left waiting when the sign-in ends is told so, not left hanging.
        late = asyncio.ensure_future(ask(port, b"GET /?code=D&state=s HTTP/1.1\r\n\r\n"))
        await asyncio.wait_for(listener.next_visit(), 5)
    assert b"has ended" in await asyncio.wait_for(late, 5)
