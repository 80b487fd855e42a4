"""Sending-service (ESP relay) presets through the real config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.load import ConfigError, load_config
from monitor.core.catalogue import advise
from monitor.core.models import Failure, Phase, Security

ACCOUNTS = """
[[accounts]]
name = "grid"
email = "news@shop.example.org"
provider = "sendgrid"
password = "SG.key"

[[accounts]]
name = "ses"
email = "news@shop.example.org"
provider = "ses-eu-west-1"
username = "AKIAEXAMPLE"
password = "smtp-secret"
smtp = {{ port = 465 }}

[[accounts]]
name = "mark"
email = "news@shop.example.org"
provider = "postmark"
username = "server-token"
password = "server-token"

[[accounts]]
name = "seed"
email = "seed@example.test"
password = "pw"
imap = {{ host = "127.0.0.1", port = 993, security = "tls" }}
{more}
"""


def load(tmp_path: Path, more: str = ""):
    path = tmp_path / "mailcanary.toml"
    path.write_text(ACCOUNTS.format(more=more), encoding="utf-8")
    return load_config(path, env={})


def test_esp_presets_fill_smtp_and_user_name_and_no_imap(tmp_path: Path):
    cfg = load(tmp_path)
    grid, ses, mark = cfg.account("grid"), cfg.account("ses"), cfg.account("mark")
    assert grid.smtp is not None and ses.smtp is not None
    assert (grid.smtp.host, grid.smtp.port, grid.smtp.security) == (
        "smtp.sendgrid.net",
        587,
        Security.STARTTLS,
    )
    assert grid.username == "apikey" and grid.imap is None
    # Port 465 means implicit TLS at SES too; the user name given wins.
    assert (ses.smtp.host, ses.smtp.port, ses.smtp.security) == (
        "email-smtp.eu-west-1.amazonaws.com",
        465,
        Security.TLS,
    )
    assert ses.username == "AKIAEXAMPLE" and mark.username == "server-token"


def test_an_esp_account_cannot_be_watched(tmp_path: Path):
    route = '[[routes]]\nfrom = "seed"\nto = ["grid"]\n'
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, route)
    assert any('account "grid" has no imap to watch' in p for p in caught.value.problems)


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "words"),
    [
        (
            554,
            None,
            "Message rejected: Email address is not verified. The following identities "
            "failed the check in region EU-WEST-1: news@shop.example.org",
            "sandbox",
        ),
        (454, None, "Throttling failure: Maximum sending rate exceeded.", "sending rate"),
        (
            550,
            None,
            "The from address does not match a verified Sender Identity. Mail cannot be "
            "sent until this error is resolved.",
            "Sender Identity",
        ),
        (451, None, "Authentication failed: Maximum credits exceeded", "credits"),
        (550, "5.7.1", "Unconfigured Sending Domain <shop.example.org>", "sending domain"),
    ],
)
def test_esp_refusals_get_their_own_advice(code, enhanced, text, words):
    phase = Phase.DATA if code != 451 else Phase.AUTH
    advice = advise(Failure("rejected", phase, code < 500, text, code, enhanced))
    assert advice is not None and words.lower() in advice.explanation.lower()
