"""Content or sender: a plain canary beside the user's own message tells them apart."""

from __future__ import annotations

from pathlib import Path

from monitor.config.schema import Route
from monitor.content.judge import Pairing, judge, pairings, sentence
from monitor.core.models import Verdict
from monitor.reports.build import build
from monitor.reports.document import Aggregates, HourCount, Mailbox
from monitor.reports.query import with_content_judgement
from tests.unit.report_data import NOW, WEEK


def test_judge_needs_the_message_mostly_in_spam_and_the_plain_canary_clearly_one_way() -> None:
    assert judge(0.0, 0.9) == "content"
    assert judge(0.1, 0.5) == "content"
    assert judge(0.6, 0.8) == "sender"
    assert judge(0.3, 0.9) is None  # in between: nothing can be said
    assert judge(0.0, 0.2) is None  # the message mostly lands: no problem to explain
    assert judge(None, 1.0) is None and judge(0.0, None) is None


def test_pairings_are_routes_from_one_account_to_one_mailbox() -> None:
    routes = [
        Route(name="plain", sender="alice", recipients=["g1", "o1"]),
        Route(name="news", sender="alice", recipients=["g1"], message=Path("/n.eml")),
        Route(name="other", sender="bob", recipients=["g1"], message=Path("/n.eml")),
    ]
    assert pairings(routes) == [Pairing("alice", "g1", "plain", "news")]


def week(plain: dict[Verdict, int], message: dict[Verdict, int]):
    hour = WEEK.start
    rows = [
        HourCount(route, "g1", hour, verdict, n)
        for route, counts in (("plain", plain), ("news", message))
        for verdict, n in counts.items()
    ]
    return build(
        WEEK,
        Aggregates(hours=rows),
        mailboxes={"g1": Mailbox("Gmail", "seed@gmail.com")},
        configured=[("plain", "g1"), ("news", "g1")],
        now=NOW,
    )


def test_the_report_says_first_which_one_it_is() -> None:
    pair = Pairing("alice", "g1", "plain", "news")
    content = with_content_judgement(
        week({Verdict.INBOX: 10}, {Verdict.SPAM: 9, Verdict.INBOX: 1}), [pair]
    )
    first = content.fixes[0]
    assert (first.severity, first.text) == ("high", sentence(pair, "content"))
    assert "lint-message" in first.remedy
    sender = with_content_judgement(
        week({Verdict.SPAM: 8, Verdict.INBOX: 2}, {Verdict.SPAM: 10}), [pair]
    )
    assert sender.fixes[0].text.startswith("It is the sender: even the plain canary (plain)")
    fine = week({Verdict.INBOX: 10}, {Verdict.INBOX: 10})
    assert with_content_judgement(fine, [pair]) is fine
