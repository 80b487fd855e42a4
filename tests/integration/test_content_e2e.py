"""A real message judged by its content: the harness's SpamAssassin files a spammy newsletter
into Junk while the plain canary from the same account to the same mailbox reaches the inbox,
and the scores and rules show in the probe JSON, in `history` and in the report (text, JSON
and HTML), where the plain canary's line carries none of them."""

from __future__ import annotations

import json

import pytest

from monitor.content.rules import explain
from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.test_probe_e2e import mailcanary
from tests.integration.test_report_support import Cells

pytestmark = pytest.mark.mailstack

# Image-only HTML, no text part, classic spam phrases: everything a filter holds against mail.
SPAMMY = (
    "From: Alice's Deals <alice@example.test>\r\n"
    "To: whoever@example.test\r\n"
    "Subject: WINNER!!! Claim your FREE prize - 100% FREE, act now\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<html><body><p>Dear Friend, you are a WINNER! Click here to claim your prize."
    " 100% FREE. No credit check. Act now!</p>"
    '<a href="http://deals.example.test/claim">'
    '<img src="http://deals.example.test/prize.jpg" width="600" height="900"></a>'
    "</body></html>\r\n"
)


def test_spammy_real_message_goes_to_junk_by_content_and_plain_canary_to_inbox(mailstack, tmp_path):
    if not mailstack.content_filter:
        pytest.skip("spamassassin/spamc not installed")
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'interval = "1m"\ndeadline = "20s"\npoll_interval = "2s"\n'
    )
    routes = [
        ("plain", "alice", {"judged": Verdict.INBOX}),
        ("newsletter", "alice", {"judged": Verdict.SPAM}),
    ]
    path = write_config(mailstack, tmp_path, routes=routes, monitor=monitor)
    (tmp_path / "spammy.eml").write_text(SPAMMY, encoding="utf-8")
    # The last route table is "newsletter": this key belongs to it.
    path.write_text(path.read_text() + 'message = "spammy.eml"\n')

    done = mailcanary("--config", str(path), "probe", "--json", "--deadline", "15s")
    assert done.returncode in (0, 1), done.stderr
    rows = {r["route"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert (rows["plain"]["verdict"], rows["newsletter"]["verdict"]) == ("inbox", "spam")
    assert rows["newsletter"]["folder"] == "Junk"

    (spam,) = rows["newsletter"]["spam_scores"]
    assert spam["filter"] == "spamassassin" and spam["spam"] is True
    assert spam["score"] > spam["threshold"] == 5.0
    rules = {r["name"]: r for r in spam["rules"]}
    image_only = [name for name in rules if name.startswith("HTML_IMAGE_ONLY_")]
    assert image_only and rules[image_only[0]]["points"] > 0 and rules[image_only[0]]["explanation"]
    assert rules["MIME_HTML_ONLY"]["points"] > 0
    assert {"DEAR_FRIEND", "DEAR_WINNER"} <= set(rules)  # the phrases count too
    (plain,) = rows["plain"]["spam_scores"]
    assert plain["spam"] is False and plain["score"] < 5.0 - 2
    assert not [r for r in plain["rules"] if r["name"].startswith(("HTML_", "DEAR_"))]

    shown = mailcanary("--config", str(path), "history", "--json")
    assert shown.returncode == 0, shown.stderr
    history = {r["route"]: r for r in map(json.loads, shown.stdout.splitlines())}
    assert history["newsletter"]["spam_scores"] == rows["newsletter"]["spam_scores"]

    table = mailcanary("--config", str(path), "history")
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert f"spamassassin {spam['score']:g}/5" in text

    # The report of the last day: the message's top rules, explained, beside the judgement.
    report = ["--config", str(path), "report", "--since", "1d", "--no-dns"]
    done = mailcanary(*report, "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["what_to_fix"][0]["text"].startswith("It is the content: newsletter")
    lines = {m["route"]: m for m in document["content_filters"]["mailboxes"]}
    news, canary = lines["newsletter"], lines["plain"]
    counted = ("filter", "canaries", "spam", "over_threshold", "median_score", "threshold")
    assert [news[k] for k in counted] == ["spamassassin", 1, 1, 1, spam["score"], 5.0]
    paired = ("judgement", "role", "compared_with")
    assert [news[k] for k in paired] == ["content", "message", "plain"]
    assert [canary[k] for k in paired] == ["content", "plain", "newsletter"]
    top = {r["name"]: r for r in news["top_rules"]}
    assert len(top) == 5 and image_only[0] in top and "DEAR_WINNER" in top
    assert top[image_only[0]]["explanation"] == explain(image_only[0])
    assert top[image_only[0]]["points"] == rules[image_only[0]]["points"]
    assert canary["over_threshold"] == 0 and canary["median_score"] < 5.0 - 2
    assert not [r for r in canary["top_rules"] if r["name"].startswith(("HTML_", "DEAR_"))]

    done = mailcanary(*report)
    assert done.returncode == 0, done.stderr
    text = done.stdout[done.stdout.index("Content filters") :]
    text = " ".join(text[: text.index("Trend")].split())
    assert "; your message: it is the content (plain canary: plain)" in text
    assert "the plain canary beside your message newsletter: it is the content" in text
    said = explain(image_only[0])
    assert f"{image_only[0]} {top[image_only[0]]['points']:+g} on 1 of 1: {said}" in text
    assert "HTML_" not in text[text.index("plain → ") :]

    done = mailcanary(*report, "--format", "html", "--output", str(tmp_path / "report.html"))
    assert done.returncode == 0, done.stderr
    page = Cells()
    page.feed((tmp_path / "report.html").read_text())
    shown = {key: row for key, row in page.rows.items() if "data-part=explanation" in key}
    assert shown[
        ("data-route=newsletter", "data-recipient=judged", f"data-rule={image_only[0]}",
         "data-part=explanation")
    ]["explanation"] == said  # fmt: skip
    # The plain canary's line has none of the message's content rules. (Not "no rules at all":
    # a loaded spamd may add one of its own to any message, e.g. a time limit hit.)
    plain_rules = [k for k in page.rows if "data-route=plain" in k and "data-rule" in str(k)]
    assert image_only[0] in str(shown) and not [
        key for key in plain_rules if "data-rule=HTML_" in str(key) or "data-rule=DEAR_" in str(key)
    ], plain_rules
