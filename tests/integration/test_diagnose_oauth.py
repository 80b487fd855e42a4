"""`mailcanary diagnose` for an auth = "xoauth2" account: its SMTP and IMAP logins and its
self-test use XOAUTH2 through the harness's token server, Postfix and Dovecot."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from rich.console import Console

from monitor.cli.diagnose import run_diagnose
from monitor.config.load import load_config
from monitor.harness.tokenserver import TokenServer
from tests.integration.test_oauth import ACCOUNT, write_config

pytestmark = pytest.mark.mailstack


@pytest.fixture
def issuer(mailstack) -> Iterator[TokenServer]:
    with TokenServer(port=mailstack.oauth_port) as server:
        yield server


async def diagnosed(cfg, *, send_test: bool = False) -> dict:
    printed = io.StringIO()
    await run_diagnose(
        cfg.account(ACCOUNT),
        as_json=True,
        send_test=send_test,
        wait=20,
        out=Console(file=printed, width=200),
        state_dir=cfg.monitor.state_dir,
    )
    return json.loads(printed.getvalue())


def step(document: dict, service: str, name: str) -> dict:
    (found,) = [
        s
        for s in document["steps"]
        if (s["service"], s["step"]) == (service, name) and s["required"]
    ]
    return found


async def test_diagnose_logs_in_with_xoauth2_and_names_the_sign_in_when_revoked(
    mailstack, issuer, tmp_path
):
    user = mailstack.users["oauthuser"].email
    refresh = issuer.issue(user)
    cfg = load_config(write_config(mailstack, tmp_path, issuer), env={"MC_REFRESH": refresh})

    fine = await diagnosed(cfg, send_test=True)
    for service in ("smtp", "imap"):
        login = step(fine, service, "login")
        assert login["ok"] is True, login
        assert login["data"]["method"] == "XOAUTH2" and "with XOAUTH2" in login["detail"]
    assert step(fine, "smtp", "self_test")["ok"] is True  # sent with XOAUTH2 too
    assert step(fine, "imap", "self_test")["data"]["folder"] == "INBOX"
    assert len(issuer.refresh_grants) == 1  # one token served every login
    assert False not in issuer.introspections  # Dovecot judged only good tokens

    issuer.revoke(user)  # consent withdrawn: access and refresh tokens are dead
    refused = await diagnosed(cfg)
    assert refused["exit_code"] == 2
    for service in ("smtp", "imap"):
        login = step(refused, service, "login")
        assert login["ok"] is False, login
        assert login["failure"]["kind"] == "auth_failed"
        assert "invalid_grant" in login["detail"]
        assert f"mailcanary oauth login {ACCOUNT}`" in login["remedy"], login["remedy"]
        assert "NAME" not in login["remedy"]
    shown = json.dumps([fine, refused])
    assert not any(token in shown for token in issuer.issued)
