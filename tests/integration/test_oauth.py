"""OAuth2 (XOAUTH2) through the real stack: a real token server, Dovecot's oauth2 passdb asking
it about every bearer token, Postfix SASL via Dovecot, and mailcanary's own probe runner."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from monitor.adapters.oauth import TokenStore
from monitor.config.load import load_config
from monitor.core.catalogue import advise
from monitor.core.models import Phase, Verdict, utcnow
from monitor.harness.dovecot import DOVEADM
from monitor.harness.tokenserver import TokenServer
from monitor.probe.setup import opened
from monitor.reports.mail import send_report

pytestmark = pytest.mark.mailstack
ACCOUNT = "m365"


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def issuer(mailstack) -> Iterator[TokenServer]:
    # Access tokens live 2 s and every refresh rotates the refresh token.
    with TokenServer(port=mailstack.oauth_port, expires_in=2, rotate=True) as server:
        yield server


def write_config(
    mailstack,
    directory: Path,
    issuer: TokenServer,
    sign_in: str = 'refresh_token_env = "MC_REFRESH"',
) -> Path:
    """One xoauth2 account for the stack's "oauthuser"; `sign_in` ends its oauth table."""
    ca = directory / "ca.pem"
    ca.write_bytes(mailstack.ca_pem)
    user, host = mailstack.users["oauthuser"], mailstack.host
    path = directory / "mailcanary.toml"
    oauth = (
        f'{{ issuer = "custom", client_id = "{issuer.client_id}", '
        f'token_url = "{issuer.url}/token", {sign_in} }}'
    )
    path.write_text(
        f"""
[monitor]
database = "sqlite:///{directory}/mc.db"
state_dir = "{directory}/state"
deadline = "15s"
poll_interval = "1s"

[[accounts]]
name = "{ACCOUNT}"
email = "{user.email}"
auth = "xoauth2"
oauth = {oauth}
ca_file = "{ca}"
smtp = {{ host = "{host}", port = {mailstack.submission_port}, security = "starttls" }}
imap = {{ host = "{host}", port = {mailstack.imaps_port}, security = "tls" }}

[[routes]]
name = "self"
from = "{ACCOUNT}"
to = ["{ACCOUNT}"]
"""
    )
    return path


async def test_xoauth2_probes_refresh_rotate_and_revoke(mailstack, issuer, tmp_path, capsys):
    first = issuer.issue(mailstack.users["oauthuser"].email)
    cfg = load_config(write_config(mailstack, tmp_path, issuer), env={"MC_REFRESH": first})
    store = TokenStore(cfg.monitor.state_dir)

    def expired() -> bool:
        saved = store.load(ACCOUNT)
        return saved is not None and saved.grant is not None and saved.grant.expires_at < utcnow()

    async with opened(cfg) as runner:
        route = cfg.route("self")
        await runner.start_watchers([ACCOUNT])
        await runner.wait_watchers_ready(15)
        assert runner.watchers[ACCOUNT].connected  # both folders logged in with XOAUTH2

        sent = await runner.probe(route, ACCOUNT)
        assert sent is not None and sent.decision is not None
        assert sent.decision.verdict is Verdict.INBOX, sent.decision
        assert [r.code for r in sent.send.replies if r.phase is Phase.AUTH] == [235]

        # Rotation: the first refresh token is dead at the issuer, its successor is on disk.
        file = store.path(ACCOUNT)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        saved = store.load(ACCOUNT)
        assert saved is not None and saved.refresh_token != first
        live = issuer.live_refresh_tokens(mailstack.users["oauthuser"].email)
        assert live == {saved.refresh_token}

        # Expiry mid-run: the next probe gets a fresh token first and does not fail.
        refreshes = len(issuer.refresh_grants)
        wait_for(expired, 10, "the access token to expire")
        again = await runner.probe(route, ACCOUNT)
        assert again is not None and again.decision is not None
        assert again.decision.verdict is Verdict.INBOX, again.decision
        assert len(issuer.refresh_grants) > refreshes
        assert store.load(ACCOUNT).refresh_token in issuer.live_refresh_tokens(  # type: ignore[union-attr]
            mailstack.users["oauthuser"].email
        )

        # Revocation: the refresh is refused, the probe fails auth with the way out.
        issuer.revoke(mailstack.users["oauthuser"].email)
        wait_for(expired, 10, "the access token to expire")
        refused = await runner.probe(route, ACCOUNT)
        assert refused is not None and refused.decision is not None
        failure = refused.decision.failure
        assert refused.decision.verdict is Verdict.SEND_FAILED
        assert failure is not None and (failure.kind, failure.transient) == ("auth_failed", False)
        assert "invalid_grant" in failure.message
        assert f"mailcanary oauth login {ACCOUNT}" in failure.message
        assert "mailcanary oauth login" in advise(failure).remedy
        assert "invalid_grant" in issuer.refused

    # No token ever reaches the output, the logs or the database.
    captured = capsys.readouterr()
    database = (tmp_path / "mc.db").read_bytes()
    assert "oauth token refreshed" in captured.out + captured.err  # the logs were looked at
    for token in issuer.issued:
        assert token not in captured.out and token not in captured.err
        assert token.encode() not in database


async def until(condition: Callable[[], object], within: float, what: str) -> None:
    """Poll a condition while the event loop runs on (the watcher lives on it)."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - no event says "logged in again"
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_token_withdrawn_early_costs_one_refresh_and_no_failed_probe(mailstack, tmp_path):
    user = mailstack.users["oauthuser"].email
    # Access tokens live an hour: every refresh below is one a refusal caused.
    with TokenServer(port=mailstack.oauth_port, expires_in=3600) as issuer:
        env = {"MC_REFRESH": issuer.issue(user)}
        cfg = load_config(write_config(mailstack, tmp_path, issuer), env=env)
        route = cfg.route("self")
        async with opened(cfg) as runner:
            await runner.start_watchers([ACCOUNT])
            await runner.wait_watchers_ready(15)
            watcher = runner.watchers[ACCOUNT]
            assert watcher.connected
            refreshes = len(issuer.refresh_grants)

            # Withdrawn while the watcher is logged in: the send is refused once, then retried.
            issuer.invalidate_access(user)
            sent = await runner.probe(route, ACCOUNT)
            assert sent is not None and sent.decision is not None
            assert sent.decision.verdict is Verdict.INBOX, sent.decision
            assert [r.code for r in sent.send.replies if r.phase is Phase.AUTH] == [535, 235]
            assert len(issuer.refresh_grants) == refreshes + 1

            # Withdrawn again, then Dovecot drops the watcher: both folder sessions log in
            # again, are refused at once, and share one fresh token.
            issuer.invalidate_access(user)
            conf = str(mailstack.root / "dovecot" / "dovecot.conf")
            kick = [DOVEADM, "-c", conf, "kick", user]
            await asyncio.to_thread(subprocess.run, kick, check=True, capture_output=True)
            assert await asyncio.to_thread(issuer.wait_refreshes, refreshes + 2, 15)
            await until(lambda: watcher.connected, 15, "the watcher back")
            assert watcher.last_failure is not None
            assert watcher.last_failure.kind == "connection_lost"  # never auth_failed
            assert len(issuer.refresh_grants) == refreshes + 2

            again = await runner.probe(route, ACCOUNT)
            assert again is not None and again.decision is not None
            assert again.decision.verdict is Verdict.INBOX, again.decision
            assert [r.code for r in again.send.replies if r.phase is Phase.AUTH] == [235]
            assert len(issuer.refresh_grants) == refreshes + 2
        assert False in issuer.introspections  # Dovecot did see the withdrawn tokens


async def test_the_weekly_report_mail_logs_in_with_xoauth2(mailstack, issuer, tmp_path):
    user = mailstack.users["oauthuser"].email
    cfg = load_config(
        write_config(mailstack, tmp_path, issuer), env={"MC_REFRESH": issuer.issue(user)}
    )
    account = cfg.account(ACCOUNT)
    message = EmailMessage()
    message["From"], message["To"] = user, user
    message["Subject"] = subject = f"mailcanary report {tmp_path.name}"
    message.set_content("the week in canaries")

    assert await send_report(account, user, message, state_dir=cfg.monitor.state_dir) is None
    wait_for(
        lambda: any(subject.encode() in m for m in mailstack.list_messages("oauthuser", "INBOX")),
        10,
        "the report in the inbox",
    )
    assert issuer.refresh_grants  # the login took a token, not a password it does not have
    # Without the token store it says so, rather than trying a password.
    assert "no token store" in (await send_report(account, user, message) or "")
