"""The report's further reads: the trend of the last weeks, from the rollup, and two
samples of each mailbox's newest delivered canaries, from `probes`: their
Authentication-Results and their spam-filter headers.

All stay cheap whatever the history: the trend reads one range of the rollup's key per
older period (the two compared periods come from what the report read already), each
sample one index seek per mailbox (route, recipient, planned_at) reading at most its size
(auth SAMPLE, content SAMPLE) rows back from the period's end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.adapters.report_tables import RollupRow
from monitor.adapters.tables import ProbeRow
from monitor.core.models import Verdict
from monitor.reports.auth import SAMPLE, AuthCount, results_of_text
from monitor.reports.content import SAMPLE as CONTENT_SAMPLE
from monitor.reports.content import ContentCount, scores_of_text
from monitor.reports.document import WeekTotal, first_day
from monitor.reports.model import Histogram, Period, Tally

TREND_PERIODS = 8
DELIVERED = (Verdict.INBOX.value, Verdict.SPAM.value, Verdict.LATE.value)
_ROLLUP = RollupRow.__table__.c
_PROBES = ProbeRow.__table__.c
_VERDICTS = {v.value: v for v in Verdict}


def trend_periods(period: Period, count: int = TREND_PERIODS) -> list[Period]:
    """`period` and the `count - 1` before it, oldest first."""
    periods = [period]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods[::-1]


def _only(column: Any, instances: tuple[str, ...]) -> tuple[Any, ...]:
    return (column.in_(instances),) if instances else ()


async def weeks(
    db: AsyncConnection, period: Period, instances: tuple[str, ...]
) -> tuple[WeekTotal, ...]:
    """The trend's periods before the two the report compares (those it has read already),
    oldest first: one range of the rollup's key each, grouped by verdict and bucket."""
    found = []
    for older in trend_periods(period)[:-2]:
        statement = (
            select(
                _ROLLUP.verdict, _ROLLUP.bucket, func.sum(_ROLLUP.n), func.max(_ROLLUP.max_seconds)
            )
            .where(
                _ROLLUP.hour >= older.start,
                _ROLLUP.hour < older.end,
                *_only(_ROLLUP.instance, instances),
            )
            .group_by(_ROLLUP.verdict, _ROLLUP.bucket)
        )
        counts: dict[Verdict, int] = {}
        buckets = []
        for verdict, bucket, n, most in await db.execute(statement):
            if verdict not in _VERDICTS:
                continue  # a verdict a newer version added: not ours to count
            counts[_VERDICTS[verdict]] = counts.get(_VERDICTS[verdict], 0) + int(n)
            if bucket >= 0:
                buckets.append((bucket, int(n), most))
        found.append(WeekTotal(first_day(older), Tally(counts), Histogram.of(buckets)))
    return tuple(found)


def _newest_delivered(
    column: Any, route: str, recipient: str, period: Period, instances: tuple[str, ...], limit: int
) -> Select[Any]:
    """The verdict and `column` (as text) of the mailbox's newest `limit` delivered canaries
    in `period`: one seek on (route, recipient, planned_at), backwards from its end."""
    return (
        # As text: canaries of one mailbox carry a handful of distinct values, parsed
        # once each (the parsers cache them) instead of once per row.
        select(_PROBES.verdict, cast(column, Text))
        .where(
            _PROBES.route == route,
            _PROBES.recipient == recipient,
            _PROBES.planned_at >= period.start,
            _PROBES.planned_at < period.end,
            _PROBES.verdict.in_(DELIVERED),
            *_only(_PROBES.instance, instances),
        )
        .order_by(_PROBES.planned_at.desc())
        .limit(limit)
    )


async def auth_sample(
    db: AsyncConnection,
    period: Period,
    mailboxes: Iterable[tuple[str, str]],
    instances: tuple[str, ...],
) -> tuple[AuthCount, ...]:
    """Of each (route, recipient): its newest SAMPLE delivered canaries in `period`."""
    found: dict[tuple[str, str, Verdict, str, str, str], int] = defaultdict(int)
    for route, recipient in sorted(set(mailboxes)):
        statement = _newest_delivered(
            _PROBES.auth_results, route, recipient, period, instances, SAMPLE
        )
        for verdict, auth in await db.execute(statement):
            found[(route, recipient, _VERDICTS[verdict], *results_of_text(auth))] += 1
    return tuple(AuthCount(*key, n) for key, n in found.items())


async def content_sample(
    db: AsyncConnection,
    period: Period,
    mailboxes: Iterable[tuple[str, str]],
    instances: tuple[str, ...],
) -> tuple[ContentCount, ...]:
    """Of each (route, recipient): the spam-filter verdicts on its newest CONTENT_SAMPLE
    delivered canaries in `period` (those whose receiver wrote no such headers left out)."""
    found: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for route, recipient in sorted(set(mailboxes)):
        statement = _newest_delivered(
            _PROBES.spam_headers, route, recipient, period, instances, CONTENT_SAMPLE
        )
        for verdict, headers in await db.execute(statement):
            if headers:
                found[(route, recipient, verdict, headers)] += 1
    return tuple(
        ContentCount(route, recipient, _VERDICTS[verdict], scores, n)
        for (route, recipient, verdict, headers), n in found.items()
        if (scores := scores_of_text(headers))
    )
