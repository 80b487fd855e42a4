"""HTML comes from the Jinja2 templates with autoescape: whatever a mail server says (an SMTP
reply, a folder or mailbox name) comes out as text, never as markup."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from monitor.alerts import message as alertmsg
from monitor.core.models import Role, Sighting, Verdict
from monitor.core.receipt import AuthResults, Check, Receipt
from monitor.dnscheck.history import DnsPosture
from monitor.dnscheck.policy import WARN, Finding
from monitor.reports.build import build
from monitor.reports.document import (
    Aggregates,
    FailureCount,
    HourCount,
    Mailbox,
)
from monitor.reports.html import render_html
from monitor.reports.model import days_period
from monitor.templates import environment, render, stylesheet
from tests.unit.test_alerts import REJECTED, AlertKind, firing, record

HOSTILE = "<script>alert(1)</script>"
WEEK = days_period(datetime(2026, 10, 19).date(), datetime(2026, 10, 25).date(), "UTC")


def hostile_report() -> str:
    start = WEEK.start
    rows = (
        HourCount("r", "x", start, Verdict.SEND_FAILED, 3),
        HourCount("r", "x", start + timedelta(hours=1), Verdict.SPAM, 2),
    )
    refused = FailureCount(
        route="r", recipient="x", verdict=Verdict.SEND_FAILED, kind="rejected", phase="rcpt_to",
        code=550, enhanced="5.7.1", transient=False, count=3, message=f"5.7.1 {HOSTILE} no",
    )  # fmt: skip
    report = build(
        WEEK,
        Aggregates(hours=rows, failures=(refused,)),
        mailboxes={"x": Mailbox(f"Evil {HOSTILE}", f"{HOSTILE}@example.org")},
        configured=[("r", "x")],
        now=WEEK.end + timedelta(hours=1),
        # A TXT record is whatever its owner wrote: DNS findings quote it.
        dns=[DnsPosture("a", "example.org", (Finding("dmarc", "x", WARN, HOSTILE),))],
    )
    return render_html(report, {"placement": 'cid:a"onerror="x'})


def test_a_reply_and_a_mailbox_name_with_a_script_come_out_escaped_in_the_report() -> None:
    page = hostile_report()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'src="cid:a&#34;onerror=&#34;x"' in page  # an attribute cannot be broken out of
    assert "Evil &lt;script&gt;" in page  # the provider's row
    assert page.count("&lt;script&gt;") >= 5  # reply, mailbox, provider (twice), DNS finding


def test_a_reply_and_a_folder_with_a_script_come_out_escaped_in_the_alert() -> None:
    hostile = replace(REJECTED, message=f"5.1.1 {HOSTILE}")
    alert = alertmsg.describe(
        firing(AlertKind.SEND_FAILED, record(Verdict.SEND_FAILED, failure=hostile)),
        mailbox=f"{HOSTILE}@example.org",
        instance="default",
    )
    spam = alertmsg.describe(
        firing(AlertKind.SPAM, record(Verdict.SPAM, delivery=1.0)), mailbox=None, instance="x"
    )
    spam["canary"]["folder"] = HOSTILE
    for body in (alertmsg.html_body(alert), alertmsg.html_body(spam)):
        assert "<script>" not in body and "&lt;script&gt;" in body


def test_every_page_gets_the_one_stylesheet_and_a_viewport() -> None:
    page = render("base.html")
    assert stylesheet() in page and 'name="viewport"' in page
    # The stylesheet is our own Markup: its quotes survive, unlike server text.
    assert '"Segoe UI"' in page
    assert environment().autoescape("x.html") and environment().autoescape("x.xml")


def test_the_report_mail_links_the_status_page_when_public_url_is_set() -> None:
    from monitor.reports.mail import report_message

    report = build(WEEK, Aggregates(), mailboxes={}, configured=[], now=WEEK.end)
    message = report_message(
        report,
        {},
        sender="ops@example.org",
        to="me@example.org",
        message_id="<1@example.org>",
        public_url="https://canary.example.org",
    )
    text, html = (part.get_content() for part in message.iter_parts())
    assert "Live: https://canary.example.org/\n" in text
    assert '<a href="https://canary.example.org/">' in html
    plain = report_message(
        report, {}, sender="ops@example.org", to="me@example.org", message_id="<1@example.org>"
    )
    assert "Live:" not in plain.as_string()


def spam_with_auth() -> dict:
    rec = record(Verdict.SPAM, delivery=1.0)
    receipt = Receipt(
        auth=AuthResults(
            "mx.google.com", Check("pass"), (Check("pass", "esp.example"),), Check("fail")
        )
    )
    seen = Sighting("t1", "Junk", Role.SPAM, 7, 1, rec.planned.planned_at, receipt=receipt)
    return alertmsg.describe(
        firing(AlertKind.SPAM, replace(rec, sighting=seen)), mailbox=None, instance="eu-1"
    )


def test_a_spam_alert_shows_the_receivers_content_filter_and_its_top_rules() -> None:
    rec = record(Verdict.SPAM, delivery=1.0)
    status = (
        "Yes, score=8.9 required=5.0 tests=DEAR_WINNER=3.1,HTML_IMAGE_ONLY_04=1.7,"
        "MIME_HTML_ONLY=0.1,ALL_TRUSTED=-1 autolearn=no"
    )
    receipt = Receipt(spam_headers=(("X-Spam-Status", status), ("X-Spam-Flag", "YES")))
    seen = Sighting("t1", "Junk", Role.SPAM, 7, 1, rec.planned.planned_at, receipt=receipt)
    alert = alertmsg.describe(
        firing(AlertKind.SPAM, replace(rec, sighting=seen)), mailbox=None, instance="eu-1"
    )
    line = "spamassassin 8.9/5 DEAR_WINNER +3.1, HTML_IMAGE_ONLY_04 +1.7, MIME_HTML_ONLY +0.1"
    assert alert["canary"]["content"] == line
    assert f"Content filter:   {line}\n" in alertmsg.text_body(alert)
    assert line in alertmsg.html_body(alert)
    # A canary without spam headers says nothing about content.
    assert spam_with_auth()["canary"]["content"] is None


def test_a_spam_alert_shows_what_the_receiver_made_of_spf_dkim_and_dmarc() -> None:
    alert = spam_with_auth()
    assert alert["canary"]["auth"] == {"spf": "pass", "dkim": "pass", "dmarc": "fail"}
    assert "Authentication:   spf=pass dkim=pass dmarc=fail\n" in alertmsg.text_body(alert)
    assert "spf=pass dkim=pass dmarc=fail" in alertmsg.html_body(alert)


def test_alert_times_are_local_with_utc_beside_and_commands_are_monospace() -> None:
    alert = spam_with_auth()  # T0 is 12:00 UTC: 14:00 in Athens in November
    text = alertmsg.text_body(alert, "Europe/Athens")
    assert "Since:            2026-11-29 14:00:00 EET (12:00 UTC)" in text
    assert "2026-11-29 12:00:00 UTC" in alertmsg.text_body(alert)  # a UTC config: once
    page = alertmsg.html_body(alert, "Europe/Athens")
    assert "<code " in page and ">mailcanary history --route r1</code>" in page
    assert "(<code " in page and ">mailcanary dns ACCOUNT</code>)" in page  # in the advice


def test_the_failure_line_says_the_enhanced_code_once() -> None:
    alert = alertmsg.describe(
        firing(AlertKind.SEND_FAILED, record(Verdict.SEND_FAILED, failure=REJECTED)),
        mailbox=None,
        instance="x",
    )
    assert "Failure:          rejected during rcpt_to: 550 5.1.1 no such user\n" in (
        alertmsg.text_body(alert)
    )
    said = replace(REJECTED, message="mailbox unavailable")  # a text without the code
    assert alertmsg.failure_line({**alert["failure"], "message": said.message}).endswith(
        "550 5.1.1 mailbox unavailable"
    )
