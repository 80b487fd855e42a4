"""`mailcanary lint-message` as a user runs it, scored by the harness's real spamd via spamc."""

from __future__ import annotations

import json

import pytest

from monitor.harness.demo import write_config
from tests.integration.test_content_e2e import SPAMMY
from tests.integration.test_probe_e2e import mailcanary
from tests.unit.test_lint import GOOD

pytestmark = pytest.mark.mailstack


@pytest.fixture
def spamd(mailstack) -> str:
    if mailstack.spamd_port is None:
        pytest.skip("spamassassin/spamc not installed")
    return f"127.0.0.1:{mailstack.spamd_port}"


def test_spammy_message_is_an_error_with_spamassassins_rules(spamd, tmp_path):
    path = tmp_path / "spammy.eml"
    path.write_text(SPAMMY)
    done = mailcanary("lint-message", str(path), "--spamd", spamd)
    assert done.returncode == 65, done.stderr
    lines = done.stdout.splitlines()
    assert any("warning MC_IMAGE_ONLY_HTML" in line for line in lines)
    assert any("warning MC_NO_TEXT_PART" in line for line in lines)
    (verdict,) = [line for line in lines if f"(spam, spamc {spamd})" in line]
    assert "DEAR_WINNER +3.1" in verdict

    shown = mailcanary("lint-message", str(path), "--spamd", spamd, "--json")
    shape = json.loads(shown.stdout)
    assert shape["exit"] == shown.returncode == 65
    assert shape["spamassassin"]["score"] > shape["spamassassin"]["threshold"] == 5.0
    # Scored as it would be sent: the file has no Date, the probe adds one.
    assert "MISSING_DATE" not in {r["name"] for r in shape["spamassassin"]["rules"]}


def test_well_made_newsletter_passes(spamd, tmp_path):
    path = tmp_path / "news.eml"
    path.write_bytes(GOOD)
    done = mailcanary("lint-message", str(path), "--spamd", spamd, "--json")
    shape = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    assert shape["findings"] == [] and shape["spamassassin"]["spam"] is False


def test_account_alignment_and_bad_input_exit_codes(mailstack, spamd, tmp_path):
    config = write_config(mailstack, tmp_path, routes=[])
    path = tmp_path / "news.eml"
    path.write_bytes(GOOD)
    args = ("--config", str(config), "lint-message", str(path), "--spamd", spamd)
    foreign = mailcanary(*args, "--account", "alice")
    assert foreign.returncode == 65
    assert "error MC_FROM_NOT_ACCOUNT: From <news@shop.example.org> is neither" in foreign.stdout
    unknown = mailcanary(*args, "--account", "nobody")
    assert unknown.returncode == 78 and "unknown account 'nobody'" in unknown.stderr
    missing = mailcanary("lint-message", str(tmp_path / "none.eml"))
    assert missing.returncode == 66 and "cannot read" in missing.stdout
    assert "Traceback" not in foreign.stderr + unknown.stderr + missing.stderr
