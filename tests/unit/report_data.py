"""A troubled week to render and judge: Gmail starts filing to spam on Wednesday (DMARC
failing on many of those), Outlook loses canaries in a four-hour outage, one wrong password
on the "news" sending account (a single canary), Yahoo greylists now and then (451, many),
a DNS warning and a blocklist listing, alerts fired. Used by the unit and browser tests."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from monitor.content.spamscore import Rule, SpamScore
from monitor.core.models import Verdict
from monitor.dnscheck.history import Change, DnsPosture
from monitor.dnscheck.policy import FAIL, OK, WARN, Finding
from monitor.reports.auth import AuthCount
from monitor.reports.build import build
from monitor.reports.content import ContentCount
from monitor.reports.document import (
    Aggregates,
    FailureCount,
    HourCount,
    Incident,
    Mailbox,
    Report,
    WeekTotal,
)
from monitor.reports.model import HOUR, Histogram, Tally, bucket_of, days_period

ZONE = "Europe/Athens"
WEEK = days_period(date(2026, 11, 16), date(2026, 11, 22), ZONE)
NOW = WEEK.end + timedelta(hours=8)
MAILBOXES = {
    "g1": Mailbox("Gmail", "canary.seed.one@gmail.com"),
    "g2": Mailbox("Gmail", "canary.seed.two@gmail.com"),
    "o1": Mailbox("Outlook", "seed-mailbox@outlook.com"),
    "y1": Mailbox("Yahoo", "seedbox@yahoo.com"),
    "x1": Mailbox("GMX", "seed@gmx.de"),
}
ROUTES = {"ops": "alice", "news": "newsletter"}
LINES = [("ops", "g1"), ("ops", "o1"), ("ops", "y1"), ("news", "g2"), ("news", "x1")]
PER_HOUR = 12
AUTH_FAILED = FailureCount(
    route="news", recipient="x1", verdict=Verdict.SEND_FAILED, kind="auth_failed",
    phase="auth", code=535, enhanced="5.7.8", transient=False, count=1,
    message="5.7.8 Username and Password not accepted",
)  # fmt: skip
GREYLISTED = FailureCount(
    route="ops", recipient="y1", verdict=Verdict.SEND_FAILED, kind="deferred",
    phase="rcpt_to", code=451, enhanced="4.7.1", transient=True, count=30,
    message="4.7.1 Greylisted, please try again later",
)  # fmt: skip


def _hour_rows() -> list[HourCount]:
    rows = []
    wednesday = WEEK.start + timedelta(days=2)
    outage = WEEK.start + timedelta(days=3, hours=10)
    for start in (WEEK.previous().start, WEEK.start):
        for h in range(round((WEEK.end - WEEK.start) / HOUR)):
            hour = start + h * HOUR
            this_week = start == WEEK.start
            for route, to in LINES:
                counts = {Verdict.INBOX: PER_HOUR}
                dmarc = 0
                if to in ("g1", "g2") and (hour >= wednesday if this_week else h % 40 == 0):
                    spam = 2 if this_week and h % 2 else 1
                    counts = {Verdict.INBOX: PER_HOUR - spam, Verdict.SPAM: spam}
                    dmarc = spam if this_week and h % 5 < 2 else 0
                if this_week and to == "o1" and outage <= hour < outage + 4 * HOUR:
                    counts = {Verdict.MISSING: PER_HOUR}
                if this_week and to == "y1" and h % 24 == 9:
                    counts = {Verdict.INBOX: PER_HOUR - 5, Verdict.SEND_FAILED: 5}
                if this_week and to == "x1" and h == 100:
                    counts = {Verdict.INBOX: PER_HOUR - 1, Verdict.SEND_FAILED: 1}
                for verdict, n in counts.items():
                    failed = dmarc if verdict is Verdict.SPAM else 0
                    rows.append(HourCount(route, to, hour, verdict, n, failed))
    return rows


def _times(*pairs: tuple[float, int]) -> Histogram:
    return Histogram.of((bucket_of(s), n, s) for s, n in pairs)


def _auth() -> tuple[AuthCount, ...]:
    def row(route: str, to: str, verdict: Verdict, dmarc: str, n: int) -> AuthCount:
        # DKIM passes but signs for the ESP's domain: not aligned, so DMARC fails.
        return AuthCount(route, to, verdict, "pass", "pass", dmarc, n)

    return (
        row("ops", "g1", Verdict.INBOX, "pass", 330),
        row("ops", "g1", Verdict.INBOX, "fail", 8),
        row("ops", "g1", Verdict.SPAM, "fail", 25),
        row("ops", "g1", Verdict.SPAM, "pass", 37),
        row("news", "g2", Verdict.INBOX, "pass", 340),
        row("news", "g2", Verdict.SPAM, "fail", 24),
        row("news", "g2", Verdict.SPAM, "pass", 36),
        row("ops", "o1", Verdict.INBOX, "pass", 400),
        row("ops", "y1", Verdict.INBOX, "pass", 400),
        row("news", "x1", Verdict.INBOX, "pass", 400),
    )


def _content() -> tuple[ContentCount, ...]:
    """The newsletter at Gmail's second seed, as if it wrote SpamAssassin's headers: its
    image-only HTML counts against it, a phrase pushes some into spam; Outlook's filter is
    content with the plain canaries (not worth a line)."""
    image_only = Rule("HTML_IMAGE_ONLY_24", 1.6, "BODY: HTML: images with 2000-2400 bytes of words")
    html_only = Rule("MIME_HTML_ONLY", 1.1, "BODY: Message only has text/html MIME parts")
    dkim = Rule("DKIM_VALID", -0.1, "Message has at least one valid DKIM or DK signature")
    phrase = Rule("DEAR_FRIEND", 2.6, "BODY: Dear Friend? That's not very dear!")

    def sa(score: float, *rules: Rule) -> tuple[SpamScore, ...]:
        return (SpamScore("spamassassin", score, 5.0, score >= 5.0, rules),)

    scl1 = (SpamScore("microsoft", 1.0, 5.0, False, (Rule("SFV:NSPM"),)),)
    return (
        ContentCount("news", "g2", Verdict.INBOX, sa(2.6, image_only, html_only, dkim), 88),
        ContentCount("news", "g2", Verdict.SPAM, sa(5.2, image_only, phrase, html_only), 12),
        ContentCount("ops", "o1", Verdict.INBOX, scl1, 100),
    )


def _weeks() -> tuple[WeekTotal, ...]:
    spam = [3, 2, 4, 3, 2, 5, 4, 363]
    p95 = [20.0, 22.0, 19.0, 25.0, 21.0, 20.0, 24.0, 48.0]
    first = WEEK.first_day or date(2026, 11, 16)
    return tuple(  # the six before the two the report compares
        WeekTotal(
            first - timedelta(weeks=7 - i),
            Tally(
                {Verdict.INBOX: 10080 - spam[i] - 20, Verdict.SPAM: spam[i], Verdict.MISSING: 20}
            ),
            _times((4.0, 9000), (p95[i], 1000)),
        )
        for i in range(6)
    )


DNS = (
    DnsPosture(
        "alice",
        "example.org",
        (
            Finding("spf", "example.org", OK, "v=spf1 mx -all"),
            Finding("dmarc", "example.org", WARN, "p=none: receivers are told to do nothing",
                    "tighten p to quarantine once reports look clean"),
            Finding("dnsbl", "192.0.2.25", FAIL, "listed on zen.spamhaus.org (127.0.0.2)",
                    "request delisting at https://check.spamhaus.org after fixing the cause"),
        ),
        WEEK.start - timedelta(days=2),  # the daemon's weekly run before the week
        (Change("dnsbl", "192.0.2.25", "ok", "fail"),),
    ),
    DnsPosture("newsletter", "news.example.org", (Finding("spf", "news.example.org", OK, "ok"),)),
)  # fmt: skip


def troubled_week(*, dns: bool = True) -> Report:
    aggregates = Aggregates(
        hours=tuple(_hour_rows()),
        delivery={(r, t, "default"): _times((3.0, 1500), (9.0, 300), (60.0, 20)) for r, t in LINES},
        previous_delivery={(r, t, "default"): _times((3.0, 1800), (8.0, 200)) for r, t in LINES},
        daily_delivery={d.date: _times((3.0, 1000), (12.0, 150)) for d in WEEK.days()},
        failures=(GREYLISTED, AUTH_FAILED),
        incidents=(
            Incident("ops", "g1", "spam", WEEK.start + timedelta(days=2, hours=3)),
            Incident(
                "ops",
                "o1",
                "missing",
                WEEK.start + timedelta(days=3, hours=10, minutes=20),
                WEEK.start + timedelta(days=3, hours=14, minutes=5),
            ),
        ),
        auth=_auth(),
        content=_content(),
        weeks=_weeks(),
    )
    return build(
        WEEK,
        aggregates,
        mailboxes=MAILBOXES,
        configured=LINES,
        now=NOW,
        senders=ROUTES,
        dns=DNS if dns else None,
    )


def empty_week() -> Report:
    return build(WEEK, Aggregates(), mailboxes=MAILBOXES, configured=LINES, now=NOW, senders=ROUTES)


__all__ = ["NOW", "UTC", "WEEK", "empty_week", "troubled_week"]
