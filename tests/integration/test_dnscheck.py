"""`mailcanary dns` through a real DNS server (private dnsmasq on 127.0.0.1) with fixture zones.

Every lookup goes to that server: the config always names it, so the system resolver is
never asked, and nothing leaves the machine.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli.dns import report_account
from monitor.config.load import Config, load_config
from monitor.dnscheck.policy import Status, exit_code
from monitor.dnscheck.run import check_account
from monitor.harness.dnsserver import (
    BAD,
    CLEAN_ZONE,
    GOOD,
    LISTED_REASON,
    LISTED_ZONE,
    REFUSING_ZONE,
    DnsServer,
    fixture_records,
    missing_requirements,
)

OK, WARN, FAIL, ERROR = Status.OK, Status.WARN, Status.FAIL, Status.ERROR


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    with DnsServer.start(fixture_records()) as server:
        yield server


def config(tmp_path: Path, nameserver: tuple[str, int], zones: list[str]) -> Config:
    host, port = nameserver
    path = tmp_path / "mailcanary.toml"
    path.write_text(
        f"""
[dns]
nameservers = ["{host}:{port}"]
timeout = "2s"
dnsbl_zones = {json.dumps(zones)}

[[accounts]]
name = "good"
email = "canary@{GOOD}"
smtp = {{ host = "mail.{GOOD}", port = 587, security = "starttls" }}
password_env = "PW"
dkim_selectors = ["s1"]

[[accounts]]
name = "bad"
email = "canary@{BAD}"
smtp = {{ host = "mail.{BAD}", port = 587, security = "starttls" }}
password_env = "PW"
dkim_selectors = ["gone", "missing"]
""",
        encoding="utf-8",
    )
    return load_config(path, {"PW": "unused"})


async def test_good_domain_is_all_ok(dns_server: DnsServer, tmp_path: Path, capsys) -> None:
    cfg = config(tmp_path, dns_server.nameserver, [LISTED_ZONE, CLEAN_ZONE])
    findings = await check_account(cfg.account("good"), cfg.dns)
    assert [(f.check, f.target) for f in findings] == [
        ("mx", GOOD),
        ("spf", GOOD),
        ("spf_all", GOOD),
        ("spf_lookups", GOOD),
        ("dmarc", GOOD),
        ("dkim", f"s1._domainkey.{GOOD}"),
        ("ptr", "127.0.0.1"),
        ("dnsbl", f"127.0.0.1 on {LISTED_ZONE}"),
        ("dnsbl", f"127.0.0.1 on {CLEAN_ZONE}"),
        ("ptr", "fd00::25"),
        ("dnsbl", f"fd00::25 on {LISTED_ZONE}"),
        ("dnsbl", f"fd00::25 on {CLEAN_ZONE}"),
    ]
    assert [f for f in findings if f.status is not OK] == []
    details = {f.check: f.detail for f in findings}
    # mx + include + include (its record split mid-word across two strings) + a
    assert details["spf_lookups"] == "4 of 10 DNS lookups"
    assert details["dkim"] == "k=rsa, 2048-bit key"

    assert await report_account(cfg.account("good"), cfg.dns, as_json=True) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["check"], line["target"]) for line in lines] == [
        (f.check, f.target) for f in findings
    ]
    assert lines[0] == {
        "account": "good",
        "domain": GOOD,
        "check": "mx",
        "target": GOOD,
        "status": "ok",
        "detail": f"10 mail.{GOOD}",
        "remedy": "",
    }


async def test_bad_domain_has_exactly_the_expected_findings(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    cfg = config(tmp_path, dns_server.nameserver, [LISTED_ZONE, CLEAN_ZONE, REFUSING_ZONE])
    findings = await check_account(cfg.account("bad"), cfg.dns)
    assert [(f.check, f.target, f.status) for f in findings] == [
        ("mx", BAD, FAIL),
        ("spf", BAD, OK),
        ("spf_all", BAD, FAIL),
        ("spf_lookups", BAD, FAIL),
        ("dmarc", BAD, FAIL),
        ("dkim", f"gone._domainkey.{BAD}", FAIL),
        ("dkim", f"missing._domainkey.{BAD}", FAIL),
        ("ptr", "127.0.0.2", FAIL),
        ("dnsbl", f"127.0.0.2 on {LISTED_ZONE}", FAIL),
        ("dnsbl", f"127.0.0.2 on {CLEAN_ZONE}", OK),
        ("dnsbl", f"127.0.0.2 on {REFUSING_ZONE}", WARN),
        ("ptr", "127.0.0.3", FAIL),
        ("dnsbl", f"127.0.0.3 on {LISTED_ZONE}", OK),
        ("dnsbl", f"127.0.0.3 on {CLEAN_ZONE}", OK),
        ("dnsbl", f"127.0.0.3 on {REFUSING_ZONE}", WARN),
    ]
    by_target = {(f.check, f.target): f for f in findings}
    assert by_target["spf_all", BAD].detail.startswith("+all")
    assert "11 DNS lookups" in by_target["spf_lookups", BAD].detail
    assert "revoked" in by_target["dkim", f"gone._domainkey.{BAD}"].detail
    assert by_target["ptr", "127.0.0.2"].detail == "no reverse DNS (PTR)"
    assert f"elsewhere.{BAD} does not resolve back" in by_target["ptr", "127.0.0.3"].detail
    # listed: the code and the list's own TXT reason; refused: never reported as listed
    listed = by_target["dnsbl", f"127.0.0.2 on {LISTED_ZONE}"]
    assert listed.detail == f"listed: 127.0.0.2: {LISTED_REASON}"
    refused = by_target["dnsbl", f"127.0.0.2 on {REFUSING_ZONE}"]
    assert "127.255.255.254" in refused.detail and "not a listing" in refused.detail
    assert all(f.remedy for f in findings if f.status is not OK)
    assert exit_code(findings) == 2


def closed_port() -> int:
    """A UDP port nothing listens on (bound, read, released)."""
    with socket.socket(type=socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_resolver_is_one_error_line(tmp_path: Path, capsys) -> None:
    port = closed_port()
    cfg = config(tmp_path, ("127.0.0.1", port), [LISTED_ZONE])
    cfg = cfg.model_copy(update={"dns": cfg.dns.model_copy(update={"timeout": 0.5})})
    assert await report_account(cfg.account("good"), cfg.dns, as_json=False) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert f"127.0.0.1:{port}" in captured.err and "cannot look anything up" in captured.err

    assert await report_account(cfg.account("good"), cfg.dns, as_json=True) == 3
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["check"] == "resolver" and json.loads(line)["status"] == "error"
