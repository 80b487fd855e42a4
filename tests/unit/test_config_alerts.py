"""The [alerts] table: resolved values, defaults, problem lines, and no secret in any of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerts.state import AlertKind
from monitor.config.load import ConfigError, load_config

ACCOUNTS = """
[[accounts]]
name = "ops-sender"
email = "mailcanary@example.org"
smtp = { host = "mail.example.org", port = 587, security = "starttls" }
password_env = "OPS_PASSWORD"

[[accounts]]
name = "seed"
email = "seed@example.org"
imap = { host = "mail.example.org", port = 993, security = "tls" }
password_env = "OPS_PASSWORD"
"""
HOOK_SECRET = "hook-Secret-42"
SLACK_URL = "https://hooks.slack.test/services/T000/B000/XXXXsecretXXXX"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "mailcanary.toml"
    path.write_text(ACCOUNTS + text, encoding="utf-8")
    return load_config(path, {"OPS_PASSWORD": "pw", **(env or {})})


def test_alerts_resolve_with_channels_and_defaults(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f"""
[alerts]
after_failures = 3
remind_every = "0"
slow_after = "90s"
on = ["spam", "missing"]
immediate_on_settings = false

[[alerts.email]]
account = "ops-sender"
to = ["ops@example.test", "oncall@example.test"]

[[alerts.webhook]]
url = "http://127.0.0.1:9000/hook"
secret_env = "HOOK_SECRET"
timeout = "3s"

[[alerts.webhook]]
name = "team-chat"
url = "{SLACK_URL}"
format = "slack"
""",
        {"HOOK_SECRET": HOOK_SECRET},
    )
    alerts = cfg.alerts
    policy = alerts.policy()
    assert (policy.after_failures, policy.remind_every, policy.slow_after) == (3, 0.0, 90.0)
    assert policy.on == {AlertKind.SPAM, AlertKind.MISSING}
    assert policy.immediate_on_settings is False
    (email,) = alerts.email
    assert (email.name, email.account, email.to) == (
        "email:ops-sender",
        "ops-sender",
        ["ops@example.test", "oncall@example.test"],
    )
    local, chat = alerts.webhook
    assert (local.name, local.format, local.timeout) == ("webhook:127.0.0.1:9000", "json", 3.0)
    assert local.secret is not None and local.secret.get_secret_value() == HOOK_SECRET
    assert (chat.name, chat.format, chat.secret) == ("team-chat", "slack", None)
    # Neither the signing secret nor a webhook URL (its path is a secret) shows in a repr.
    assert HOOK_SECRET not in repr(cfg) and "XXXXsecretXXXX" not in repr(cfg)

    plain = load(tmp_path, "").alerts
    assert (plain.after_failures, plain.resolve_after, plain.remind_every) == (2, 1, 21600.0)
    assert plain.slow_after == 300.0 and plain.on == list(AlertKind)
    assert plain.immediate_on_settings and plain.channels == []


def test_alert_problems_are_one_line_each_and_all_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            f"""
[alerts]
after_failures = 0
remind_every = "soon"
on = ["spam", "bounced"]
colour = "red"

[[alerts.email]]
account = "nobody"
to = ["ops@example.test"]

[[alerts.email]]
account = "seed"
to = ["not-an-address"]

[[alerts.email]]
account = "seed"
to = ["ops@example.test"]

[[alerts.email]]
account = "ops-sender"
to = []

[[alerts.webhook]]
url = "{SLACK_URL}"
secret_env = "HOOK_SECRET"

[[alerts.webhook]]
url = "http://127.0.0.1:9000/"
format = "teams"

[[alerts.webhook]]
url = "ftp://{SLACK_URL[8:]}"

[[alerts.webhook]]
url = "https://hooks.slack.test/services/other"
""",
        )
    assert caught.value.problems == [
        "alerts.after_failures: must be 1 or more, got 0",
        'alerts.remind_every: expected a duration like 90s, 5m or 1h (1m..30d, or "0" for never), '
        'got "soon"',
        "alerts.on[1]: must be one of send_failed, check_failed, missing, spam, slow, "
        'got "bounced"',
        "alerts.colour: unknown key",
        'alerts.email[0].account: unknown account "nobody"',
        'alerts.email[1].to[0]: must be an email address, got "not-an-address"',
        'alerts.email[2].account: account "seed" has no smtp',
        "alerts.email[3].to: must not be empty",
        "alerts.webhook[0].secret_env: environment variable HOOK_SECRET is not set",
        'alerts.webhook[1].format: must be one of json, slack, alertmanager, got "teams"',
        "alerts.webhook[2].url: must be an http:// or https:// URL",
        'alerts.webhook[3].name: duplicate channel name "webhook:hooks.slack.test" '
        "(also alerts.webhook[0]); set name to tell them apart",
    ]
    text = str(caught.value)
    assert "XXXXsecretXXXX" not in text


def test_alerts_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "mailcanary.toml"
    path.write_text("alerts = 3\n" + ACCOUNTS, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"OPS_PASSWORD": "pw"})
    assert caught.value.problems == ["alerts: must be a table ([alerts]), got integer"]


def test_an_empty_secret_is_refused_and_never_echoed(tmp_path: Path) -> None:
    text = '[[alerts.webhook]]\nurl = "http://h/x"\nsecret_env = "HOOK_SECRET"\n'
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, {"HOOK_SECRET": ""})
    assert caught.value.problems == [
        "alerts.webhook[0].secret_env: environment variable HOOK_SECRET is empty"
    ]
