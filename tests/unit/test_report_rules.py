"""The report's ordering and grouping rules, its verdict line, and what the text and the
email look like, on the troubled week of report_data and on crafted aggregates."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes
from email.policy import default
from html.parser import HTMLParser

from monitor.core.models import Verdict
from monitor.reports.auth import AuthCount, spam_cause
from monitor.reports.build import build
from monitor.reports.charts import CHARTS
from monitor.reports.document import Aggregates, FailureCount, HourCount
from monitor.reports.fixes import LIMIT
from monitor.reports.mail import report_message
from monitor.reports.text import WIDTH, render_text
from tests.unit.report_data import (
    AUTH_FAILED,
    GREYLISTED,
    MAILBOXES,
    NOW,
    WEEK,
    empty_week,
    troubled_week,
)


def test_providers_come_worst_first_and_the_verdict_names_the_worst() -> None:
    report = troubled_week()
    assert [p.provider for p in report.providers] == ["Gmail", "Outlook", "Yahoo", "GMX"]
    assert [r.name for r in report.auth.providers] == ["Gmail", "Outlook", "Yahoo", "GMX"]
    assert report.headline.state == "red"
    assert report.headline.text == (
        "Gmail: 8.9% to spam (was 0.2%) — DMARC fails on 40% of those (of inbox canaries: 1.2%)"
    )


def test_fixes_are_ordered_by_severity_then_size_before_the_limit() -> None:
    """A wrong password seen once is high and stays; many transient 451 groups are medium
    and fill up after it (the old rule kept the three largest groups first)."""
    deferrals = tuple(replace(GREYLISTED, route=f"r{i}", count=50 + i) for i in range(LIMIT + 2))
    aggregates = Aggregates(failures=(*deferrals, AUTH_FAILED), hours=(
        HourCount("news", "x1", WEEK.start, Verdict.INBOX, 10),
    ))  # fmt: skip
    report = build(
        WEEK, aggregates, mailboxes=MAILBOXES, configured=[], now=NOW, senders={"news": "nl"}
    )
    severities = [f.severity for f in report.fixes]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)
    assert report.fixes[0].text.startswith("1 canary from nl could not be sent (535 5.7.8)")
    medium = [f.text for f in report.fixes if f.severity == "medium"]
    assert len(report.fixes) == LIMIT and medium[0].startswith("61 canaries from r11")
    sizes = [int(t.split()[0]) for t in medium]
    assert sizes == sorted(sizes, reverse=True)


def test_refusals_group_by_cause_and_sending_account_not_by_mailbox() -> None:
    same = [
        FailureCount("ops", to, Verdict.SEND_FAILED, "rejected", "rcpt_to", 550, "5.7.1",
                     False, 3, "5.7.1 blocked")
        for to in ("g1", "o1", "y1")
    ]  # fmt: skip
    other_account = replace(same[0], route="news", count=2)
    report = build(
        WEEK,
        Aggregates(
            failures=(*same, other_account),
            hours=(HourCount("ops", "g1", WEEK.start, Verdict.INBOX, 10),),
        ),
        mailboxes=MAILBOXES,
        configured=[],
        now=NOW,
        senders={"ops": "alice", "news": "newsletter"},
    )
    texts = [f.text for f in report.fixes]
    assert any(t.startswith("9 canaries from alice could not be sent (550 5.7.1) to 3 mailboxes")
               for t in texts)  # fmt: skip
    assert any(t.startswith("2 canaries from newsletter could not be sent (550 5.7.1) to g1")
               for t in texts)  # fmt: skip


def test_a_check_failure_is_the_mailboxs_whoever_sent_the_canary() -> None:
    refused = [
        FailureCount(route, "o1", Verdict.CHECK_FAILED, "auth_failed", "imap_auth", None, None,
                     False, 2, "NO [AUTHENTICATIONFAILED] Authentication failed.")
        for route in ("ops", "news")
    ]  # fmt: skip
    report = build(
        WEEK,
        Aggregates(
            failures=tuple(refused),
            hours=(HourCount("ops", "o1", WEEK.start, Verdict.CHECK_FAILED, 4),),
        ),
        mailboxes=MAILBOXES,
        configured=[],
        now=NOW,
        senders={"ops": "alice", "news": "newsletter"},
    )
    [fix] = [f for f in report.fixes if "could not be checked" in f.text]
    assert fix.text.startswith("4 canaries could not be checked (auth_failed) in mailbox o1")


def test_the_check_that_sets_spam_apart_is_named_and_a_common_failure_is_not() -> None:
    def rows(spam_dmarc: str, inbox_dmarc: str) -> list[AuthCount]:
        return [
            AuthCount("r", "g1", Verdict.SPAM, "pass", "pass", spam_dmarc, 10),
            AuthCount("r", "g1", Verdict.INBOX, "pass", "pass", inbox_dmarc, 90),
        ]

    cause = spam_cause(rows("fail", "pass"))
    assert cause is not None and (cause.check, cause.spam_failed) == ("dmarc", 1.0)
    assert spam_cause(rows("fail", "fail")) is None  # fails everywhere: explains nothing
    assert spam_cause(rows("pass", "pass")) is None


def test_the_text_fits_100_columns_and_an_empty_week_says_so_once() -> None:
    for report in (troubled_week(), empty_week()):
        text = render_text(report)
        assert max(map(len, text.splitlines())) <= WIDTH
    empty = render_text(empty_week()).lower()
    assert "no data: no canaries in this period" in empty
    assert "every canary" not in empty and "0 canaries" not in empty
    assert "1 canary from newsletter" in render_text(troubled_week())


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def test_the_email_shows_every_chart_inline_and_every_cid_resolves() -> None:
    report = troubled_week()
    pngs = {name: b"\x89PNG\r\n\x1a\n" + name.encode() for name in CHARTS}
    sent = report_message(report, pngs, sender="ops@example.org", to="lead@example.org",
                          message_id="<r@example.org>")  # fmt: skip
    message = message_from_bytes(sent.as_bytes(), policy=default)
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html" and len(images) == len(CHARTS)
    assert {i.get_content_disposition() for i in images} == {"inline"}
    found = Images()
    found.feed(html.get_content())
    cids = {i["Content-ID"].strip("<>"): i.get_content() for i in images}
    assert sorted(src.removeprefix("cid:") for src in found.sources) == sorted(cids)
    assert {cids[src.removeprefix("cid:")] for src in found.sources} == set(pngs.values())
    assert 'name="viewport"' in html.get_content()
