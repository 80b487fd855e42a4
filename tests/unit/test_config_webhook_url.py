"""A webhook's URL and signing secret from the environment, a file or a systemd credential:
resolution, one problem line per mistake naming the key, and the URL in no line or repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.alert_file import carries_token
from monitor.config.load import ConfigError, load_config, redacted_dict
from tests.unit.test_config_cli import check_config

TOKEN = "T0AB12CD3/B0EF45GH6/Zq8xWv3Lr9Tk2Mn7Pb4Yc6Hd"
SLACK = f"https://hooks.slack.test/services/{TOKEN}"
SIGNING = "sign-Secret-77"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "mailcanary.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env or {})


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    assert TOKEN not in str(caught.value)
    return caught.value.problems


def test_url_and_secret_come_from_env_file_or_credential(tmp_path: Path) -> None:
    (tmp_path / "hook-url").write_text(SLACK.replace("slack", "files") + "\n", encoding="utf-8")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "chat-url").write_text(f"https://chat.example.test:8443/hooks/{TOKEN}\r\n")
    (creds / "chat-sign").write_text(SIGNING + "\n")
    (tmp_path / "sign").write_text(SIGNING)
    cfg = load(
        tmp_path,
        """
[[alerts.webhook]]
url_env = "HOOK_URL"
secret_file = "sign"

[[alerts.webhook]]
url_file = "hook-url"

[[alerts.webhook]]
url_credential = "chat-url"
secret_credential = "chat-sign"
format = "slack"

[[alerts.webhook]]
name = "plain"
url = "http://127.0.0.1:9000/mailcanary/alerts"
secret_env = "SIGN"
""",
        {"HOOK_URL": SLACK, "CREDENTIALS_DIRECTORY": str(creds), "SIGN": SIGNING},
    )
    env_hook, file_hook, cred_hook, plain = cfg.alerts.webhook
    assert [h.url for h in cfg.alerts.webhook] == [
        SLACK,
        SLACK.replace("slack", "files"),  # the newline is not part of the URL
        f"https://chat.example.test:8443/hooks/{TOKEN}",
        "http://127.0.0.1:9000/mailcanary/alerts",
    ]
    # Default names are host and port only, whatever the source.
    assert [h.name for h in cfg.alerts.webhook] == [
        "webhook:hooks.slack.test",
        "webhook:hooks.files.test",
        "webhook:chat.example.test:8443",
        "plain",
    ]
    assert [h.url_source for h in cfg.alerts.webhook] == [
        "env HOOK_URL",
        f"file {tmp_path / 'hook-url'}",
        "credential chat-url",
        "inline",
    ]
    assert [h.secret and h.secret.get_secret_value() for h in cfg.alerts.webhook] == [
        SIGNING,
        None,
        SIGNING,
        SIGNING,
    ]
    assert (env_hook.secret_source, cred_hook.secret_source, plain.secret_source) == (
        f"file {tmp_path / 'sign'}",
        "credential chat-sign",
        "env SIGN",
    )
    assert file_hook.secret_source is None
    assert cfg.warnings == ["routes: none configured; nothing will be sent"]
    shown = f"{cfg!r} {redacted_dict(cfg)}"
    assert TOKEN not in shown and SIGNING not in shown and "9000/mailcanary" not in shown


def test_every_mistake_is_one_line_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "ftp-url").write_text(f"ftp://hooks.slack.test/{TOKEN}\n")
    (tmp_path / "spaced-url").write_text(f"https://hooks.slack.test/{TOKEN} x\n")
    (tmp_path / "empty").write_text("\n")
    lines = problems(
        tmp_path,
        f"""
[[alerts.webhook]]
format = "slack"

[[alerts.webhook]]
url = "{SLACK}"
url_credential = "chat-url"

[[alerts.webhook]]
url_env = "NOT_SET"

[[alerts.webhook]]
url_file = "missing-file"

[[alerts.webhook]]
url_file = "ftp-url"

[[alerts.webhook]]
url_file = "spaced-url"

[[alerts.webhook]]
url_file = "empty"

[[alerts.webhook]]
url_credential = "chat-url"

[[alerts.webhook]]
url_env = "HOOK_URL"
secret_env = "SIGN"
secret_credential = "sign"

[[alerts.webhook]]
url_env = "HOOK_URL"
secret_file = "missing-sign"

[[alerts.webhook]]
url_env = "{SLACK}"
url_credential = "../etc/hook"
""",
        {"HOOK_URL": f"file:///{TOKEN}", "SIGN": SIGNING},
    )
    assert lines == [
        "alerts.webhook[0]: set one of url, url_env, url_file, url_credential",
        "alerts.webhook[1]: set only one of url, url_env, url_file, url_credential "
        "(found url, url_credential)",
        "alerts.webhook[2].url_env: environment variable NOT_SET is not set",
        f"alerts.webhook[3].url_file: cannot read {tmp_path / 'missing-file'}: "
        "No such file or directory",
        "alerts.webhook[4].url_file: must be an http:// or https:// URL",
        "alerts.webhook[5].url_file: must be a URL without spaces or control characters",
        f"alerts.webhook[6].url_file: {tmp_path / 'empty'} is empty",
        "alerts.webhook[7].url_credential: CREDENTIALS_DIRECTORY is not set "
        "(systemd sets it for LoadCredential=)",
        "alerts.webhook[8].url_env: must be an http:// or https:// URL",
        "alerts.webhook[8]: set only one of secret_env, secret_credential",
        "alerts.webhook[9].url_env: must be an http:// or https:// URL",
        f"alerts.webhook[9].secret_file: cannot read {tmp_path / 'missing-sign'}: "
        "No such file or directory",
        "alerts.webhook[10].url_env: must be the name of an environment variable "
        "(letters, digits, _)",
        "alerts.webhook[10].url_credential: must be a credential name (as in LoadCredential=), "
        "not a path",
    ]


def test_an_inline_url_with_a_token_is_warned_about() -> None:
    for url in (
        SLACK,
        "https://discord.test/api/webhooks/1234567890/aB3dE5fG7hJ9kL1mN3pQ5rS7",
        "https://hook.test/notify?token=0f3a9c2e7b1d4f6a",
        "https://user:pw@hook.test/notify",
    ):
        assert carries_token(url), url
    for url in (
        "http://127.0.0.1:9000/hook",
        "https://alerts.example.test/mailcanary/alertmanager-receiver",
        "https://hook.test/api/v2/alerts?format=json",
    ):
        assert not carries_token(url), url


def test_check_config_warns_about_an_inline_token_and_fails_with_78(tmp_path: Path) -> None:
    inline = tmp_path / "inline.toml"
    inline.write_text(f'[[alerts.webhook]]\nurl = "{SLACK}"\n', encoding="utf-8")
    code, out = check_config(tmp_path, inline)
    assert code == 0, out
    out = " ".join(out.split())  # the console wraps long warnings
    assert (
        "alerts.webhook[0].url: looks like it carries a token; "
        "prefer url_env, url_file or url_credential"
    ) in out
    assert TOKEN not in out

    (tmp_path / "hook-url").write_text(f"gopher://hooks.slack.test/{TOKEN}\n")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[alerts.webhook]]\nurl_file = "hook-url"\n', encoding="utf-8")
    code, out = check_config(tmp_path, bad)
    assert code == 78, out
    out = " ".join(out.split())
    assert "alerts.webhook[0].url_file: must be an http:// or https:// URL" in out
    assert TOKEN not in out and "Traceback" not in out
