"""Reports split by instance, on crafted aggregates: each instance's lines add up to the
mailbox's, the rest of the report is the whole fleet's whether split or not, and a report of
one instance reads exactly as it did before instances were counted."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from monitor.cli.report import ReportArgsError, instance_names
from monitor.core.models import Verdict
from monitor.reports.build import build
from monitor.reports.document import Aggregates, HourCount, Report
from monitor.reports.html import render_html
from monitor.reports.model import HOUR, Summary
from monitor.reports.query import render_csv, render_json
from monitor.reports.text import render_text
from tests.unit.test_report import DST_WEEK, MAILBOXES, NOW, histogram

EU, US = "eu-1", "us-1"
START, BEFORE = DST_WEEK.start, DST_WEEK.previous().start
CONFIGURED = [("r", "g1"), ("r", "g2"), ("r", "o1")]


def rows(
    to: str, instance: str, start: int, count: int, *, week=START, **per_hour: int
) -> list[HourCount]:
    """Canaries of `instance` to `to` in `count` hours from hour `start` of `week`."""
    return [
        HourCount("r", to, week + (start + h) * HOUR, Verdict(verdict), n, instance=instance)
        for h in range(count)
        for verdict, n in per_hour.items()
    ]


def two_instances() -> Aggregates:
    """g1: eu-1 all week (and the week before), us-1 from the fifth hour, some in spam with
    DMARC failed; g2: us-1 only, from Wednesday noon; o1: configured, silent."""
    spam = [
        HourCount("r", "g1", START + h * HOUR, Verdict.SPAM, 1, 1, instance=US)
        for h in range(5, 105)
    ]
    return Aggregates(
        hours=(
            *rows("g1", EU, 0, 169, inbox=7),
            *rows("g1", EU, 0, 168, week=BEFORE, inbox=10),
            *rows("g1", US, 5, 164, inbox=2),
            *spam,
            *rows("g2", US, 60, 20, inbox=3, missing=1),
        ),
        delivery={
            ("r", "g1", EU): histogram([2.0, 3.0, 4.0]),
            ("r", "g1", US): histogram([40.0, 50.0]),
            ("r", "g2", US): histogram([1.0]),
        },
        previous_delivery={("r", "g1", EU): histogram([1.0] * 4)},
    )


def report(aggregates: Aggregates, *, split: bool) -> Report:
    return build(
        DST_WEEK, aggregates, mailboxes=MAILBOXES, configured=CONFIGURED, now=NOW, split=split
    )


def added(summaries: list[Summary]) -> Summary:
    total = Summary()
    for summary in summaries:
        total = total + summary
    return total


def test_each_instance_has_its_line_and_the_lines_add_up_to_the_mailbox() -> None:
    split, whole = report(two_instances(), split=True), report(two_instances(), split=False)
    assert split.instances == (EU, US) and split.shows_instances
    assert not whole.shows_instances and whole.providers[0].by_instance == ()
    gmail, outlook = split.providers
    assert [(line.recipient, line.instance) for line in split.lines(gmail)] == [
        ("g1", EU),
        ("g1", US),
        ("g2", US),
    ]
    eu, us, g2 = split.lines(gmail)
    assert eu.summary.tally.counts == {Verdict.INBOX: 7 * 169}
    assert us.summary.tally.counts == {Verdict.INBOX: 2 * 164, Verdict.SPAM: 100}
    assert us.summary.dmarc_failed == {Verdict.SPAM: 100} and eu.summary.dmarc_failed == {}
    assert (eu.summary.delivery.max, us.summary.delivery.max) == (4.0, 50.0)
    assert eu.summary.previous.total == 168 * 10 and us.summary.previous.total == 0
    assert us.summary.trends()["inbox_rate"].direction is None  # nothing to compare with
    # us-1 began sending to g1 during the week: its line is new, the mailbox is not.
    assert us.new and us.first_seen == START + 5 * HOUR and not eu.new
    assert g2.new and g2.first_seen == START + 60 * HOUR
    # A configured mailbox that no instance sent to keeps one line, of no instance.
    [silent] = split.lines(outlook)
    assert (silent.recipient, silent.instance, silent.summary.tally.total) == ("o1", None, 0)

    g1 = gmail.pairs[0]
    assert g1.summary == added([eu.summary, us.summary])
    assert g1.summary.delivery == histogram([2.0, 3.0, 4.0, 40.0, 50.0])
    assert (g1.instance, g1.new, g1.first_seen) == (None, False, START)
    assert g2.summary == gmail.pairs[1].summary and gmail.pairs[1].new
    # Everything but the mailbox lines is the same report, split or not.
    assert tuple(replace(p, by_instance=()) for p in split.providers) == whole.providers
    assert (split.total, split.days, split.worst_hours) == (
        whole.total,
        whole.days,
        whole.worst_hours,
    )
    assert split.fixes == whole.fixes and split.total.tally.total == 7 * 169 + 2 * 164 + 100 + 80


def test_a_report_of_one_instance_reads_as_before_even_when_split() -> None:
    aggregates = two_instances()
    eu_only = replace(
        aggregates,
        hours=tuple(h for h in aggregates.hours if h.instance == EU),
        delivery={key: h for key, h in aggregates.delivery.items() if key[2] == EU},
    )
    split, whole = report(eu_only, split=True), report(eu_only, split=False)
    assert split.instances == (EU,) and not split.shows_instances
    assert split.lines(split.providers[0]) == split.providers[0].pairs
    assert render_text(split) == render_text(whole)
    assert render_html(split) == render_html(whole)
    assert render_csv(split) == render_csv(whole)
    assert "instance" not in render_text(whole) + render_csv(whole) + render_html(whole)
    # JSON says which instance each entry counts; otherwise the same document.
    document, before = render_json_of(split), render_json_of(whole)
    assert (document["by_instance"], document["instances"]) == (True, [EU])
    entries = [m for p in document["providers"] for m in p["mailboxes"]]
    assert [m["instance"] for m in entries] == [EU, None, None]  # g1; g2 and o1 silent
    for entry in entries:
        entry["instance"] = None
    assert {**document, "by_instance": False} == before


def render_json_of(shown: Report) -> dict:
    return json.loads(render_json(shown))


def test_text_html_and_csv_show_an_instance_column_when_split() -> None:
    split = report(two_instances(), split=True)
    text = render_text(split)
    assert "canaries of 2 instances: eu-1, us-1" in text
    table = text.split("\n\n")[2].splitlines()
    assert table[0].split()[:6] == ["provider", "/", "route", "→", "mailbox", "instance"]
    us_line = next(line for line in table if "seed1@gmail.com" in line and US in line)
    assert "(new since Mon 05:00)" in us_line  # local time: the week began at 00:00 EEST
    assert us_line.split(US)[1].split()[:2] == ["428", "328"]  # canaries, then the inbox

    page = render_html(split)
    assert f'data-route="r" data-recipient="g1" data-instance="{US}"' in page
    assert '<td data-field="instance" style="' in page

    lines = list(csv.DictReader(io.StringIO(render_csv(split))))
    mailboxes = [(r["recipient"], r["instance"], int(r["canaries"])) for r in lines]
    assert mailboxes == [
        ("g1", EU, 7 * 169),
        ("g1", US, 428),
        ("g2", US, 80),
        ("", "", 7 * 169 + 428 + 80),  # the provider: all of them
        ("o1", "", 0),
        ("", "", 0),
        ("", "", split.total.tally.total),
    ]
    assert list(lines[0])[:6] == ["level", "provider", "route", "recipient", "mailbox", "instance"]


def test_a_report_of_some_instances_says_so() -> None:
    empty = build(DST_WEEK, Aggregates(), mailboxes=MAILBOXES, configured=[], now=NOW, only=[US])
    assert empty.fixes[0].text == f"No canaries sent by {US} were recorded in {DST_WEEK.label}."
    assert f"only the canaries of instance {US}\n" in render_text(empty)
    assert f"; only the canaries of instance {US}</p>" in render_html(empty)
    assert render_json_of(empty)["instance_filter"] == [US]


def test_instance_names_come_repeated_or_as_a_comma_list() -> None:
    assert instance_names([f"{EU}, {US}", EU, "ap-2"]) == (EU, US, "ap-2")
    assert instance_names([]) == ()
    with pytest.raises(ReportArgsError, match="--instance: expected instance names"):
        instance_names([f"{EU},"])
