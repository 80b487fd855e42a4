"""`mailcanary oauth login` in a browser, end to end: the real CLI as a child process, the
harness's token server as the issuer (its /authorize plays the user at the consent screen),
httpx as the browser, then probes through Postfix and Dovecot with the token it stored."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from monitor.adapters.oauth import TokenStore
from monitor.config.load import load_config
from monitor.core.models import Verdict
from monitor.harness.tokenserver import TokenServer
from monitor.probe.setup import opened
from tests.integration.test_oauth import ACCOUNT, write_config

pytestmark = pytest.mark.mailstack
REPO = Path(__file__).resolve().parents[2]
EX_DENIED = 77


@pytest.fixture
def issuer(mailstack) -> Iterator[TokenServer]:
    with TokenServer(port=mailstack.oauth_port) as server:
        server.sign_in_as = mailstack.users["oauthuser"].email
        yield server


def browser_config(mailstack, directory: Path, issuer: TokenServer) -> Path:
    """No refresh token anywhere: only the sign-in can provide one."""
    return write_config(mailstack, directory, issuer, f'auth_url = "{issuer.url}/authorize"')


class Login:
    """`mailcanary oauth login ACCOUNT --no-browser` as a child process, read line by line."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []

    async def __aenter__(self) -> Login:
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        self.proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "monitor.cli", "--config", str(self.config)),
            *("oauth", "login", ACCOUNT, "--no-browser"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**env, "PYTHONPATH": str(REPO)},
            cwd=REPO,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # by its pid: only the child this test started
            await self.proc.wait()

    async def line_starting(self, prefix: str, within: float = 30) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(within):
            while True:
                raw = await self.proc.stdout.readline()
                assert raw, f"the CLI ended without printing {prefix!r}: {self.output}"
                self.lines.append(raw.decode().rstrip("\n"))
                if self.lines[-1].startswith(prefix):
                    return self.lines[-1]

    async def exit_code(self, within: float = 30) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(within):
            rest = await self.proc.stdout.read()
            self.lines += rest.decode().splitlines()
            return await self.proc.wait()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


async def test_browser_sign_in_stores_a_token_that_probes_use(mailstack, issuer, tmp_path):
    config = browser_config(mailstack, tmp_path, issuer)
    store = TokenStore(tmp_path / "state")
    async with Login(config) as login, httpx.AsyncClient(follow_redirects=True) as browser:
        url = await login.line_starting(f"{issuer.url}/authorize?")
        asked = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
        redirect = urlsplit(asked["redirect_uri"])
        assert (redirect.scheme, redirect.hostname) == ("http", "127.0.0.1") and redirect.port
        # Bound to 127.0.0.1 alone: another loopback address finds nothing on that port.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", redirect.port), timeout=5).close()

        # A visit with someone else's state is turned away, and the sign-in goes on.
        forged = await browser.get(asked["redirect_uri"], params={"code": "x", "state": "y"})
        assert forged.status_code == 400 and "not the answer" in forged.text

        page = await browser.get(url)  # consent given, redirected back to the CLI
        assert page.status_code == 200, page.text
        assert page.url.port == redirect.port and "You can close this window" in page.text
        assert await login.exit_code() == 0, login.output

    assert (asked["response_type"], asked["code_challenge_method"]) == ("code", "S256")
    assert asked["client_id"] == issuer.client_id and asked["state"] and asked["code_challenge"]
    assert asked["login_hint"] == mailstack.users["oauthuser"].email
    assert "access_type" not in asked  # Google's own parameters go to Google only
    assert f"{ACCOUNT}: signed in; refresh token stored" in login.output
    assert "ignored a visit" in login.output
    for secret in issuer.issued:  # refresh and access tokens, and the code itself
        assert secret not in login.output
    assert stat.S_IMODE(store.path(ACCOUNT).stat().st_mode) == 0o600
    saved = store.load(ACCOUNT)
    user = mailstack.users["oauthuser"].email
    assert saved is not None and saved.refresh_token in issuer.live_refresh_tokens(user)

    cfg = load_config(config, env={})
    async with opened(cfg) as runner:
        await runner.start_watchers([ACCOUNT])
        await runner.wait_watchers_ready(15)
        assert runner.watchers[ACCOUNT].connected  # XOAUTH2 with the stored token
        probe = await runner.probe(cfg.route("self"), ACCOUNT)
    assert probe is not None and probe.decision is not None
    assert probe.decision.verdict is Verdict.INBOX, probe.decision


async def test_refused_consent_is_one_clear_line_and_stores_nothing(mailstack, issuer, tmp_path):
    issuer.consent = False
    config = browser_config(mailstack, tmp_path, issuer)
    async with Login(config) as login, httpx.AsyncClient(follow_redirects=True) as browser:
        url = await login.line_starting(f"{issuer.url}/authorize?")
        page = await browser.get(url)
        assert "not granted" in page.text and "You can close this window" in page.text
        assert await login.exit_code() == EX_DENIED, login.output
    refusal = [line for line in login.lines if "access_denied" in line]
    assert len(refusal) == 1 and "allow access" in refusal[0], login.output
    assert "Traceback" not in login.output
    assert not TokenStore(tmp_path / "state").path(ACCOUNT).exists()
