"""The report as data: what `build` fills in from the store's aggregates and the renderers
(text, HTML, charts, mail, JSON) and `what_to_fix` read.

Leaf module: it imports the report maths and the shapes of its sections (auth, content
filters, the headline, DNS findings), never build or fixes, which import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from monitor.core.models import Verdict
from monitor.dnscheck.history import DnsPosture
from monitor.reports.auth import AuthCount, AuthReport
from monitor.reports.content import ContentCount, ContentReport
from monitor.reports.model import Day, Histogram, Period, Summary, Tally
from monitor.reports.verdict import Headline

Pair = tuple[str, str]  # (route, recipient account)
Line = tuple[str, str, str]  # (route, recipient account, instance)
DEFAULT_INSTANCE = "default"  # `[monitor] instance` when the config names none


@dataclass(frozen=True, slots=True)
class HourCount:
    route: str
    recipient: str
    hour: datetime  # UTC start of the hour
    verdict: Verdict
    n: int
    dmarc_failed: int = 0  # of these, canaries whose DMARC result the receiver wrote as fail
    instance: str = DEFAULT_INSTANCE


@dataclass(frozen=True, slots=True)
class FailureCount:
    """Failed canaries of one mailbox with the same failure, code and enhanced code."""

    route: str
    recipient: str
    verdict: Verdict
    kind: str | None
    phase: str | None
    code: int | None
    enhanced: str | None
    transient: bool | None
    count: int
    message: str | None  # one of the servers' texts, as an example


@dataclass(frozen=True, slots=True)
class Incident:
    """An alert that fired; `resolved_at` None while it still fires."""

    route: str
    recipient: str
    kind: str
    fired_at: datetime
    resolved_at: datetime | None = None

    def seconds(self, until: datetime) -> float:
        return ((self.resolved_at or until) - self.fired_at).total_seconds()


@dataclass(frozen=True)
class Aggregates:
    """What the store counted in SQL for a period and the one before it."""

    hours: tuple[HourCount, ...] = ()  # both periods
    delivery: Mapping[Line, Histogram] = field(default_factory=dict)
    previous_delivery: Mapping[Line, Histogram] = field(default_factory=dict)
    daily_delivery: Mapping[date, Histogram] = field(default_factory=dict)  # all mailboxes
    failures: tuple[FailureCount, ...] = ()
    incidents: tuple[Incident, ...] | None = None  # None: no alert data to read
    auth: tuple[AuthCount, ...] = ()  # a sample of each mailbox's delivered canaries
    content: tuple[ContentCount, ...] = ()  # their spam-filter verdicts, another such sample
    weeks: tuple[WeekTotal, ...] = ()  # the trend's periods before the two compared, oldest first


@dataclass(frozen=True, slots=True)
class WeekTotal:
    """All mailboxes in one period of the trend (a week for the weekly report)."""

    first_day: date
    tally: Tally
    delivery: Histogram


def first_day(period: Period) -> date:
    """The local date a trend point is labelled with."""
    return period.first_day or period.start.astimezone(period.zone).date()


@dataclass(frozen=True, slots=True)
class Mailbox:
    provider: str
    address: str | None = None


@dataclass(frozen=True)
class PairReport:
    route: str
    recipient: str
    mailbox: Mailbox
    summary: Summary
    first_seen: datetime | None  # the first hour with a canary in the period
    new: bool  # nothing in the previous period and the first canary after the period began
    configured: bool
    instance: str | None = None  # a split report's line of one instance; None: all of them


@dataclass(frozen=True)
class ProviderReport:
    provider: str
    pairs: tuple[PairReport, ...]  # one per mailbox, all instances added up
    summary: Summary
    by_instance: tuple[PairReport, ...] = ()  # a split report: each mailbox's instance lines


@dataclass(frozen=True)
class DayReport:
    day: Day
    tally: Tally
    delivery: Histogram


@dataclass(frozen=True)
class WorstHour:
    start: datetime
    label: str  # local, with the zone's abbreviation (a repeated hour stays distinct)
    tally: Tally

    @property
    def bad(self) -> int:
        return self.tally.total - self.tally.count(Verdict.INBOX)


@dataclass(frozen=True)
class FailureGroup:
    failure: FailureCount
    explanation: str
    remedy: str


@dataclass(frozen=True)
class Fix:
    severity: str  # high | medium | low
    text: str
    remedy: str | None = None


@dataclass(frozen=True)
class Report:
    period: Period
    previous_period: Period
    generated_at: datetime
    providers: tuple[ProviderReport, ...]
    total: Summary
    days: tuple[DayReport, ...]
    worst_hours: tuple[WorstHour, ...]
    failures: tuple[FailureGroup, ...]
    incidents: tuple[Incident, ...] | None
    fixes: tuple[Fix, ...] = ()
    instances: tuple[str, ...] = ()  # whose canaries it counts (either period), by name
    only: tuple[str, ...] = ()  # the instances it was limited to; () for the whole fleet
    split: bool = False  # asked to split each mailbox's line by instance
    senders: Mapping[str, str] = field(default_factory=dict)  # route → sending account
    auth: AuthReport = field(default_factory=AuthReport)
    content: ContentReport = field(default_factory=ContentReport)
    weeks: tuple[WeekTotal, ...] = ()
    dns: tuple[DnsPosture, ...] | None = None  # None: not checked for this report
    headline: Headline = field(default_factory=lambda: Headline("grey", "no canaries"))

    def sender_of(self, route: str) -> str:
        return self.senders.get(route, route)

    @property
    def pairs(self) -> list[PairReport]:
        return [pair for provider in self.providers for pair in provider.pairs]

    @property
    def shows_instances(self) -> bool:
        """Whether tables split by instance: asked for, and there is more than one."""
        return self.split and len(self.instances) > 1

    def lines(self, provider: ProviderReport) -> tuple[PairReport, ...]:
        """A provider's mailbox lines as tables show them: per instance when split."""
        return provider.by_instance if self.shows_instances else provider.pairs
