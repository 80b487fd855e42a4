"""Reply classification on reply shapes real servers send (texts as aiosmtplib hands them over:
code stripped, continuation lines joined with newlines)."""

from __future__ import annotations

import pytest

from monitor.core import failures
from monitor.core.failures import (
    ERROR_KINDS,
    KINDS,
    classify_error,
    classify_reply,
    parse_enhanced,
    parse_queue_id,
)
from monitor.core.models import Phase

GMAIL_UNAUTHENTICATED = (
    "5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires\n"
    "5.7.26 all senders to authenticate with either SPF or DKIM.\n"
    "5.7.26  Learn more at https://support.google.com/mail/answer/81126#authentication "
    "d9443c01a7336-1e0c0a5b9f2si1pla.215 - gsmtp"
)
YAHOO_TSS04 = (
    "4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume "
    "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"
)
MICROSOFT_BASIC_AUTH = (
    "5.7.139 Authentication unsuccessful, basic authentication is disabled. "
    "[BN0PR04CA0123.namprd04.prod.outlook.com 2024-05-01T10:00:00.000Z 08DC6A]"
)
POSTGREY = (
    "4.7.1 <bob@example.test>: Recipient address rejected: Greylisted, "
    "see http://postgrey.schweikert.ch/help/example.test.html"
)

REPLIES = [
    # (phase, code, text, kind, transient, enhanced)
    (Phase.DATA, 550, GMAIL_UNAUTHENTICATED, "rejected", False, "5.7.26"),
    (Phase.GREETING, 421, YAHOO_TSS04, "greeting_refused", True, "4.7.0"),
    (Phase.RCPT_TO, 421, YAHOO_TSS04, "deferred", True, "4.7.0"),
    (
        Phase.GREETING,
        554,
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
        "greeting_refused",
        False,
        "5.7.1",
    ),
    (Phase.AUTH, 535, MICROSOFT_BASIC_AUTH, "auth_failed", False, "5.7.139"),
    (Phase.AUTH, 535, "5.7.3 Authentication unsuccessful", "auth_failed", False, "5.7.3"),
    (Phase.AUTH, 535, "5.7.8 Error: authentication failed: ", "auth_failed", False, "5.7.8"),
    (
        Phase.AUTH,
        534,
        "5.7.9 Application-specific password required. Learn more at\n"
        "5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor",
        "auth_failed",
        False,
        "5.7.9",
    ),
    (Phase.AUTH, 454, "4.7.0 Temporary authentication failure", "auth_failed", True, "4.7.0"),
    (Phase.AUTH, 530, "5.7.0 Must issue a STARTTLS command first", "auth_failed", False, "5.7.0"),
    (Phase.MAIL_FROM, 535, "5.7.8 Bad credentials", "auth_failed", False, "5.7.8"),
    (
        Phase.MAIL_FROM,
        530,
        "5.7.0 Authentication Required. Learn more at https://support.google.com/mail/?p=WantAuthError",
        "auth_required",
        False,
        "5.7.0",
    ),
    (
        Phase.MAIL_FROM,
        530,
        "5.7.57 Client not authenticated to send mail. [AM0PR02CA0001.eurprd02.prod.outlook.com]",
        "auth_required",
        False,
        "5.7.57",
    ),
    (
        Phase.TLS,
        454,
        "4.7.0 TLS not available due to local problem",
        "starttls_unavailable",
        True,
        "4.7.0",
    ),
    (
        Phase.EHLO,
        550,
        "5.7.1 <localhost>: Helo command rejected: Host not found",
        "ehlo_refused",
        False,
        "5.7.1",
    ),
    (Phase.RCPT_TO, 451, POSTGREY, "deferred", True, "4.7.1"),
    (
        Phase.RCPT_TO,
        550,
        "5.1.1 <nobody@example.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
        "rejected",
        False,
        "5.1.1",
    ),
    (
        Phase.RCPT_TO,
        450,
        "4.2.1 The user you are trying to contact is receiving mail too quickly.",
        "deferred",
        True,
        "4.2.1",
    ),
    (
        Phase.RCPT_TO,
        452,
        "4.2.2 The email account that you tried to reach is over quota.",
        "deferred",
        True,
        "4.2.2",
    ),
    (Phase.RCPT_TO, 552, "5.5.3 Too many recipients", "deferred", True, "5.5.3"),
    (Phase.DATA, 552, "5.3.4 Message size exceeds fixed limit", "message_refused", False, "5.3.4"),
    (Phase.DATA, 554, "5.7.1 Message rejected as spam", "message_refused", False, "5.7.1"),
    (Phase.DATA, 451, "4.3.0 Error: queue file write error", "deferred", True, "4.3.0"),
    (
        Phase.DATA,
        550,
        "5.7.515 Access denied, sending domain example.com doesn't meet the "
        "required authentication level.",
        "rejected",
        False,
        "5.7.515",
    ),
    (
        Phase.MAIL_FROM,
        553,
        "5.7.1 <mallory@example.test>: Sender address rejected: "
        "not owned by user alice@example.test",
        "sender_refused",
        False,
        "5.7.1",
    ),
    (Phase.MAIL_FROM, 550, "5.7.1 Sender denied", "sender_refused", False, "5.7.1"),
    (Phase.MAIL_FROM, 451, "4.7.1 Sender temporarily blocked", "deferred", True, "4.7.1"),
    (Phase.MAIL_FROM, 501, "5.1.7 Bad sender address syntax", "rejected", False, "5.1.7"),
    (Phase.MAIL_FROM, 354, "End data with <CR><LF>.<CR><LF>", "protocol_error", False, None),
]


@pytest.mark.parametrize(("phase", "code", "text", "kind", "transient", "enhanced"), REPLIES)
def test_classify_reply(phase, code, text, kind, transient, enhanced):
    failure = classify_reply(phase, code, text)

    assert (failure.kind, failure.transient, failure.enhanced) == (kind, transient, enhanced)
    assert failure.phase is phase
    assert failure.code == code
    assert failure.message == text.strip()


@pytest.mark.parametrize(
    ("text", "enhanced"),
    [
        ("2.0.0 Ok: queued as 4Xyz", "2.0.0"),
        ("5.7.139 Authentication unsuccessful", "5.7.139"),
        ("  4.7.0 [TSS04] deferred", "4.7.0"),
        ("5.1.10 RESOLVER.ADR.RecipientNotFound", "5.1.10"),
        ("5.7.8\nsecond line", "5.7.8"),
        ("5.7.8", "5.7.8"),
        ("Ok: queued as 4Xyz", None),
        ("Greylisted 4.7.1 later", None),  # only a leading code counts
        ("3.1.1 not a status class", None),
        ("5.7.1234 too many digits", None),
        ("5.7.8a glued to a word", None),
        ("", None),
    ],
)
def test_parse_enhanced(text, enhanced):
    assert parse_enhanced(text) == enhanced


@pytest.mark.parametrize(
    ("text", "queue_id"),
    [
        ("2.0.0 Ok: queued as 4TqGdV0m7Kz1wXQ", "4TqGdV0m7Kz1wXQ"),  # Postfix, long ids
        ("2.0.0 Ok: queued as 3F1C2A0B12", "3F1C2A0B12"),  # Postfix, short ids
        ("Ok: queued as 3xNdV-fJQ5eUJ8W5Lh1tRg", "3xNdV-fJQ5eUJ8W5Lh1tRg"),  # SendGrid
        ("OK id=1tAbCd-000123-Xy", "1tAbCd-000123-Xy"),  # Exim
        (
            "2.0.0 OK  1712345678 d9443c01a7336-1e0c0a5b9f2si123456pla.215 - gsmtp",
            "d9443c01a7336-1e0c0a5b9f2si123456pla.215",
        ),  # Gmail
        (
            "2.6.0 <canary.abc@example.test> [InternalId=123456789012, Hostname=EX01.corp.example] "
            "2345 bytes in 0.045, 50.1 KB/sec Queued mail for delivery",
            "123456789012",
        ),  # Exchange
        (
            "Ok 0100018e1d2c3b4a-5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f-000000",
            "0100018e1d2c3b4a-5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f-000000",
        ),  # Amazon SES: no marker, an id-looking token
        ("ok 1712345678 qp 4242", "4242"),  # qmail
        ("ok dirdel", None),  # Yahoo gives none
        ("OK", None),
        ("2.0.0 Message accepted for delivery", None),
        ("2.0.0 OK mx1.example.com", None),  # a host name is not an id
        ("2.0.0 OK <20240501.abc123@host.example>", None),  # nor a Message-ID
    ],
)
def test_parse_queue_id(text, queue_id):
    assert parse_queue_id(text) == queue_id


@pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
def test_classify_error_uses_the_kind_default(kind):
    failure = classify_error(Phase.CONNECT, kind, "what happened")

    assert failure.transient is ERROR_KINDS[kind]
    assert (failure.kind, failure.phase, failure.message) == (kind, Phase.CONNECT, "what happened")
    assert failure.code is None and failure.enhanced is None


def test_classify_error_transient_can_be_overridden():
    assert classify_error(Phase.RESOLVE, "dns_failed", "EAI_AGAIN", transient=True).transient
    assert not classify_error(Phase.CONNECT, "connect_failed", "x", transient=False).transient


def test_classify_error_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="unknown failure kind"):
        classify_error(Phase.CONNECT, "connection_refused", "typo in a caller")


def test_every_kind_is_documented_in_the_module_table():
    doc = failures.__doc__ or ""
    missing = [kind for kind in sorted(KINDS) if f"| {kind} " not in doc]
    assert missing == []


def test_reply_classes_decide_transience_except_where_a_rule_says_so():
    for phase in Phase:
        for code in (421, 450, 451, 452, 454, 500, 530, 535, 550, 552, 553, 554):
            failure = classify_reply(phase, code, "")
            overridden = phase is Phase.RCPT_TO and code == 552
            assert failure.transient is (code < 500 or overridden), (phase, code)
