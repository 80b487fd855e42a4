"""The catalogue's advice and the receiver's verdicts, through the real stack and the CLI.

One `probe --json` run against the private Postfix + Dovecot; then `history --json` and the
database must say the same: for failures the same class, explanation and remedy; for the
canary to `vetted` (whose mail the stack's sieve stamps as a spam filter and an authenticator
would) the same Authentication-Results, Received hops and spam headers.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from monitor.core.catalogue import advise, is_specific
from monitor.core.models import Failure, Phase, Verdict
from monitor.harness.demo import write_config
from monitor.harness.dovecot import stamped_headers
from tests.integration.test_probe_e2e import mailcanary

pytestmark = pytest.mark.mailstack

ROUTES = [
    ("vetted", "alice", {"vetted": Verdict.INBOX}),
    ("trouble", "alice", {"reject": Verdict.SEND_FAILED, "greylist": Verdict.SEND_FAILED}),
    ("wrong-password", "mallory", {"bob": Verdict.SEND_FAILED}),
    ("untrusted-certificate", "alice-no-ca", {"bob": Verdict.SEND_FAILED}),
    ("mailbox-login-refused", "alice", {"bob-wrong-imap": Verdict.CHECK_FAILED}),
]
# What each failure must be explained as (a phrase of its specific entry).
EXPLAINED = {
    ("trouble", "reject"): ("rejected", "mailbox does not exist"),
    ("trouble", "greylist"): ("deferred", "greylisting"),
    ("wrong-password", "bob"): ("auth_failed", "credentials are invalid"),
    ("untrusted-certificate", "bob"): ("tls_failed", "not signed by a CA this machine trusts"),
    ("mailbox-login-refused", "bob-wrong-imap"): ("auth_failed", "IMAP server refused the login"),
}
RECEIPT = ("auth", "hops", "spam_headers")


def _failure(row: dict) -> Failure:
    return Failure(
        row["failure"],
        Phase(row["failure_phase"]),
        row["transient"],
        row["failure_message"],
        row["smtp_code"] if row["failure_phase"] not in ("imap_auth",) else None,
        row["smtp_enhanced"] if row["failure_phase"] not in ("imap_auth",) else None,
    )


def _stored(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT token, failure, failure_explanation, failure_remedy, auth_results, hops,"
            " spam_headers FROM probes"
        ).fetchall()
    return {
        r["token"]: {
            "failure": r["failure"],
            "explanation": r["failure_explanation"],
            "remedy": r["failure_remedy"],
            "auth": json.loads(r["auth_results"]) if r["auth_results"] else None,
            "hops": json.loads(r["hops"]) if r["hops"] else None,
            "spam_headers": json.loads(r["spam_headers"]) if r["spam_headers"] else None,
        }
        for r in rows
    }


def test_same_advice_and_receipt_in_probe_history_and_database(mailstack, tmp_path):
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'interval = "1m"\ndeadline = "20s"\npoll_interval = "2s"\n'
    )
    path = write_config(mailstack, tmp_path, routes=ROUTES, monitor=monitor)
    done = mailcanary("--config", str(path), "probe", "--json", "--deadline", "8s")
    assert done.returncode == 3, done.stderr  # check_failed is the worst verdict present
    rows = {(r["route"], r["to"]): r for r in map(json.loads, done.stdout.splitlines())}
    shown = mailcanary("--config", str(path), "history", "--json")
    assert shown.returncode == 0, shown.stderr
    history = {r["token"]: r for r in map(json.loads, shown.stdout.splitlines())}
    stored = _stored(tmp_path / "mc.db")
    assert len(rows) == len(history) == len(stored) == 6

    for key, (kind, phrase) in EXPLAINED.items():
        row = rows[key]
        assert row["failure"] == kind, row
        assert phrase in row["explanation"] and row["remedy"]
        # The catalogue's specific entry, not the kind's plain one, and what advise() says.
        failure = _failure(row)
        assert is_specific(failure)
        advice = advise(failure)
        assert (row["explanation"], row["remedy"]) == (advice.explanation, advice.remedy)
        for other in (history[row["token"]], stored[row["token"]]):
            same = ("failure", "explanation", "remedy")
            assert {k: other[k] for k in same} == {k: row[k] for k in same}
        assert all(row[k] is None for k in RECEIPT)

    # The refused certificate names itself: the stack's server certificate, fetched again.
    served = x509.load_pem_x509_certificate(Path(mailstack.tls.cert_file).read_bytes())
    message = rows[("untrusted-certificate", "bob")]["failure_message"]
    assert message.startswith("certificate verify failed: unable to get local issuer")
    expires = served.not_valid_after_utc.date().isoformat()
    assert f"; subject {served.subject.rfc4514_string()}, expires {expires} (in " in message

    vetted = rows[("vetted", "vetted")]
    assert vetted["verdict"] == "inbox" and vetted["failure"] is None
    assert vetted["explanation"] is None and vetted["remedy"] is None
    domain = mailstack.domain
    assert vetted["auth"] == {
        "authserv_id": f"mx.{domain}",
        "spf": {"result": "pass", "domain": domain},
        "dkim": [{"result": "fail", "domain": domain, "selector": "harness"}],
        "dmarc": {"result": "fail", "domain": domain},
        "arc": None,
        "other": {},
    }
    stamped = dict(stamped_headers(domain))
    del stamped["Authentication-Results"]
    assert vetted["spam_headers"] == stamped

    hops = vetted["hops"]
    # Postfix took it from us over TLS with AUTH, then handed it to Dovecot over LMTP.
    assert [h["with"] for h in hops] == ["ESMTPSA", "LMTP"]
    assert hops[0]["tls"] is True  # "ESMTPSA" says so (the harness's Postfix names no version)
    assert hops[0]["from_ip"] == "127.0.0.1" and hops[1]["tls"] is False
    assert not any(h["external"] or h["clock_skew"] for h in hops)  # loopback, one clock
    assert hops[0]["delay_seconds"] is None and hops[1]["delay_seconds"] >= 0
    # Received dates have whole seconds: each hop lies between planning the probe and its
    # arrival (Postfix stamps Received during the session, before DATA's 250 = sent_at).
    sent = datetime.fromisoformat(vetted["planned_at"]).replace(microsecond=0)
    arrived = datetime.fromisoformat(vetted["arrived_at"]) + timedelta(seconds=1)
    assert all(sent <= datetime.fromisoformat(h["at"]) <= arrived for h in hops)

    for other in (history[vetted["token"]], stored[vetted["token"]]):
        assert {k: other[k] for k in RECEIPT} == {k: vetted[k] for k in RECEIPT}

    # The table shows the remedy for a failure and the receiver's verdicts for a canary.
    table = mailcanary("--config", str(path), "history")
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert "spf=pass dkim=fail dmarc=fail" in text
