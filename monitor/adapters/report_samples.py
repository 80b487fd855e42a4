"""The report's two further reads: the trend of the last weeks, from the rollup, and a
sample of each mailbox's Authentication-Results, from `probes`.

Both stay cheap whatever the history: the trend is one grouped range over the rollup (a few
rows per mailbox and hour), the sample one index seek per mailbox (route, recipient,
planned_at) reading at most SAMPLE rows back from the period's end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.adapters.report_tables import RollupRow
from monitor.adapters.tables import ProbeRow
from monitor.core.models import Verdict
from monitor.reports.auth import SAMPLE, AuthCount, results_of
from monitor.reports.build import WeekTotal
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
    periods = trend_periods(period)
    index = case(*((_ROLLUP.hour < p.end, i) for i, p in enumerate(periods)), else_=len(periods))
    statement = (
        select(
            index,
            _ROLLUP.verdict,
            _ROLLUP.bucket,
            func.sum(_ROLLUP.n),
            func.max(_ROLLUP.max_seconds),
        )
        .where(
            _ROLLUP.hour >= periods[0].start,
            _ROLLUP.hour < period.end,
            *_only(_ROLLUP.instance, instances),
        )
        .group_by(index, _ROLLUP.verdict, _ROLLUP.bucket)
    )
    counts: dict[int, dict[Verdict, int]] = defaultdict(dict)
    buckets: dict[int, list[tuple[int, int, float | None]]] = defaultdict(list)
    for at, verdict, bucket, n, most in await db.execute(statement):
        if at >= len(periods) or verdict not in _VERDICTS:
            continue
        shown = _VERDICTS[verdict]
        counts[at][shown] = counts[at].get(shown, 0) + int(n)
        if bucket >= 0:
            buckets[at].append((bucket, int(n), most))
    return tuple(
        WeekTotal(
            p.first_day or p.start.astimezone(p.zone).date(),
            Tally(counts.get(i, {})),
            Histogram.of(buckets.get(i, [])),
        )
        for i, p in enumerate(periods)
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
        statement = (
            select(_PROBES.verdict, _PROBES.auth_results)
            .where(
                _PROBES.route == route,
                _PROBES.recipient == recipient,
                _PROBES.planned_at >= period.start,
                _PROBES.planned_at < period.end,
                _PROBES.verdict.in_(DELIVERED),
                *_only(_PROBES.instance, instances),
            )
            .order_by(_PROBES.planned_at.desc())
            .limit(SAMPLE)
        )
        for verdict, auth in await db.execute(statement):
            found[(route, recipient, _VERDICTS[verdict], *results_of(auth))] += 1
    return tuple(AuthCount(*key, n) for key, n in found.items())
