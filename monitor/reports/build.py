"""From the store's aggregates to a `Report`: per mailbox, grouped by provider, per day, the
worst hours, failures with the catalogue's words, incidents, and what to fix.

Every input row is already a group (a mailbox's verdict count of one instance in one hour,
a histogram bucket…); the loops here run over groups, never over probes. The aggregates
come per instance (the daemon that claimed and sent the canary); a mailbox's line adds its
instances up, and a report split by instance also keeps each instance's line. Everything
else (providers, days, worst hours, what to fix) is of the mailbox lines, split or not.
The shapes it fills in are in monitor/reports/document.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime

from monitor.core.catalogue import advise
from monitor.core.models import Failure, Phase, Verdict
from monitor.dnscheck.history import DnsPosture
from monitor.reports.auth import auth_report
from monitor.reports.content import content_report
from monitor.reports.document import (
    Aggregates,
    DayReport,
    FailureCount,
    FailureGroup,
    Incident,
    Line,
    Mailbox,
    Pair,
    PairReport,
    ProviderReport,
    Report,
    WeekTotal,
    WorstHour,
    first_day,
)
from monitor.reports.fixes import what_to_fix
from monitor.reports.model import HOUR, Histogram, Period, Summary, Tally
from monitor.reports.verdict import headline


def build(
    period: Period,
    aggregates: Aggregates,
    *,
    mailboxes: Mapping[str, Mailbox],
    configured: Iterable[Pair],
    now: datetime,
    slow_after: float = 300.0,
    worst: int = 5,
    split: bool = False,
    only: Iterable[str] = (),
    senders: Mapping[str, str] | None = None,
    dns: Iterable[DnsPosture] | None = None,
) -> Report:
    """`split`: keep each mailbox's line per instance too; `only`: the instances the store
    limited the aggregates to, for the report to say so; `senders`: each route's sending
    account; `dns`: the sending accounts' DNS posture, when it was checked.

    Providers come worst first (the largest share not in the inbox; those without canaries
    last); a provider's mailboxes stay in route and recipient order."""
    previous = period.previous()
    now_counts: dict[Line, dict[Verdict, int]] = defaultdict(dict)
    before_counts: dict[Line, dict[Verdict, int]] = defaultdict(dict)
    hourly: dict[datetime, dict[Verdict, int]] = defaultdict(dict)
    first_seen: dict[Line, datetime] = {}
    dmarc: dict[Line, dict[Verdict, int]] = defaultdict(dict)
    for row in aggregates.hours:
        line = (row.route, row.recipient, row.instance)
        if period.start <= row.hour < period.end:
            _add(now_counts[line], row.verdict, row.n)
            _add(hourly[row.hour], row.verdict, row.n)
            if row.dmarc_failed:
                _add(dmarc[line], row.verdict, row.dmarc_failed)
            if line not in first_seen or row.hour < first_seen[line]:
                first_seen[line] = row.hour
        elif previous.start <= row.hour < previous.end:
            _add(before_counts[line], row.verdict, row.n)

    wanted = set(configured)
    seen = {*now_counts, *before_counts, *aggregates.delivery, *aggregates.previous_delivery}
    lines: dict[Pair, list[PairReport]] = defaultdict(list)
    for line in sorted(seen):
        route, recipient, instance = line
        summary = Summary(
            Tally(now_counts.get(line, {})),
            aggregates.delivery.get(line, Histogram()),
            Tally(before_counts.get(line, {})),
            aggregates.previous_delivery.get(line, Histogram()),
            dmarc.get(line, {}),
        )
        mailbox = mailboxes.get(recipient, Mailbox("unknown"))
        started = first_seen.get(line)
        new = started is not None and started > period.start and line not in before_counts
        listed = (route, recipient) in wanted
        shown = PairReport(route, recipient, mailbox, summary, started, new, listed, instance)
        lines[(route, recipient)].append(shown)

    by_provider: dict[str, list[PairReport]] = defaultdict(list)
    split_lines: dict[str, list[PairReport]] = defaultdict(list)
    for pair in sorted(wanted | set(lines)):
        own = lines.get(pair, [])
        mailbox = mailboxes.get(pair[1], Mailbox("unknown"))
        started = min((o.first_seen for o in own if o.first_seen is not None), default=None)
        earlier = any((*pair, o.instance) in before_counts for o in own)
        new = started is not None and started > period.start and not earlier
        summary = _sum(o.summary for o in own)
        whole = PairReport(*pair, mailbox, summary, started, new, pair in wanted)
        by_provider[mailbox.provider].append(whole)
        split_lines[mailbox.provider] += own or [whole]
    providers = worst_first(
        ProviderReport(
            name,
            tuple(pairs),
            _sum(p.summary for p in pairs),
            tuple(split_lines[name]) if split else (),
        )
        for name, pairs in sorted(by_provider.items())
    )
    routes = dict(senders or {})

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
    total = _sum(p.summary for p in providers)
    order = [p.provider for p in providers]

    def provider_of(recipient: str) -> str:
        return mailboxes.get(recipient, Mailbox("unknown")).provider

    def mailbox_of(recipient: str) -> tuple[str, str | None]:
        return provider_of(recipient), mailboxes.get(recipient, Mailbox("unknown")).address

    report = Report(
        period=period,
        previous_period=previous,
        generated_at=now,
        providers=providers,
        total=total,
        days=tuple(_days(period, hourly, aggregates.daily_delivery)),
        worst_hours=tuple(_worst_hours(period, hourly, worst)),
        failures=failures,
        incidents=incidents,
        instances=tuple(sorted({instance for _, _, instance in seen})),
        only=tuple(only),
        split=split,
        senders=routes,
        auth=auth_report(
            aggregates.auth, provider_of, lambda route: routes.get(route, route), order
        ),
        content=content_report(aggregates.content, mailbox_of, order),
        weeks=(*aggregates.weeks, *_compared(period, total)),
        dns=tuple(dns) if dns is not None else None,
    )
    report = replace(report, fixes=tuple(what_to_fix(report, slow_after=slow_after)))
    shown = headline(
        report.total,
        [(p.provider, p.summary) for p in report.providers],
        [fix.severity for fix in report.fixes],
        report.auth.causes,
    )
    return replace(report, headline=shown)


def badness(summary: Summary) -> tuple[float, int]:
    """Sort key, worst first: the share not in the inbox, then the number of canaries; a
    line without canaries sorts last (nothing measured is not "good", but not worse)."""
    rate = summary.tally.rate(Verdict.INBOX)
    return (-(1.0 - rate) if rate is not None else 1.0, -summary.tally.total)


def worst_first(providers: Iterable[ProviderReport]) -> tuple[ProviderReport, ...]:
    return tuple(sorted(providers, key=lambda p: (*badness(p.summary), p.provider)))


def _compared(period: Period, total: Summary) -> tuple[WeekTotal, WeekTotal]:
    """The trend's last two points: the periods the report compares, from its totals."""
    before = WeekTotal(first_day(period.previous()), total.previous, total.previous_delivery)
    return before, WeekTotal(first_day(period), total.tally, total.delivery)


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
