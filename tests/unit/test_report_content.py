"""The report's content-filter section: the receivers' rules counted over each mailbox's
sampled canaries, ordered and explained; beside the content-or-sender judgement; in text,
HTML, JSON and CSV, and absent when nothing is worth showing.

Headers go in as the store gives them back (the `spam_headers` JSON text), through the
same parse the report's sample uses."""

from __future__ import annotations

import csv
import io
import json

from monitor.content.judge import Pairing
from monitor.core.models import Verdict
from monitor.reports.build import build
from monitor.reports.content import ContentCount, content_report, scores_of_text
from monitor.reports.document import Aggregates, HourCount, Mailbox
from monitor.reports.export import render_csv, render_json
from monitor.reports.html import render_html
from monitor.reports.query import with_content_judgement
from monitor.reports.text import render_text
from tests.unit.report_data import NOW, WEEK

DESCRIPTIONS = {
    "HTML_IMAGE_ONLY_24": "BODY: HTML: images with 2000-2400 bytes of words",
    "DEAR_FRIEND": "BODY: Dear Friend? That's not very dear!",
}


def spamassassin(score: float, **rules: float) -> str:
    """`spam_headers` as stored for a SpamAssassin verdict with its report (rule=points)."""
    verdict = "Yes" if score >= 5.0 else "No"
    report = " ".join(
        f"* {points:.1f} {name} {DESCRIPTIONS.get(name, 'a rule')}"
        for name, points in rules.items()
    )
    return json.dumps(
        {
            "x-spam-status": f"{verdict}, score={score} required=5.0 tests={','.join(rules)} "
            "autolearn=no version=4.0.1",
            "x-spam-report": report,
        }
    )


SPAMMY = spamassassin(
    9.0,
    HTML_IMAGE_ONLY_24=1.6,
    MIME_HTML_ONLY=1.1,
    DEAR_FRIEND=2.6,
    SUBJ_ALL_CAPS=1.5,
    NO_RELAYS=-0.0,
    HTML_MESSAGE=0.0,
    DKIM_VALID=-0.1,
)
BORDERLINE = spamassassin(
    4.1,
    HTML_IMAGE_ONLY_24=1.6,
    MIME_HTML_ONLY=1.2,
    URIBL_BLACK=1.7,
    LOTS_OF_MONEY=0.7,
    FILL_THIS_FORM=0.5,
)
CLEAN = spamassassin(-0.1, DKIM_VALID=-0.1, NO_RELAYS=-0.0)
OUTLOOK_SPAM = json.dumps(
    {"x-forefront-antispam-report": "CIP:192.0.2.1;CTRY:;LANG:en;SCL:6;SFV:SPM;CAT:SPM;"}
)
OUTLOOK_CLEAN = json.dumps(
    {"x-forefront-antispam-report": "CIP:192.0.2.1;CTRY:;LANG:en;SCL:1;SFV:NSPM;CAT:NONE;"}
)
MAILBOXES = {"g1": Mailbox("Gmail", "seed@gmail.com"), "o1": Mailbox("Outlook", "seed@outlook.com")}


def count(route: str, to: str, verdict: Verdict, headers: str, n: int) -> ContentCount:
    return ContentCount(route, to, verdict, scores_of_text(headers), n)


def sample() -> list[ContentCount]:
    return [
        count("news", "g1", Verdict.SPAM, SPAMMY, 6),
        count("news", "g1", Verdict.INBOX, BORDERLINE, 3),
        count("plain", "g1", Verdict.INBOX, CLEAN, 10),
        count("plain", "o1", Verdict.SPAM, OUTLOOK_SPAM, 2),
        count("plain", "o1", Verdict.INBOX, OUTLOOK_CLEAN, 8),
    ]


def test_rules_are_counted_over_the_sample_ordered_by_hits_and_explained() -> None:
    def mailbox_of(to: str) -> tuple[str, str | None]:
        return MAILBOXES[to].provider, MAILBOXES[to].address

    report = content_report(sample(), mailbox_of, ["Outlook", "Gmail"])
    outlook, news, plain = report.mailboxes  # the placement's provider order, most spam first
    assert (outlook.route, outlook.filter, news.route, plain.route) == (
        "plain",
        "microsoft",
        "news",
        "plain",
    )

    assert (news.canaries, news.spam, news.over, news.threshold) == (9, 6, 6, 5.0)
    assert news.median == 9.0  # six of nine scored 9.0
    # Most hits first, then the most points; four rules tie on 9 and 6 hits, the fifth
    # place goes to the rule with more points of those on 3; rules that lowered or kept
    # the score (DKIM_VALID, NO_RELAYS, HTML_MESSAGE) never count against the message.
    assert [(r.name, r.hits, r.points) for r in news.rules] == [
        ("HTML_IMAGE_ONLY_24", 9, 1.6),
        ("MIME_HTML_ONLY", 9, 1.1),  # 1.1 on six, 1.2 on three: the usual points
        ("DEAR_FRIEND", 6, 2.6),
        ("SUBJ_ALL_CAPS", 6, 1.5),
        ("URIBL_BLACK", 3, 1.7),
    ]
    image_only, html_only, dear, caps, uribl = news.rules
    assert image_only.explanation and "images" in image_only.explanation
    assert html_only.explanation and "text/plain alternative" in html_only.explanation
    assert caps.explanation == "The Subject is written in capital letters."
    assert uribl.explanation == "A link's domain is on a URI blocklist."
    # Not one of the common ones: the filter's own words stand in.
    assert dear.explanation is None and dear.description == DESCRIPTIONS["DEAR_FRIEND"]

    assert (plain.canaries, plain.over, plain.median, plain.rules) == (10, 0, -0.1, ())
    assert not plain.shown and news.shown
    # Microsoft gives verdicts without points: they count where it called the canary spam
    # (not SFV:NSPM on the clean ones), shown without points.
    assert (outlook.canaries, outlook.median, outlook.over, outlook.spam) == (10, 1.0, 2, 2)
    assert [(r.name, r.points) for r in outlook.rules] == [("CAT:SPM", None), ("SFV:SPM", None)]
    assert outlook.rules[1].explanation == "Microsoft's filter judged it spam."
    assert report.shown == (outlook, news)


def week(content: list[ContentCount]):
    rows = [
        HourCount("plain", "g1", WEEK.start, Verdict.INBOX, 10),
        HourCount("news", "g1", WEEK.start, Verdict.SPAM, 6),
        HourCount("news", "g1", WEEK.start, Verdict.INBOX, 3),
    ]
    return build(
        WEEK,
        Aggregates(hours=tuple(rows), content=tuple(content)),
        mailboxes=MAILBOXES,
        configured=[("plain", "g1"), ("news", "g1")],
        now=NOW,
    )


def test_the_judged_pair_shows_why_in_every_format_and_nothing_shows_when_all_is_well() -> None:
    pair = Pairing("alice", "g1", "plain", "news")
    content = [c for c in sample() if c.recipient == "g1"]
    report = with_content_judgement(week(content), [pair])
    assert report.fixes[0].text.endswith(
        "reaches the inbox; its filter's top rules there: HTML_IMAGE_ONLY_24 +1.6, "
        "MIME_HTML_ONLY +1.1, DEAR_FRIEND +2.6"
    )
    news, plain = report.content.shown  # the pair first, both judged, message before plain
    assert (news.route, news.judgement, news.role, news.compared_with) == (
        "news",
        "content",
        "message",
        "plain",
    )
    assert (plain.route, plain.judgement, plain.role) == ("plain", "content", "plain")

    text = render_text(report)
    section = text[text.index("Content filters") : text.index("Trend:")]
    assert text.index("What to fix") < text.index("Content filters")
    flat = " ".join(section.split())
    assert (
        "news → seed@gmail.com (Gmail), spamassassin: median score 9, threshold 5, 6 of 9 over, "
        "6 in spam; your message: it is the content (plain canary: plain)" in flat
    )
    assert "HTML_IMAGE_ONLY_24 +1.6 on 9 of 9: The HTML is images with very few words" in flat
    assert "DEAR_FRIEND +2.6 on 6 of 9: BODY: Dear Friend? That's not very dear!" in flat
    plain_part = flat[flat.index("plain → seed@gmail.com") :]
    assert plain_part.startswith("plain → seed@gmail.com (Gmail), spamassassin: median score -0.1")
    assert "the plain canary beside your message news: it is the content" in plain_part
    assert "no rule counted against it" in plain_part and "HTML_" not in plain_part

    document = json.loads(render_json(report))["content_filters"]
    assert document["sample"] == 100
    first = document["mailboxes"][0]
    assert (first["route"], first["mailbox"], first["judgement"], first["shown"]) == (
        "news",
        "seed@gmail.com",
        "content",
        True,
    )
    assert (first["median_score"], first["threshold"], first["over_threshold"]) == (9.0, 5.0, 6)
    assert first["top_rules"][0] == {
        "name": "HTML_IMAGE_ONLY_24",
        "hits": 9,
        "points": 1.6,
        "explanation": news.rules[0].explanation,
        "description": DESCRIPTIONS["HTML_IMAGE_ONLY_24"],
    }
    assert document["mailboxes"][1]["top_rules"] == []

    rows = {(r["level"], r["route"]): r for r in csv.DictReader(io.StringIO(render_csv(report)))}
    assert rows[("mailbox", "news")]["content_top_rules"].startswith(
        "HTML_IMAGE_ONLY_24:9:1.6;MIME_HTML_ONLY:9:1.1;DEAR_FRIEND:6:2.6"
    )
    assert rows[("mailbox", "plain")]["content_median_score"] == "-0.1"
    assert rows[("provider", "")]["content_filter"] == ""

    html = render_html(report)
    assert html.index('data-section="fixes"') < html.index('data-section="content"')
    assert html.index('data-section="content"') < html.index('data-section="trends"')
    assert 'data-route="news" data-recipient="g1" data-rule="HTML_IMAGE_ONLY_24"' in html
    assert 'data-route="plain" data-recipient="g1" data-rule=' not in html
    assert "The HTML is images with very few words" in html

    # Many mailboxes worth a line: text and HTML list ten, JSON all of them.
    crowd = week([count(f"r{i:02d}", "g1", Verdict.SPAM, SPAMMY, 1) for i in range(12)])
    assert "… and 2 more mailboxes (--format json)" in render_text(crowd)
    assert render_html(crowd).count('data-rule="HTML_IMAGE_ONLY_24"') == 2 * 10
    assert len(json.loads(render_json(crowd))["content_filters"]["mailboxes"]) == 12

    # The plain canary alone, clean: counted in JSON, no section in text or HTML.
    calm = week([count("plain", "g1", Verdict.INBOX, CLEAN, 10)])
    assert "Content filters" not in render_text(calm)
    assert 'data-section="content"' not in render_html(calm)
    (only,) = json.loads(render_json(calm))["content_filters"]["mailboxes"]
    assert (only["route"], only["shown"], only["median_score"]) == ("plain", False, -0.1)
