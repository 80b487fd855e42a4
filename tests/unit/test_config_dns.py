"""The [dns] table and per-account dkim_selectors: resolved values, defaults, problem lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.load import ConfigError, load_config
from monitor.config.schema import DEFAULT_DNSBL_ZONES

ACCOUNT = """
[[accounts]]
name = "own"
email = "canary@example.org"
smtp = { host = "mail.example.org", port = 587, security = "starttls" }
password_env = "OWN_PASSWORD"
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "mailcanary.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {"OWN_PASSWORD": "pw"})


def test_dns_table_resolves_and_defaults_apply(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
[dns]
nameservers = ["127.0.0.1:5353", "::1", "[fd00::53]:5300", "192.0.2.53"]
timeout = "1500ms"
dnsbl_zones = ["ZEN.Spamhaus.org", "bl.example.test"]
"""
        + ACCOUNT
        + 'dkim_selectors = ["s1", "Google", "2026.q1"]\n',
    )
    assert cfg.dns.nameservers == [
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("fd00::53", 5300),
        ("192.0.2.53", 53),
    ]
    assert cfg.dns.timeout == 1.5
    assert cfg.dns.dnsbl_zones == ["zen.spamhaus.org", "bl.example.test"]
    assert cfg.account("own").dkim_selectors == ["s1", "google", "2026.q1"]

    plain = load(tmp_path, ACCOUNT)
    assert plain.dns.nameservers == []  # the system resolver
    assert plain.dns.timeout == 5.0
    assert plain.dns.dnsbl_zones == list(DEFAULT_DNSBL_ZONES)
    assert plain.account("own").dkim_selectors == []


def test_dns_problems_are_one_line_each_and_all_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            """
[dns]
nameservers = ["resolver.example.org", "127.0.0.1:0", 53]
timeout = "soon"
dnsbl_zones = ["zen..spamhaus.org"]
dnsbl_zone = []
"""
            + ACCOUNT
            + 'dkim_selectors = ["s 1"]\n',
        )
    assert caught.value.problems == [
        'dns.nameservers[0]: must be an IP address with an optional port (e.g. "127.0.0.1", '
        '"127.0.0.1:5353" or "[::1]:53"), got "resolver.example.org"',
        'dns.nameservers[1]: port must be 1..65535, got "127.0.0.1:0"',
        'dns.nameservers[2]: must be an IP address with an optional port (e.g. "127.0.0.1", '
        '"127.0.0.1:5353" or "[::1]:53"), got 53',
        'dns.timeout: expected a duration like 90s, 5m or 1h (100ms..1m), got "soon"',
        'dns.dnsbl_zones[0]: must be a DNS name like "zen.spamhaus.org" or "s1", '
        'got "zen..spamhaus.org"',
        'dns.dnsbl_zone: unknown key; did you mean "dnsbl_zones"?',
        'accounts[0] (own).dkim_selectors[0]: must be a DNS name like "zen.spamhaus.org" or '
        '"s1", got "s 1"',
    ]
