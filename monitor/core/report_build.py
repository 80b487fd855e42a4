"""From the store's aggregates to a `Report`: per mailbox, grouped by provider, per day, the
worst hours, failures with the catalogue's words, incidents, and what to fix.

Every input row is already a group (a mailbox's verdict count in one hour, a histogram
bucket…); the loops here run over groups, never over probes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from monitor.core.catalogue import advise
from monitor.core.models import Failure, Phase, Verdict
from monitor.core.report import HOUR, Day, Histogram, Period, Summary, Tally
from monitor.core.report_fix import Fix, what_to_fix

Pair = tuple[str, str]  # (route, recipient account)


@dataclass(frozen=True, slots=True)
class HourCount:
    route: str
    recipient: str
    hour: datetime  # UTC start of the hour
    verdict: Verdict
    n: int
    dmarc_failed: int = 0  # of these, canaries whose DMARC result the receiver wrote as fail


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
    delivery: Mapping[Pair, Histogram] = field(default_factory=dict)
    previous_delivery: Mapping[Pair, Histogram] = field(default_factory=dict)
    daily_delivery: Mapping[date, Histogram] = field(default_factory=dict)  # all mailboxes
    failures: tuple[FailureCount, ...] = ()
    incidents: tuple[Incident, ...] | None = None  # None: no alert data to read


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


@dataclass(frozen=True)
class ProviderReport:
    provider: str
    pairs: tuple[PairReport, ...]
    summary: Summary


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

    @property
    def pairs(self) -> list[PairReport]:
        return [pair for provider in self.providers for pair in provider.pairs]


def build(
    period: Period,
    aggregates: Aggregates,
    *,
    mailboxes: Mapping[str, Mailbox],
    configured: Iterable[Pair],
    now: datetime,
    slow_after: float = 300.0,
    worst: int = 5,
) -> Report:
    previous = period.previous()
    now_counts: dict[Pair, dict[Verdict, int]] = defaultdict(dict)
    before_counts: dict[Pair, dict[Verdict, int]] = defaultdict(dict)
    hourly: dict[datetime, dict[Verdict, int]] = defaultdict(dict)
    first_seen: dict[Pair, datetime] = {}
    dmarc: dict[Pair, dict[Verdict, int]] = defaultdict(dict)
    for row in aggregates.hours:
        pair = (row.route, row.recipient)
        if period.start <= row.hour < period.end:
            _add(now_counts[pair], row.verdict, row.n)
            _add(hourly[row.hour], row.verdict, row.n)
            if row.dmarc_failed:
                _add(dmarc[pair], row.verdict, row.dmarc_failed)
            if pair not in first_seen or row.hour < first_seen[pair]:
                first_seen[pair] = row.hour
        elif previous.start <= row.hour < previous.end:
            _add(before_counts[pair], row.verdict, row.n)

    wanted = set(configured)
    seen = {*now_counts, *before_counts, *aggregates.delivery, *aggregates.previous_delivery}
    by_provider: dict[str, list[PairReport]] = defaultdict(list)
    for pair in sorted(wanted | seen):
        summary = Summary(
            Tally(now_counts.get(pair, {})),
            aggregates.delivery.get(pair, Histogram()),
            Tally(before_counts.get(pair, {})),
            aggregates.previous_delivery.get(pair, Histogram()),
            dmarc.get(pair, {}),
        )
        mailbox = mailboxes.get(pair[1], Mailbox("unknown"))
        started = first_seen.get(pair)
        new = started is not None and started > period.start and pair not in before_counts
        shown = PairReport(*pair, mailbox, summary, started, new, pair in wanted)
        by_provider[mailbox.provider].append(shown)
    providers = tuple(
        ProviderReport(name, tuple(pairs), _sum(p.summary for p in pairs))
        for name, pairs in sorted(by_provider.items())
    )

    failures = tuple(
        _explained(f) for f in sorted(aggregates.failures, key=lambda f: (-f.count, f.route))
    )
    incidents = None
    if aggregates.incidents is not None:
        incidents = tuple(
            sorted(
                (i for i in aggregates.incidents if _overlaps(i, period)),
                key=lambda i: (i.fired_at, i.route, i.recipient, i.kind),
            )
        )
    report = Report(
        period=period,
        previous_period=previous,
        generated_at=now,
        providers=providers,
        total=_sum(p.summary for p in providers),
        days=tuple(_days(period, hourly, aggregates.daily_delivery)),
        worst_hours=tuple(_worst_hours(period, hourly, worst)),
        failures=failures,
        incidents=incidents,
    )
    return replace(report, fixes=tuple(what_to_fix(report, slow_after=slow_after)))


def _add(counts: dict[Verdict, int], verdict: Verdict, n: int) -> None:
    counts[verdict] = counts.get(verdict, 0) + n


def _sum(summaries: Iterable[Summary]) -> Summary:
    total = Summary()
    for summary in summaries:
        total = total + summary
    return total


def _days(
    period: Period,
    hourly: Mapping[datetime, dict[Verdict, int]],
    delivery: Mapping[date, Histogram],
) -> Iterable[DayReport]:
    for day in period.days():
        counts: dict[Verdict, int] = {}
        for index in range(day.hours):
            for verdict, n in hourly.get(day.start + index * HOUR, {}).items():
                _add(counts, verdict, n)
        yield DayReport(day, Tally(counts), delivery.get(day.date, Histogram()))


def _worst_hours(
    period: Period, hourly: Mapping[datetime, dict[Verdict, int]], limit: int
) -> list[WorstHour]:
    zone = period.zone
    hours = []
    for start, counts in hourly.items():
        local = start.astimezone(zone)
        label = f"{local:%a %d %b %H:%M} {local.tzname()}"
        hours.append(WorstHour(start, label, Tally(counts)))
    bad = [h for h in hours if h.bad > 0]
    bad.sort(key=lambda h: (-h.bad, -(h.bad / h.tally.total), h.start))
    return bad[:limit]


def _explained(failure: FailureCount) -> FailureGroup:
    try:
        phase = Phase(failure.phase) if failure.phase else Phase.DONE
    except ValueError:
        phase = Phase.DONE
    advice = advise(
        Failure(
            kind=failure.kind or failure.verdict.value,
            phase=phase,
            transient=bool(failure.transient),
            message=failure.message or "",
            code=failure.code,
            enhanced=failure.enhanced,
        )
    )
    return FailureGroup(failure, advice.explanation, advice.remedy)


def _overlaps(incident: Incident, period: Period) -> bool:
    ended = incident.resolved_at
    return incident.fired_at < period.end and (ended is None or ended > period.start)
