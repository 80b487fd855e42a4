"""The reply catalogue: every failure kind has advice, and the most specific entry wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.catalogue import FALLBACK, KIND_ENTRIES, advise, entries, is_specific
from monitor.core.failures import KINDS, certificate_note, classify_error, classify_reply
from monitor.core.models import Failure, Phase

# Kinds the IMAP adapter, the watcher and the probe runner raise besides the SMTP ones.
WATCH_KINDS = {"server_unavailable", "select_failed", "spam_folder_missing", "watcher_error"}
WATCH_KINDS |= {"account_removed", "interrupted"}


@pytest.mark.parametrize("kind", sorted(KINDS | WATCH_KINDS))
def test_every_kind_has_its_own_advice(kind):
    failure = Failure(kind, Phase.CONNECT, False, "")
    advice = advise(failure)
    assert advice != FALLBACK
    assert any(e.kinds == frozenset({kind}) for e in KIND_ENTRIES)


def test_an_unknown_kind_gets_the_fallback_and_nothing_raises():
    assert advise(Failure("made_up", Phase.FETCH, True, "")) == FALLBACK


def test_no_entry_repeats_another_entrys_conditions():
    conditions = [
        (e.kinds, e.phases, e.codes, e.enhanced, e.text.pattern if e.text else None)
        for e in entries()
    ]
    assert len(conditions) == len(set(conditions))
    assert all(e.says.explanation.strip() and e.says.remedy.strip() for e in entries())


def reply(phase: Phase, line: str) -> Failure:
    code, text = line.split(" ", 1)
    return classify_reply(phase, int(code), text)


@pytest.mark.parametrize(
    ("failure", "phrase"),
    [
        # Gmail's own meaning of x.7.27 beats the registry's (null MX).
        (reply(Phase.DATA, "550 5.7.27 SPF check failed. a1si12 - gsmtp"), "SPF check failed"),
        (reply(Phase.DATA, "550 5.7.27 sender has a null MX"), "null MX"),
        # Microsoft's x.7.139 told apart by its wording; without a known wording, the policy.
        (
            reply(
                Phase.AUTH,
                "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.",
            ),
            "credentials were refused",
        ),
        (reply(Phase.AUTH, "535 5.7.139 Authentication unsuccessful"), "security policy"),
        (reply(Phase.AUTH, "535 5.7.3 Authentication unsuccessful"), "Microsoft"),
        (
            reply(
                Phase.RCPT_TO,
                "550 5.7.515 Access denied, sending domain doesn't meet the"
                " required authentication level",
            ),
            "high-volume senders",
        ),
        (
            reply(
                Phase.DATA, "550 5.7.1 Unfortunately, messages from [1.2.3.4] weren't sent. (S3150)"
            ),
            "Outlook.com",
        ),
        (
            reply(
                Phase.GREETING,
                "554 5.7.9 Message not accepted for policy reasons. See"
                " https://postmaster.yahooinc.com/error-codes",
            ),
            "Yahoo refused",
        ),
        (
            reply(
                Phase.GREETING,
                "421 4.7.0 [TS03] All messages from 1.2.3.4 will be permanently deferred",
            ),
            "permanently deferred",
        ),
        # A provider's text beats a generic code; a code beats the phase's plain entry.
        (reply(Phase.RCPT_TO, "451 4.7.1 Greylisted for 300 seconds"), "greylisting"),
        (reply(Phase.MAIL_FROM, "553 5.1.8 Sender domain does not exist"), "does not resolve"),
        (
            classify_error(Phase.TLS, "tls_failed", "TLS handshake failed: WRONG_VERSION_NUMBER"),
            "does not speak TLS",
        ),
        (
            classify_error(Phase.RESOLVE, "dns_failed", "[Errno -2] Name or service not known"),
            "does not exist in DNS",
        ),
        (
            Failure(
                "auth_failed", Phase.IMAP_AUTH, False, "login refused: NO [AUTHENTICATIONFAILED]"
            ),
            "IMAP server refused",
        ),
    ],
)
def test_the_most_specific_entry_wins(failure, phrase):
    assert is_specific(failure)
    assert phrase.lower() in advise(failure).explanation.lower()


def test_certificate_note_says_when_in_whole_days():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert (
        certificate_note("CN=mx.example.test", now + timedelta(days=34, hours=3), now)
        == "subject CN=mx.example.test, expires 2027-01-04 (in 34 days)"
    )
    assert certificate_note("CN=a", now - timedelta(days=1, hours=2), now).endswith(
        "expired 2026-11-30 (1 day ago)"
    )
    assert certificate_note("CN=a", now + timedelta(hours=2), now).endswith("(today)")
