"""Report maths on crafted aggregates: histograms and percentiles, rates, trends, periods
across a DST change in Europe/Athens, empty weeks, a route added mid-week, what to fix."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest

from monitor.core.catalogue import advise
from monitor.core.models import Failure, Phase, Verdict
from monitor.reports.build import build
from monitor.reports.document import (
    DEFAULT_INSTANCE,
    Aggregates,
    FailureCount,
    HourCount,
    Incident,
    Mailbox,
)
from monitor.reports.model import (
    BUCKETS,
    EDGES,
    HOUR,
    Histogram,
    Summary,
    Tally,
    Trend,
    bucket_bounds,
    bucket_of,
    days_period,
    due_week,
    last_full_week,
    recent,
)

ATHENS = "Europe/Athens"
D = DEFAULT_INSTANCE
# The week that leaves summer time: Sunday 25 October 2026, 04:00 EEST becomes 03:00 EET.
DST_WEEK = days_period(date(2026, 10, 19), date(2026, 10, 25), ATHENS)
MAILBOXES = {
    "g1": Mailbox("Gmail", "seed1@gmail.com"),
    "g2": Mailbox("Gmail", "seed2@gmail.com"),
    "o1": Mailbox("Outlook", "seed@outlook.com"),
}


def histogram(values: list[float]) -> Histogram:
    return Histogram.of((bucket_of(v), 1, v) for v in values)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def hours(route: str, to: str, start: datetime, count: int, **per_hour: int) -> list[HourCount]:
    return [
        HourCount(route, to, start + timedelta(hours=h), Verdict(verdict), n)
        for h in range(count)
        for verdict, n in per_hour.items()
    ]


# -- histograms ------------------------------------------------------------------------------


def test_every_bucket_holds_exactly_the_values_between_its_edges() -> None:
    assert BUCKETS == 96 and EDGES[0] == 0.1 and list(EDGES) == sorted(set(EDGES))
    for bucket in range(BUCKETS):
        low, high = bucket_bounds(bucket)
        assert bucket_of(low) == bucket
        if high is not None:
            assert bucket_of(math.nextafter(high, 0)) == bucket and bucket_of(high) == bucket + 1
            # 16 per decade: neighbouring edges are 15 % apart (rounded to 4 digits).
            assert low == 0 or high / low == pytest.approx(10 ** (1 / 16), rel=1e-3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_from_buckets_are_within_one_bucket_of_the_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(math.log(5), 1.2) for _ in range(5000)]
    found = histogram(values)
    for q in (0.5, 0.95):
        assert found.percentile(q) == pytest.approx(exact(values, q), rel=0.08)
    assert found.percentile(1.0) == found.max == max(values)
    assert found.n == 5000


def test_histograms_add_up_like_their_values() -> None:
    a, b = [0.05, 1.0, 3.3, 3.4, 700.0], [2.0, 90000.0]
    assert histogram(a) + histogram(b) == histogram(a + b)
    assert Histogram().percentile(0.5) is None
    one = histogram([42.0])
    # A single value: every percentile is that value, never more than the maximum.
    assert one.percentile(0.5) <= 42.0 and one.percentile(0.95) <= 42.0
    assert one.percentile(0.5) >= bucket_bounds(bucket_of(42.0))[0]


# -- tallies and trends ----------------------------------------------------------------------


def test_rates_are_shares_of_all_canaries_and_none_without_canaries() -> None:
    tally = Tally({Verdict.INBOX: 7, Verdict.SPAM: 2, Verdict.SEND_FAILED: 1})
    assert tally.total == 10
    assert tally.rate(Verdict.INBOX) == 0.7 and tally.rate(Verdict.MISSING) == 0.0
    assert tally.rate(Verdict.SPAM, Verdict.SEND_FAILED) == 0.3
    assert Tally().rate(Verdict.INBOX) is None


def test_trends_know_which_way_is_better() -> None:
    now = Summary(
        Tally({Verdict.INBOX: 90, Verdict.SPAM: 10}),
        histogram([10.0] * 10),
        Tally({Verdict.INBOX: 99, Verdict.SPAM: 1}),
        histogram([5.0] * 10),
    )
    trends = now.trends()
    assert trends["inbox_rate"].delta == pytest.approx(-0.09)
    assert (trends["inbox_rate"].direction, trends["inbox_rate"].better) == ("down", False)
    assert (trends["spam_rate"].direction, trends["spam_rate"].better) == ("up", False)
    assert trends["p50"].direction == "up" and trends["p50"].better is False
    assert Trend(0.9, 0.898, True).direction == "flat"  # 0.2 points: noise
    assert Trend(0.9, None, True).direction is None and Trend(0.9, None, True).arrow == ""


# -- periods -----------------------------------------------------------------------------------


def test_the_week_that_leaves_summer_time_has_169_hours_and_a_25_hour_sunday() -> None:
    now = datetime(2026, 10, 26, 9, 0, tzinfo=UTC)  # Monday, 11:00 in Athens
    week = last_full_week(now, ATHENS)
    assert week == DST_WEEK
    assert week.start == datetime(2026, 10, 18, 21, 0, tzinfo=UTC)  # Monday 00:00 EEST
    assert week.end == datetime(2026, 10, 25, 22, 0, tzinfo=UTC)  # Monday 00:00 EET
    assert week.hours == 169
    assert [d.hours for d in week.days()] == [24] * 6 + [25]
    assert [d.date.weekday() for d in week.days()] == list(range(7))
    spring = days_period(date(2026, 3, 23), date(2026, 3, 29), ATHENS)
    assert spring.hours == 167 and spring.days()[-1].hours == 23
    # The week before is the previous calendar week, from local midnight to local midnight.
    before = week.previous()
    assert (before.first_day, before.last_day, before.hours) == (
        date(2026, 10, 12),
        date(2026, 10, 18),
        168,
    )
    assert before.end == week.start


def test_a_weekly_report_is_due_from_its_moment_on() -> None:
    monday_0759 = datetime(2026, 10, 26, 5, 59, tzinfo=UTC)  # 07:59 in Athens (EET)
    assert due_week(monday_0759, 0, time(8, 0), ATHENS) == DST_WEEK.previous()
    assert due_week(monday_0759 + timedelta(minutes=1), 0, time(8, 0), ATHENS) == DST_WEEK
    assert due_week(datetime(2026, 10, 31, tzinfo=UTC), 0, time(8, 0), ATHENS) == DST_WEEK


def test_the_weekly_email_fires_at_local_time_after_the_clocks_change() -> None:
    from monitor.config.report_settings import ReportSettings
    from monitor.reports.weekly import weekly_trigger

    settings = ReportSettings(weekday=0, at=time(8, 0), timezone=ATHENS)
    fires = weekly_trigger(settings).get_next_fire_time(None, datetime(2026, 10, 21, tzinfo=UTC))
    assert fires == datetime(2026, 10, 26, 6, 0, tzinfo=UTC)  # 08:00 EET, no longer EEST
    assert due_week(fires, 0, time(8, 0), ATHENS) == DST_WEEK


def test_recent_periods_are_whole_hours_up_to_now() -> None:
    now = datetime(2026, 11, 4, 10, 25, tzinfo=UTC)
    period = recent(now, 7 * 86400, "UTC")
    assert period.start == datetime(2026, 10, 28, 10, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 4, 11, tzinfo=UTC)
    assert period.previous().end == period.start and period.previous().hours == period.hours
    assert period.days()[0].hours == 14 and period.days()[-1].hours == 11


# -- building a report -------------------------------------------------------------------------


def test_counts_rates_percentiles_and_trends_per_mailbox_provider_and_total() -> None:
    start, before = DST_WEEK.start, DST_WEEK.previous().start
    times = [2.0, 3.0, 4.0, 5.0, 60.0]
    rows = [
        *hours("r", "g1", start, 169, inbox=7),
        # 3 in spam every hour; DMARC failed on all three in the first 100 hours
        *(
            HourCount("r", "g1", start + h * HOUR, Verdict.SPAM, 3, 3 * (h < 100))
            for h in range(169)
        ),
        *hours("r", "g2", start, 169, inbox=10),
        *hours("r", "o1", start, 100, inbox=9, send_failed=1),
        *hours("r", "g1", before, 168, inbox=10),
    ]
    aggregates = Aggregates(
        hours=tuple(rows),
        delivery={("r", "g1", D): histogram(times), ("r", "g2", D): histogram([1.0, 1.5])},
        previous_delivery={("r", "g1", D): histogram([1.0] * 4)},
    )
    configured = [("r", "g1"), ("r", "g2"), ("r", "o1")]
    report = build(DST_WEEK, aggregates, mailboxes=MAILBOXES, configured=configured, now=NOW)
    assert [p.provider for p in report.providers] == ["Gmail", "Outlook"]
    gmail = report.providers[0]
    g1 = gmail.pairs[0].summary
    assert (g1.tally.total, g1.tally.count(Verdict.SPAM)) == (1690, 507)
    assert g1.tally.rate(Verdict.SPAM) == pytest.approx(0.3)
    assert g1.previous.total == 1680 and g1.trends()["inbox_rate"].delta == pytest.approx(-0.3)
    assert g1.delivery.percentile(0.5) == pytest.approx(4.0, rel=0.08)
    assert g1.delivery.max == 60.0 and g1.dmarc_failed == {Verdict.SPAM: 300}
    assert gmail.summary.tally.total == 1690 + 1690
    assert gmail.summary.delivery == histogram([*times, 1.0, 1.5])
    outlook = report.providers[1].pairs[0]
    assert outlook.summary.tally.rate(Verdict.SEND_FAILED) == pytest.approx(0.1)
    assert report.total.tally.total == 1690 * 2 + 1000
    # Every canary lands in exactly one local day, the long Sunday included.
    assert sum(d.tally.total for d in report.days) == report.total.tally.total
    assert report.days[-1].tally.total == 25 * 20 and report.days[-1].day.hours == 25
    text = " ".join(fix.text for fix in report.fixes)
    assert "Gmail placed 15% of 3380 canaries in spam; DMARC failed on 300 of these 507" in text
    assert "Gmail: inbox placement fell from 100% to 85%" in text


def test_the_repeated_hour_of_the_dst_change_counts_twice_and_is_named_apart() -> None:
    first = datetime(2026, 10, 25, 0, tzinfo=UTC)  # 03:00 EEST
    second = datetime(2026, 10, 25, 1, tzinfo=UTC)  # 03:00 EET, an hour later
    rows = (
        HourCount("r", "g1", first, Verdict.MISSING, 4),
        HourCount("r", "g1", first, Verdict.INBOX, 1),
        HourCount("r", "g1", second, Verdict.MISSING, 5),
        HourCount("r", "g1", second + timedelta(hours=5), Verdict.INBOX, 3),
    )
    report = build(DST_WEEK, Aggregates(hours=rows), mailboxes=MAILBOXES, configured=[], now=NOW)
    sunday = report.days[-1]
    assert sunday.day.date == date(2026, 10, 25) and sunday.tally.total == 13
    labels = [h.label for h in report.worst_hours]
    assert labels == ["Sun 25 Oct 03:00 EET", "Sun 25 Oct 03:00 EEST"]
    assert [h.bad for h in report.worst_hours] == [5, 4]


def test_a_route_added_mid_week_is_new_and_rated_on_its_own_canaries() -> None:
    wednesday_noon = DST_WEEK.start + timedelta(days=2, hours=12)
    rows = (
        *hours("old", "g1", DST_WEEK.previous().start, 168, inbox=1),
        *hours("old", "g1", DST_WEEK.start, 169, inbox=1),
        *hours("new", "o1", wednesday_noon, 10, inbox=3, spam=1),
    )
    report = build(
        DST_WEEK,
        Aggregates(hours=rows),
        mailboxes=MAILBOXES,
        configured=[("old", "g1"), ("new", "o1")],
        now=NOW,
    )
    new = next(p for p in report.pairs if p.route == "new")
    old = next(p for p in report.pairs if p.route == "old")
    assert new.new and not old.new
    assert new.first_seen == wednesday_noon
    assert new.summary.tally.rate(Verdict.INBOX) == 0.75
    assert new.summary.trends()["inbox_rate"].direction is None  # nothing to compare with
    assert [d.tally.count(Verdict.SPAM) for d in report.days][:2] == [0, 0]


def test_an_empty_week_has_no_rates_and_says_so() -> None:
    report = build(DST_WEEK, Aggregates(), mailboxes=MAILBOXES, configured=[("r", "g1")], now=NOW)
    assert report.total.tally.total == 0
    assert report.total.tally.rate(Verdict.INBOX) is None
    assert report.total.delivery.percentile(0.95) is None
    assert [p.summary.tally.total for p in report.pairs] == [0]
    assert len(report.days) == 7 and report.worst_hours == () and report.incidents is None
    assert [f.severity for f in report.fixes] == ["high"]
    assert report.fixes[0].text.startswith("No canaries were recorded")


def test_failures_carry_the_catalogues_words_and_incidents_are_those_of_the_period() -> None:
    refused = FailureCount(
        "r",
        "o1",
        Verdict.SEND_FAILED,
        "rejected",
        "rcpt_to",
        550,
        "5.7.1",
        False,
        12,
        "5.7.1 Service unavailable; client host blocked using Spamhaus",
    )
    start = DST_WEEK.start
    incidents = (
        Incident("r", "o1", "send_failed", start + timedelta(hours=5), start + timedelta(hours=7)),
        Incident("r", "o1", "spam", start - timedelta(days=9), start - timedelta(days=8)),
        Incident("r", "g1", "missing", start + timedelta(days=6)),
    )
    rows = tuple(hours("r", "o1", start, 12, send_failed=1))
    aggregates = Aggregates(hours=rows, failures=(refused,), incidents=incidents)
    report = build(DST_WEEK, aggregates, mailboxes=MAILBOXES, configured=[], now=NOW)
    expected = advise(
        Failure("rejected", Phase.RCPT_TO, False, refused.message or "", 550, "5.7.1")
    )
    assert report.failures[0].explanation == expected.explanation
    assert report.failures[0].remedy == expected.remedy
    assert [(i.kind, i.resolved_at is None) for i in report.incidents or ()] == [
        ("send_failed", False),
        ("missing", True),
    ]
    assert report.incidents and report.incidents[0].seconds(NOW) == 7200
    fixes = [f.text for f in report.fixes]
    assert any(t.startswith("12 canaries could not be sent (550 5.7.1) on r → o1") for t in fixes)
    assert any(t.startswith("Alert still firing: missing on r → g1") for t in fixes)


NOW = datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_the_reports_section_is_checked_line_by_line(tmp_path) -> None:
    from monitor.config.load import ConfigError, load_config

    base = (
        '[[accounts]]\nname = "ops"\nemail = "ops@example.org"\npassword = "pw"\n'
        'smtp = { host = "127.0.0.1", port = 2525, security = "none" }\n'
        '[[accounts]]\nname = "seed"\nemail = "seed@example.org"\npassword = "pw"\n'
        'imap = { host = "127.0.0.1", port = 1993, security = "tls" }\n'
    )
    path = tmp_path / "mailcanary.toml"
    path.write_text(
        base + '[reports]\nweekly = "Sunday 7:30"\ntimezone = "Europe/Athens"\n'
        'to = ["a@example.org"]\naccount = "ops"\n'
    )
    settings = load_config(path, env={}).reports
    assert (settings.weekday, settings.at, settings.scheduled) == (6, time(7, 30), True)
    assert settings.timezone == ATHENS
    path.write_text(
        base + '[reports]\nweekly = "mon 25:00"\ntimezone = "Mars/Olympus"\nto = ["nobody"]\n'
        'account = "seed"\n'
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert error.value.problems == [
        'reports.weekly: must be a weekday and a 24-hour time like "mon 08:00", got "mon 25:00"',
        'reports.timezone: unknown time zone; use an IANA name like "Europe/Athens" or "UTC", '
        'got "Mars/Olympus"',
        'reports.to[0]: must be an email address, got "nobody"',
        'reports.account: account "seed" has no smtp',
    ]
    path.write_text(base + '[reports]\nto = ["a@example.org"]\n')
    with pytest.raises(ConfigError, match=r"reports\.account: required"):
        load_config(path, env={})
