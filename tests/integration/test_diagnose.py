"""`mailcanary diagnose` against real servers: the harness's Postfix + Dovecot for the account
shapes it has, aiosmtpd and tiny asyncio servers for the failures it cannot produce."""

from __future__ import annotations

import io
import json
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import pytest
import trustme
from pydantic import SecretStr
from rich.console import Console

from monitor.cli.diagnose import render
from monitor.config.load import load_config
from monitor.config.schema import Account, Endpoint
from monitor.core.models import Security
from monitor.diagnose.run import TEST_HEADER, Diagnosis, diagnose, document, remedy_for
from monitor.harness.demo import write_config
from tests.integration.test_smtp_faults import PASSWORD, Mailbox, aiosmtpd_server, raw_server

STACK_WAIT = 20.0  # seconds the self-test may take to land (it takes ~0.1 s)


def steps(d: Diagnosis, service: str, name: str) -> list:
    return [s for s in d.steps if (s.service, s.step) == (service, name)]


def only(d: Diagnosis, service: str, name: str, target: str | None = None):
    found = [s for s in steps(d, service, name) if target in (None, s.target)]
    assert len(found) == 1, (service, name, target, [s.target for s in found])
    return found[0]


def shown(d: Diagnosis) -> str:
    out = io.StringIO()
    render(d, Console(file=out, width=400, color_system=None))
    return out.getvalue()


# ---------------------------------------------------------------- the real mail stack


@pytest.fixture
def stack_accounts(mailstack, tmp_path):
    cfg = load_config(write_config(mailstack, tmp_path, routes=[]))
    ports = {
        "smtp": [mailstack.submission_port, mailstack.smtps_port],
        "imap": [mailstack.imaps_port, mailstack.imap_port],
    }
    return cfg, ports


@pytest.mark.mailstack
async def test_alice_passes_every_step_and_her_test_message_lands_in_her_inbox(
    mailstack, stack_accounts
):
    cfg, ports = stack_accounts
    alice = cfg.account("alice")
    d = await diagnose(alice, send_test=True, ports=ports, wait=STACK_WAIT)

    assert d.exit_code == 0, shown(d)
    assert [s for s in d.steps if s.ok is not True] == []
    assert d.suggestions == []
    host, sub, smtps = "127.0.0.1", mailstack.submission_port, mailstack.smtps_port
    offers = {s.target: s.data for s in steps(d, "smtp", "offers")}
    assert offers[f"{host}:{sub}"]["speaks"] == "starttls"
    assert offers[f"{host}:{smtps}"]["speaks"] == "tls"
    assert all(
        "PLAIN" in o["auth"] and o["size"] and "8BITMIME" in o["extensions"]
        for o in offers.values()
    )
    imap_offers = {s.target: s.data["speaks"] for s in steps(d, "imap", "offers")}
    assert imap_offers == {
        f"{host}:{mailstack.imaps_port}": "tls",
        f"{host}:{mailstack.imap_port}": "starttls",
    }
    for cert in steps(d, "smtp", "certificate") + steps(d, "imap", "certificate"):
        assert cert.data["trusted"] and cert.data["name_matches"] and cert.data["days_left"] > 300
    assert {s.detail for s in steps(d, "smtp", "tls_version")} == {"TLSv1.3"}

    token = only(d, "smtp", "self_test").data["token"]
    assert only(d, "imap", "self_test").data["folder"] == "INBOX"
    landed = [message_from_bytes(raw) for raw in mailstack.list_messages("alice", "INBOX")]
    assert [m["Subject"] for m in landed if m[TEST_HEADER] == token] == [
        f"mailcanary diagnose test {token}"
    ]

    text = json.dumps(document(d), ensure_ascii=False)
    assert mailstack.users["alice"].password not in text + shown(d)
    parsed = json.loads(text)
    assert parsed["account"] == "alice" and parsed["exit_code"] == 0 and parsed["suggestions"] == []
    fields = "service step target ok required detail notes failure remedy data"
    assert set(parsed["steps"][0]) == set(fields.split())


@pytest.mark.mailstack
@pytest.mark.parametrize(
    ("port_name", "security", "advice"),
    [("submission_port", Security.TLS, "starttls"), ("smtps_port", Security.STARTTLS, "tls")],
)
async def test_the_wrong_security_for_a_port_gets_the_right_one_suggested(
    mailstack, stack_accounts, port_name, security, advice
):
    cfg, ports = stack_accounts
    port = getattr(mailstack, port_name)
    smtp = Endpoint(host="127.0.0.1", port=port, security=security, timeout=5)
    d = await diagnose(
        cfg.account("alice").model_copy(update={"smtp": smtp, "imap": None}), ports=ports
    )

    expected = f"{port} offers {'STARTTLS' if advice == 'starttls' else 'implicit TLS'}; "
    expected += f'you asked for {security.value} on {port} — use security = "{advice}"'
    assert d.suggestions == [f"smtp: {expected}"]
    offers = only(d, "smtp", "offers", f"127.0.0.1:{port}")
    assert (offers.ok, offers.required, offers.remedy) == (False, True, expected)
    assert only(d, "smtp", "login").ok is None
    assert d.exit_code == 2


@pytest.mark.mailstack
async def test_an_untrusted_certificate_is_told_apart_from_a_wrong_name(mailstack, stack_accounts):
    cfg, ports = stack_accounts
    d = await diagnose(cfg.account("alice-no-ca"), ports={**ports, "smtp": []})

    cert = only(d, "smtp", "certificate")
    assert (cert.ok, cert.required, cert.failure.kind) == (False, True, "tls_failed")
    assert cert.data["trusted"] is False and cert.data["name_matches"] is True
    assert "unable to get local issuer certificate" in cert.detail
    assert "mailcanary harness" in cert.data["issuer"] and "days left" in cert.detail
    assert "ca_file" in cert.remedy
    assert only(d, "smtp", "login").ok is None and d.exit_code == 2
    lines = shown(d).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("✗ smtp certificate"))
    assert lines[at + 1].startswith("    → ") and "ca_file" in lines[at + 1]
    assert lines[at + 2] == f"      subject {cert.data['subject']}"


@pytest.mark.mailstack
async def test_a_wrong_password_fails_login_with_the_535_remedy(mailstack, stack_accounts):
    cfg, ports = stack_accounts
    d = await diagnose(cfg.account("mallory"), ports={**ports, "smtp": []})

    login = only(d, "smtp", "login")
    assert (login.ok, login.failure.kind, login.failure.code) == (False, "auth_failed", 535)
    assert login.remedy == remedy_for(login.failure)
    assert "not-the-password" not in json.dumps(document(d)) + shown(d)
    assert d.exit_code == 2


@pytest.mark.mailstack
@pytest.mark.parametrize(
    ("user", "spam", "raw", "flags", "reason"),
    [
        ("dmitri", "Спам", "&BCEEPwQwBDw-", ["\\Junk"], "special-use \\Junk flag on 'Спам'"),
        ("yuki", "Bulk Mail", "Bulk Mail", [], "well-known spam folder name 'Bulk Mail'"),
    ],
)
async def test_folders_are_listed_with_roles_and_the_spam_folder_choice_explained(
    stack_accounts, user, spam, raw, flags, reason
):
    cfg, ports = stack_accounts
    d = await diagnose(cfg.account(user), ports={**ports, "imap": []})

    assert d.exit_code == 0, shown(d)
    folders = {f["name"]: f for f in only(d, "imap", "folders").data["folders"]}
    assert set(folders) == {"INBOX", spam}
    assert (folders[spam]["raw"], folders[spam]["special_use"], folders[spam]["spam"]) == (
        raw,
        flags,
        True,
    )
    chosen = only(d, "imap", "spam_folder")
    assert chosen.data == {"folder": spam, "reason": reason}
    assert f"{spam} {' '.join(flags)}".replace("  ", " ") in " ".join(shown(d).split())


@pytest.mark.mailstack
async def test_imap_login_refused(stack_accounts):
    cfg, ports = stack_accounts
    d = await diagnose(cfg.account("bob-wrong-imap"), ports={**ports, "imap": []})

    login = only(d, "imap", "login")
    assert (login.ok, login.required, login.failure.kind) == (False, True, "auth_failed")
    assert "AUTHENTICATIONFAILED" in login.detail and login.remedy
    assert [s.ok for s in d.steps if s.step in ("folders", "spam_folder")] == [None, None]
    assert d.exit_code == 2


# ---------------------------------------------------------------- aiosmtpd and raw peers

SHORT = 0.5


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ago = datetime.now(UTC) - timedelta(days=30)
    certificates = {
        "good": ca.issue_cert("127.0.0.1"),
        "wrong_host": ca.issue_cert("wrong.example"),
        "expired": ca.issue_cert("127.0.0.1", not_before=ago, not_after=ago + timedelta(days=1)),
    }
    contexts = {}
    for flaw, cert in certificates.items():
        contexts[flaw] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(contexts[flaw])
    return ca_file, contexts


def account(port: int, ca_file=None, *, security=Security.STARTTLS, host="127.0.0.1", timeout=5.0):
    endpoint = Endpoint(host=host, port=port, security=security, timeout=timeout)
    return Account(
        name="probe", email="alice@example.test", username="alice",
        password=SecretStr(PASSWORD), smtp=endpoint, ca_files=(ca_file,) if ca_file else (),
    )  # fmt: skip


def closed_port() -> socket.socket:
    """A bound, never-listening socket: its port refuses connections while it is held."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_a_refused_greeting_is_shown_with_its_remedy():
    async def refuse(reader, writer):
        writer.write(b"421 4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred\r\n")
        await writer.drain()

    async with raw_server(refuse) as port:
        d = await diagnose(account(port), ports={"smtp": []})

    offers = only(d, "smtp", "offers")
    assert (offers.ok, offers.failure.kind, offers.failure.code) == (False, "greeting_refused", 421)
    assert offers.remedy == remedy_for(offers.failure) and "TSS04" in offers.detail
    assert d.suggestions == [] and d.exit_code == 2


async def test_starttls_not_offered(pki):
    ca_file, _ = pki
    async with aiosmtpd_server(Mailbox()) as port:  # no TLS context: no STARTTLS
        d = await diagnose(account(port, ca_file), ports={"smtp": []})

    offers = only(d, "smtp", "offers")
    assert (offers.ok, offers.failure.kind, offers.data["speaks"]) == (
        False,
        "starttls_unavailable",
        "none",
    )
    assert "no STARTTLS" in offers.detail and offers.remedy
    assert steps(d, "smtp", "certificate") == [] and only(d, "smtp", "login").ok is None


@pytest.mark.parametrize("flaw", ["wrong_host", "expired"])
async def test_certificate_flaws_from_a_trusted_ca(pki, flaw):
    ca_file, contexts = pki
    async with aiosmtpd_server(Mailbox(), starttls=contexts[flaw]) as port:
        d = await diagnose(account(port, ca_file), ports={"smtp": []})

    cert = only(d, "smtp", "certificate")
    assert (cert.ok, cert.required, cert.failure.kind) == (False, True, "tls_failed")
    if flaw == "wrong_host":
        assert (cert.data["trusted"], cert.data["name_matches"]) == (True, False)
        assert cert.data["names"] == ("wrong.example",) and "not valid for 127.0.0.1" in cert.detail
        assert "wrong.example" in cert.remedy
    else:
        assert (cert.data["expired"], cert.data["name_matches"]) == (True, True)
        assert cert.data["days_left"] == -29 and "expired 29 days ago" in cert.detail
    assert d.exit_code == 2


async def test_a_closed_port_is_optional_unless_configured_and_then_another_is_suggested(pki):
    ca_file, contexts = pki
    mailbox = Mailbox()
    with closed_port() as closed:
        shut = closed.getsockname()[1]
        async with aiosmtpd_server(mailbox, starttls=contexts["good"]) as port:
            works = await diagnose(account(port, ca_file), ports={"smtp": [shut]})
            broken = await diagnose(account(shut, ca_file), ports={"smtp": [port]})

    elsewhere = only(works, "smtp", "port", f"127.0.0.1:{shut}")
    assert (elsewhere.ok, elsewhere.required, elsewhere.failure.kind) == (
        False,
        False,
        "connect_failed",
    )
    assert elsewhere.remedy and only(works, "smtp", "login").ok is True
    assert works.exit_code == 1 and mailbox.logins == [("alice", PASSWORD)]

    expected = (
        f'{shut} does not answer; {port} offers STARTTLS — use port = {port}, security = "starttls"'
    )
    configured = only(broken, "smtp", "port", f"127.0.0.1:{shut}")
    assert (configured.ok, configured.required, configured.remedy) == (False, True, expected)
    assert broken.suggestions == [f"smtp: {expected}"] and broken.exit_code == 2


async def test_a_silent_server_times_out_within_the_endpoint_timeout():
    async def say_nothing(reader, writer):
        pass

    async with raw_server(say_nothing) as port:
        started = time.monotonic()
        d = await diagnose(account(port, timeout=SHORT), ports={"smtp": []})
        took = time.monotonic() - started

    offers = only(d, "smtp", "offers")
    assert (offers.ok, offers.failure.kind) == (False, "timeout")
    assert only(d, "smtp", "port").ok is True and d.exit_code == 2
    assert took < 10 * SHORT  # bounded by the endpoint's timeout, not the 60 s default


async def test_a_host_that_does_not_resolve():
    # glibc refuses a label starting with "-" before asking any DNS server (checked with strace:
    # no packet leaves), yet it is the same gaierror path as an NXDOMAIN.
    d = await diagnose(account(587, host="-nowhere.invalid"), ports={"smtp": []})

    resolve = only(d, "smtp", "resolve")
    assert (resolve.ok, resolve.failure.kind, resolve.failure.transient) == (
        False,
        "dns_failed",
        False,
    )
    assert "-nowhere.invalid" in resolve.detail and resolve.remedy
    assert [s.step for s in d.steps] == ["resolve", "login"] and d.exit_code == 2
