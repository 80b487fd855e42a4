"""Configuration: real TOML files in a temp dir, loaded with a hermetic environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme

from monitor.config.load import ConfigError, load_config, redacted_dict
from monitor.config.presets import PRESETS, SES_REGIONS, preset_rows
from monitor.config.schema import Endpoint
from monitor.core.models import Security

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"
SECRET = "Zq7-canary-SECRET-9x"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_full_config_resolves_presets_overrides_and_defaults(tmp_path: Path) -> None:
    write(tmp_path, "ca/root.pem", trustme.CA().cert_pem.bytes().decode())
    bob_ca = write(tmp_path, "elsewhere/bob.pem", trustme.CA().cert_pem.bytes().decode())
    write(tmp_path, "secrets/bob", "pw-b\n")
    config = write(
        tmp_path,
        "mailcanary.toml",
        f"""
[monitor]
interval = "5m"
deadline = "1h"
poll_interval = "90s"
ca_file = "ca/root.pem"
smtp_timeout = "45s"
look_out = false
max_parallel_sends = 8

[[accounts]]
name = "alice"
email = "alice@gmail.com"
provider = "gmail"
password_env = "ALICE_PASSWORD"
smtp = {{ port = 465, security = "tls" }}

[[accounts]]
name = "bob"
email = "bob@yandex.com"
provider = "yandex"
username = "bob"
password_file = "secrets/bob"
spam_folder = "Junk2"
imap = {{ timeout = "2m" }}
ca_file = "{bob_ca}"

[[accounts]]
name = "carol"
email = "carol@mail.example.org"
password_env = "CAROL_PASSWORD"
imap = {{ host = "127.0.0.1", port = 2993, security = "tls" }}

[[accounts]]
name = "dave"
email = "dave@gmail.com"
provider = "gmail"
password = "inline-pw"
smtp = {{ security = "tls" }}
imap = {{ port = 143 }}

[[routes]]
from = "alice"
to = ["bob", "carol"]

[[routes]]
name = "bob-back"
from = "bob"
to = ["alice"]
interval = "1h"
""",
    )
    state = tmp_path / "state"
    env = {"ALICE_PASSWORD": "pw-a", "CAROL_PASSWORD": "pw-c", "STATE_DIRECTORY": str(state)}
    cfg = load_config(config, env)

    root_ca = tmp_path / "ca" / "root.pem"
    assert cfg.monitor.database == f"sqlite:///{state}/mailcanary.db"
    assert cfg.monitor.state_dir == state
    assert (cfg.monitor.interval, cfg.monitor.deadline, cfg.monitor.poll_interval) == (
        300,
        3600,
        90,
    )
    assert cfg.monitor.cleanup is True and cfg.monitor.instance == "default"
    assert cfg.monitor.look_out is False and cfg.monitor.max_parallel_sends == 8
    assert cfg.monitor.max_parallel_logins == 16  # the default

    alice = cfg.account("alice")
    assert alice.smtp == Endpoint(host="smtp.gmail.com", port=465, security="tls", timeout=45)
    assert alice.imap == Endpoint(host="imap.gmail.com", port=993, security="tls", timeout=60)
    assert alice.username == "alice@gmail.com" and alice.password.get_secret_value() == "pw-a"
    assert (alice.spam_folder, alice.spam_folder_hint) == (None, "[Gmail]/Spam")
    assert alice.ca_files == (root_ca,)

    bob = cfg.account("bob")
    assert bob.smtp == Endpoint(host="smtp.yandex.com", port=465, security="tls", timeout=45)
    assert bob.imap == Endpoint(host="imap.yandex.com", port=993, security="tls", timeout=120)
    assert bob.username == "bob" and bob.password.get_secret_value() == "pw-b"
    assert (bob.spam_folder, bob.spam_folder_hint) == ("Junk2", "Спам")
    assert bob.ca_files == (root_ca, bob_ca)

    carol = cfg.account("carol")
    assert carol.smtp is None and carol.spam_folder_hint is None
    assert carol.imap == Endpoint(host="127.0.0.1", port=2993, security=Security.TLS, timeout=60)

    # Changing only the security (or only the port) of a preset re-derives the other half.
    dave = cfg.account("dave")
    assert (dave.smtp.host, dave.smtp.port, dave.smtp.security) == ("smtp.gmail.com", 465, "tls")
    assert (dave.imap.host, dave.imap.port, dave.imap.security) == (
        "imap.gmail.com",
        143,
        "starttls",
    )

    assert [(r.name, r.sender, r.recipients, r.interval) for r in cfg.routes] == [
        ("alice->bob,carol", "alice", ["bob", "carol"], 300),
        ("bob-back", "bob", ["alice"], 3600),
    ]
    assert cfg.warnings == [
        "accounts[3] (dave).password: plaintext password in the config file; "
        "prefer password_env, password_file or password_credential"
    ]


def test_broken_config_reports_every_problem_at_once(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "broken.toml",
        """
[monitor]
deadline = "soon"
cleanup = "yes"
max_parallel_logins = 0

[[accounts]]
name = "alice"
email = "alice@example.test"
password_env = "ALICE_PASSWORD"
smpt = { host = "mx.example.test" }
smtp = { host = "smtp.example.test", port = 0, security = "starttls" }

[[accounts]]
name = "bob"
email = "bob@example.test"
password_file = "missing-secret"
imap = { host = "imap.example.test", port = "993", security = "ssl" }

[[accounts]]
name = "bob"
email = "bob2@example.test"
provider = "gmial"
password_env = "BOB2"

[[accounts]]
name = "seed"
email = "seed@example.test"
password_env = "SEED"
password_file = "seed-secret"
imap = { host = "imap.example.test", port = 993, security = "tls" }

[[accounts]]
name = "sender"
email = "sender@example.test"
smtp = { host = "smtp.example.test", port = 587, security = "starttls" }

[[routes]]
from = "seed"
to = ["sender", "zed"]
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, {"BOB2": "x", "SEED": "y"})

    known = ", ".join(sorted(PRESETS))
    assert set(caught.value.problems) == {
        'monitor.deadline: expected a duration like 90s, 5m or 1h (5s..1d), got "soon"',
        "monitor.cleanup: must be true or false, got string",
        "monitor.max_parallel_logins: must be 1..10000, got 0",
        'accounts[0] (alice).smpt: unknown key; did you mean "smtp"?',
        "accounts[0] (alice).smtp.port: must be 1..65535, got 0",
        "accounts[0] (alice).password_env: environment variable ALICE_PASSWORD is not set",
        "accounts[1] (bob).imap.port: must be an integer, got string",
        "accounts[1] (bob).imap.security: must be one of starttls, tls, none "
        '(implicit TLS, as on ports 465 and 993, is "tls"), got "ssl"',
        f"accounts[1] (bob).password_file: cannot read {tmp_path}/missing-secret: "
        "No such file or directory",
        'accounts[2] (bob).name: duplicate account name "bob" (also accounts[1])',
        f'accounts[2] (bob).provider: unknown provider "gmial"; known: {known}',
        "accounts[3] (seed): set only one of password, password_env, password_file, "
        "password_credential (found password_env, password_file)",
        "accounts[4] (sender): no password; set password_env, password_file or password_credential",
        'routes[0].from: account "seed" has no smtp to send with',
        'routes[0].to[0]: account "sender" has no imap to watch',
        'routes[0].to[1]: unknown account "zed"',
    }
    assert len(caught.value.problems) == 16  # nothing reported twice
    assert str(caught.value) == "\n".join(caught.value.problems)


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    config = write(tmp_path, "syntax.toml", '[monitor]\ninterval = "5m"\ndeadline = 10m\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config, {})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{config}:3:")
    assert "Traceback" not in str(caught.value)

    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "absent.toml", {})
    assert missing.value.problems == [
        f"{tmp_path / 'absent.toml'}: cannot read: No such file or directory"
    ]


def test_secrets_never_appear_in_errors_or_display(tmp_path: Path) -> None:
    write(tmp_path, "secret-file", SECRET + "\n")
    good = write(
        tmp_path,
        "good.toml",
        f"""
[monitor]
database = "postgresql://canary:{SECRET}@db.example.test/canary"
[[accounts]]
name = "inline"
email = "inline@example.test"
password = "{SECRET}"
smtp = {{ host = "smtp.example.test", port = 465, security = "tls" }}
[[accounts]]
name = "fromfile"
email = "file@example.test"
password_file = "secret-file"
imap = {{ host = "imap.example.test", security = "tls" }}
[[routes]]
from = "inline"
to = ["fromfile"]
""",
    )
    cfg = load_config(good, {})
    assert cfg.account("fromfile").password.get_secret_value() == SECRET  # newline stripped
    assert cfg.account("fromfile").imap.port == 993
    shown = json.dumps(redacted_dict(cfg), ensure_ascii=False)
    assert "***" in shown and "secret-file" in shown
    for text in (shown, repr(cfg), str(cfg), "\n".join(cfg.warnings)):
        assert SECRET not in text

    bad = write(
        tmp_path,
        "bad.toml",
        f"""
[monitor]
database = "mysql://canary:{SECRET}@db.example.test/canary"
[[accounts]]
name = "leaky"
email = "leaky@example.test"
password = "{SECRET}"
password_env = "{SECRET}"
smtp = {{ host = "smtp.example.test", port = 465, security = "tls", password = "{SECRET}" }}
[[accounts]]
name = "typed"
email = "typed@example.test"
password = 12345
imap = {{ host = "imap.example.test", security = "tls" }}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(bad, {SECRET: "x"})
    assert len(caught.value.problems) >= 4
    assert SECRET not in str(caught.value) and "12345" not in str(caught.value)


def test_password_credential_from_systemd_credentials_directory(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    write(credentials, "own-password", "cred-pw\n")
    config = write(
        tmp_path,
        "cred.toml",
        """
[[accounts]]
name = "own"
email = "own@example.test"
password_credential = "own-password"
smtp = { host = "127.0.0.1", port = 2587, security = "starttls" }
""",
    )
    own = load_config(config, {"CREDENTIALS_DIRECTORY": str(credentials)}).account("own")
    assert own.password.get_secret_value() == "cred-pw"
    assert own.password_source == "credential own-password"

    with pytest.raises(ConfigError) as unset:
        load_config(config, {})
    assert unset.value.problems == [
        "accounts[0] (own).password_credential: CREDENTIALS_DIRECTORY is not set "
        "(systemd sets it for LoadCredential=)"
    ]
    with pytest.raises(ConfigError) as absent:
        load_config(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert absent.value.problems == [
        f"accounts[0] (own).password_credential: cannot read {tmp_path}/own-password: "
        "No such file or directory"
    ]


def test_example_config_loads_cleanly(tmp_path: Path) -> None:
    write(tmp_path, "own-password", "own-pw\n")
    env = {
        "MAILCANARY_GMAIL_PASSWORD": "gmail-pw",
        "MAILCANARY_YANDEX_PASSWORD": "yandex-pw",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
    }
    cfg = load_config(EXAMPLE, env)
    assert cfg.warnings == []
    assert {r.name for r in cfg.routes} == {"own-to-seeds", "gmail->own"}
    assert all(a.password is not None for a in cfg.accounts)
    for route in cfg.routes:
        assert cfg.account(route.sender).smtp is not None
        assert all(cfg.account(name).imap is not None for name in route.recipients)


def test_preset_table_marks_unconfirmed_facts() -> None:
    rows = {row["name"]: row for row in preset_rows()}
    assert set(rows) == set(PRESETS) and len(rows) == 12 + len(SES_REGIONS) + 7  # mailboxes, ESPs
    assert rows["gmail"]["smtp"] == "smtp.gmail.com:587 starttls"
    assert rows["gmail"]["unconfirmed"] == "-"
    assert "spam folder name" in rows["aol"]["unconfirmed"]
    assert rows["yandex-tr"]["unconfirmed"] == "IMAP host"
