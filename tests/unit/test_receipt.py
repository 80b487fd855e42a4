"""The receiver's verdicts read from header layouts of Gmail, Outlook, Yahoo and Postfix.

The fixtures in tests/unit/receipts are written after the shapes these providers use (authserv-id
or none, folding, comments, their TLS notes, their spam headers), with invented hosts and ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from monitor.core.receipt import (
    Check,
    auth_json,
    hops_json,
    parse_receipt,
    receipt_from_json,
    spam_json,
)
from monitor.core.received import stamped_at

FIXTURES = Path(__file__).parent / "receipts"
SENDER = "canary.example.org"


def headers(name: str) -> Message:
    # The same parser the IMAP adapter uses for fetched headers.
    return BytesHeaderParser(policy=policy.compat32).parsebytes((FIXTURES / name).read_bytes())


def at(second: int) -> datetime:
    return datetime(2026, 12, 2, 10, 0, second, tzinfo=UTC)


def test_gmail_topmost_results_count_and_forged_lower_ones_do_not():
    receipt = parse_receipt(headers("gmail.txt"))
    auth = receipt.auth
    assert auth is not None and auth.authserv_id == "mx.google.com"
    assert auth.spf == Check("pass", SENDER)  # the sender's own "spf=fail" header is ignored
    assert auth.dkim == (Check("pass", SENDER, "mc2026"),)
    assert auth.dmarc == Check("pass", SENDER)
    assert auth.arc == Check("none")

    assert [h.at for h in receipt.hops] == [at(1), at(2), at(3)]  # -0800 (PST) made UTC
    assert [h.delay_seconds for h in receipt.hops] == [None, 1.0, 1.0]
    external = receipt.first_external
    assert external is receipt.hops[1]
    assert (external.from_ip, external.by_host) == ("185.12.64.10", "mx.google.com")
    assert (external.tls, external.tls_version) == (True, "TLSv1.3")
    assert receipt.hops[0].from_ip == "192.168.10.23" and not receipt.hops[0].external
    assert receipt.spam_headers == ()


def test_outlook_without_authserv_id_and_its_spam_verdicts():
    receipt = parse_receipt(headers("outlook.txt"))
    auth = receipt.auth
    assert auth is not None and auth.authserv_id is None
    assert (auth.spf, auth.dmarc) == (Check("pass", SENDER), Check("pass", SENDER))
    assert auth.dkim == (Check("pass", SENDER),)
    assert dict(auth.other) == {"compauth": "pass"}

    spam = dict(receipt.spam_headers)
    assert spam["X-MS-Exchange-Organization-SCL"] == "1"
    assert "SFV:NSPM" in spam["X-Forefront-Antispam-Report"]
    assert spam["X-Microsoft-Antispam"].startswith("BCL:0")
    assert not any(name.endswith("ExpirationStartTime") for name in spam)

    assert len(receipt.hops) == 5
    assert receipt.first_external is receipt.hops[1]
    assert receipt.hops[1].by_host == "BN2PEPF000044A8.mail.protection.outlook.com"
    assert [h.tls_version for h in receipt.hops[1:4]] == ["TLSv1.3", "TLSv1.3", "TLSv1.2"]
    assert receipt.hops[4].protocol == "HTTPS" and receipt.hops[4].tls is True
    assert receipt.hops[4].at == at(5)  # a date folded over two lines
    assert not any(h.clock_skew for h in receipt.hops)


def test_yahoo_clock_skew_is_flagged_not_reported_as_negative_delay():
    receipt = parse_receipt(headers("yahoo.txt"))
    auth = receipt.auth
    assert auth is not None and auth.authserv_id.endswith(".yahoo.com")
    assert auth.dmarc == Check("fail", SENDER)  # "dmarc=fail(p=…)" and a trailing ";"
    assert dict(receipt.spam_headers) == {"X-YahooFilteredBulk": "185.12.64.10"}

    sender_hop, yahoo_front, yahoo_store = receipt.hops
    assert sender_hop.at == at(41)  # the sending server's clock runs 39 s ahead
    assert yahoo_front.clock_skew and yahoo_front.delay_seconds is None
    assert yahoo_store.delay_seconds == 0.0 and not yahoo_store.clock_skew
    assert receipt.first_external is yahoo_front and yahoo_front.from_ip == "185.12.64.10"
    assert all(h.delay_seconds is None or h.delay_seconds >= 0 for h in receipt.hops)


def test_postfix_site_merges_its_filters_headers_and_keeps_spam_scores():
    receipt = parse_receipt(headers("postfix.txt"))
    auth = receipt.auth
    assert auth is not None and auth.authserv_id == "mx.example.net"
    # opendmarc, opendkim and policyd-spf each wrote their own header
    assert auth.spf == Check("pass", SENDER)
    assert auth.dkim == (Check("pass", SENDER, "mc2026"),)
    assert auth.dmarc == Check("pass", SENDER)

    spam = dict(receipt.spam_headers)
    assert spam["X-Spam-Flag"] == "NO" and spam["X-Spam-Score"] == "-0.1"
    assert spam["X-Spam-Status"].startswith("No, score=-0.1 required=5.0 tests=DKIM_SIGNED")
    assert spam["X-Rspamd-Action"] == "no action"
    assert spam["X-Spamd-Result"].startswith("default: False [-1.20 / 15.00]")

    protocols = [(h.protocol, h.tls) for h in receipt.hops]
    assert protocols == [("ESMTPSA", True), ("ESMTPS", True), ("ESMTP", False), ("LMTP", False)]
    assert receipt.hops[1].tls_version == "TLSv1.3" and receipt.first_external is receipt.hops[1]
    assert receipt.hops[2].from_ip == "127.0.0.1" and not receipt.hops[2].external


@pytest.mark.parametrize("name", ["gmail.txt", "outlook.txt", "yahoo.txt", "postfix.txt"])
def test_stored_shapes_give_the_same_receipt_back(name):
    receipt = parse_receipt(headers(name))
    stored = (auth_json(receipt.auth), hops_json(receipt.hops), spam_json(receipt))
    assert receipt_from_json(*stored) == receipt


def test_odd_headers_are_left_out_never_raised():
    message = Message()
    message["Authentication-Results"] = "this is ; not = (an (unclosed comment"
    message["Authentication-Results"] = "mx.example.net; none"
    message["Received"] = "from (((( by"
    message["Received"] = "by mx.example.net with ESMTP; not a date at all"
    message["X-Spam-Status"] = "Yes, score=" + "9" * 5000
    receipt = parse_receipt(message)
    assert receipt.auth is None
    assert [h.at for h in receipt.hops] == [None, None]
    assert receipt.first_external is None
    assert len(dict(receipt.spam_headers)["X-Spam-Status"]) == 2000
    assert parse_receipt(Message()) == receipt_from_json(None, [], None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Folded, with a zone offset and a trailing comment: the moment in UTC.
        ("from a by mx.example.test; Wed, 2 Dec 2026\r\n 11:00:07 +0100 (CET)", at(7)),
        ("from a by mx.example.test; 2 Dec 2026 10:00:09 -0000", at(9)),  # no zone: UTC
        ("from a by mx.example.test; Wed, 2 Dec 2026 10:00:07 GMT; x", None),  # after last ;
        ("from a by mx.example.test with LMTP id 42", None),  # no ";": no date
        ("from a by mx.example.test; yesterday", None),
    ],
)
def test_the_date_a_server_stamped_on_its_received_line(value, expected):
    assert stamped_at(value) == expected
