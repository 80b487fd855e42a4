"""Receivers' spam-filter verdicts as scores, thresholds and rules, from real-shaped headers.

Each fixture goes through the same path a probe's headers take: the IMAP adapter's parser,
`parse_receipt` (first copy of each header, whitespace collapsed, stored as JSON), then
`parse_scores` on what the store gives back.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from monitor.content.rules import explain
from monitor.content.spamscore import Rule, brief, parse_scores, score_json
from monitor.core.receipt import parse_receipt, spam_json

FIXTURES = Path(__file__).parent / "spamheaders"
RECEIPTS = Path(__file__).parent / "receipts"


def stored(path: Path) -> dict[str, str]:
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(path.read_bytes())
    return spam_json(parse_receipt(headers)) or {}


def test_spamassassin_spam_with_report_gives_points_per_rule():
    (score,) = parse_scores(stored(FIXTURES / "spamassassin.txt"))
    assert (score.filter, score.score, score.threshold, score.spam) == (
        "spamassassin",
        7.2,
        5.0,
        True,
    )
    assert len(score.rules) == 9
    assert [(r.name, r.points) for r in score.top_rules(3)] == [
        ("EMPTY_MESSAGE", 2.2),
        ("HTML_SHORT_LINK_IMG_1", 2.2),
        ("HTML_IMAGE_ONLY_04", 1.7),
    ]
    image_only = next(r for r in score.rules if r.name == "HTML_IMAGE_ONLY_04")
    assert image_only.detail == "BODY: HTML: images with 0-400 bytes of words"
    assert "images" in (image_only.explanation or "")
    assert brief([score]) == "spamassassin 7.2/5 EMPTY_MESSAGE +2.2, HTML_SHORT_LINK_IMG_1 +2.2"


def test_spamassassin_status_without_report_lists_rules_without_points():
    # The Postfix fixture's folded status also carries rspamd's headers: two filters.
    scores = {s.filter: s for s in parse_scores(stored(RECEIPTS / "postfix.txt"))}
    sa = scores["spamassassin"]
    assert (sa.score, sa.threshold, sa.spam) == (-0.1, 5.0, False)
    assert [r.name for r in sa.rules] == ["DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU", "SPF_PASS"]
    assert all(r.points is None for r in sa.rules) and sa.top_rules() == ()
    rspamd = scores["rspamd"]
    assert (rspamd.score, rspamd.threshold, rspamd.spam) == (-1.2, 15.0, False)


def test_spamassassin_scores_written_into_tests():
    status = "Yes, hits=6.1 required=5 tests=URIBL_BLACK=3.0, MIME_HTML_ONLY=0.7 autolearn=no"
    (score,) = parse_scores({"X-Spam-Status": status})
    assert score.score == 6.1 and score.spam is True
    assert score.rules == (Rule("URIBL_BLACK", 3.0), Rule("MIME_HTML_ONLY", 0.7))


def test_rspamd_result_gives_symbols_with_points_and_options():
    (score,) = parse_scores(stored(FIXTURES / "rspamd.txt"))
    assert (score.filter, score.score, score.threshold, score.spam) == ("rspamd", 9.84, 15.0, True)
    assert len(score.rules) == 9
    assert score.top_rules(2) == (
        Rule("ABUSE_SURBL", 5.5, "spam.example.com:url"),
        Rule("BAYES_SPAM", 5.04, "99.99%"),
    )
    assert next(r for r in score.rules if r.name == "R_SPF_ALLOW").points == -0.2


def test_microsoft_scl_bcl_and_verdicts():
    (score,) = parse_scores(stored(FIXTURES / "microsoft.txt"))
    assert (score.filter, score.score, score.threshold, score.spam) == (
        "microsoft",
        6.0,
        5.0,
        True,
    )
    assert [r.name for r in score.rules] == ["SFV:SPM", "CAT:BULK", "BCL:8"]
    assert explain("BCL:8") and explain("CAT:BULK") and explain("SFV:SPM")


def test_microsoft_clean_and_scl_header_alone():
    (clean,) = parse_scores(stored(RECEIPTS / "outlook.txt"))
    assert (clean.score, clean.spam) == (1.0, False)
    assert [r.name for r in clean.rules] == ["SFV:NSPM", "BCL:0"]
    (alone,) = parse_scores({"X-MS-Exchange-Organization-SCL": "9"})
    assert (alone.score, alone.spam, alone.rules) == (9.0, True, ())


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"X-Spam-Status": "garbage (((", "X-Forefront-Antispam-Report": ";;::;"},
        {"X-Spamd-Result": "default: [nonsense"},
    ],
)
def test_odd_headers_never_raise(headers):
    for score in parse_scores(headers):
        assert score.score is None and score.threshold in (None, 5.0)


def test_json_shape_carries_explanations():
    (shape,) = score_json(parse_scores(stored(FIXTURES / "spamassassin.txt")))
    rule = next(r for r in shape["rules"] if r["name"] == "MIME_HTML_ONLY")
    assert rule["points"] == 0.1 and "text/plain" in rule["explanation"]


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("URIBL_DBL_SPAM", "blocklist"),
        ("URIBL_BLOCKED", "not a listing"),
        ("HTML_IMAGE_ONLY_32", "images"),
        ("RCVD_IN_DNSWL_LOW", "allowlist"),
        ("MC_NO_LIST_UNSUBSCRIBE", "List-Unsubscribe"),
    ],
)
def test_explanations_by_name_and_family(rule, words):
    assert words in (explain(rule) or "")


def test_unknown_rule_has_no_explanation():
    assert explain("SOME_LOCAL_RULE_42") is None
