"""The report's SQL: aggregates of a period (and the one before it) and the record of sends.

Counts and delivery-time histograms come from `probe_rollup` (kept by triggers, see
report_tables.py), so building a weekly report reads a few rows per mailbox and hour whatever
the number of probes; only failed probes are read from `probes` itself, from a partial
covering index. All queries of one report run in one transaction (a snapshot on both databases).
Counts and histograms come per instance (the daemon that sent the canaries): the core adds
them up, or splits the report by instance; a report of some instances only filters in SQL.

Incidents come from the alert tables: the newest episode of each (route, recipient, kind) is
in `alerts`; older episodes are known from the outbox rows they caused (`alert_deliveries`),
so with no alert channel configured only the newest episode of each alert can be shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, case, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.adapters.alert_tables import AlertRow, DeliveryRow
from monitor.adapters.report_samples import auth_sample, content_sample, weeks
from monitor.adapters.report_tables import FAILED_VERDICTS, ReportSendRow, RollupRow
from monitor.adapters.tables import ProbeRow
from monitor.core.models import Verdict
from monitor.reports.document import Aggregates, FailureCount, HourCount, Incident, Line
from monitor.reports.model import Histogram, Period

INCIDENT_LOOKBACK = timedelta(days=35)  # an alert that fired this long before may still be open
_VERDICTS = {v.value: v for v in Verdict}
_ROLLUP = RollupRow.__table__.c
_PROBES = ProbeRow.__table__.c
_SENDS = ReportSendRow.__table__.c
# What tells one failure from another, in the order `Failure` is built from.
FAILURE_KEYS = (
    _PROBES.failure,
    _PROBES.failure_phase,
    _PROBES.failure_code,
    _PROBES.failure_enhanced,
    _PROBES.failure_transient,
)


@dataclass(frozen=True, slots=True)
class SendRecord:
    recipient: str
    status: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    message_id: str


class ReportStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as connection:
            if self._engine.dialect.name == "postgresql":
                # READ COMMITTED would let rows finish between the report's queries.
                connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                yield connection

    async def aggregates(self, period: Period, instances: Sequence[str] = ()) -> Aggregates:
        """`period` and the one before; of the canaries `instances` sent (empty: all of them).
        Incidents are the alerts of the mailboxes, whichever instance saw them."""
        previous = period.previous()
        only = tuple(instances)
        async with self._snapshot() as db:
            delivery, previous_delivery, daily = await _delivery(db, previous, period, only)
            hours = await _hours(db, previous.start, period.end, only)
            seen = {(h.route, h.recipient) for h in hours if h.hour >= period.start}
            return Aggregates(
                hours=hours,
                delivery=delivery,
                previous_delivery=previous_delivery,
                daily_delivery=daily,
                failures=await _failures(db, period, only),
                incidents=await _incidents(db, period),
                auth=await auth_sample(db, period, seen, only),
                content=await content_sample(db, period, seen, only),
                weeks=await weeks(db, period, only),
            )

    async def instances(self, start: datetime, end: datetime) -> list[str]:
        """The instances that recorded canaries from `start` to `end`, by name."""
        statement = (
            select(_ROLLUP.instance)
            .where(*_in(_ROLLUP.hour, start, end))
            .distinct()
            .order_by(_ROLLUP.instance)
        )
        async with self._engine.connect() as db:
            return list((await db.execute(statement)).scalars())

    async def monitored_before(self, moment: datetime) -> bool:
        """Whether any probe was planned before `moment` (a new install has no past week)."""
        statement = select(_PROBES.id).where(_PROBES.planned_at < moment).limit(1)
        async with self._engine.connect() as db:
            return (await db.execute(statement)).first() is not None

    # -- the record of scheduled sends ---------------------------------------------------------

    async def claim(
        self,
        period: Period,
        recipient: str,
        *,
        owner: str,
        now: datetime,
        lease: float,
        message_id: str,
    ) -> bool:
        """Take the send of `period` to `recipient`: new, failed and due, or a lapsed lease."""
        until = now + timedelta(seconds=lease)
        key = (
            _SENDS.period_start == period.start,
            _SENDS.period_end == period.end,
            _SENDS.recipient == recipient,
        )
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[
            self._engine.dialect.name
        ]
        fresh = (
            insert(ReportSendRow.__table__)
            .values(
                period_start=period.start,
                period_end=period.end,
                recipient=recipient,
                status="sending",
                attempts=1,
                claimed_by=owner,
                lease_until=until,
                message_id=message_id,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["period_start", "period_end", "recipient"])
            .returning(_SENDS.id)
        )
        retake = (
            update(ReportSendRow)
            .where(*key)
            .where(
                or_(
                    (_SENDS.status == "failed") & (_SENDS.next_attempt_at <= now),
                    (_SENDS.status == "sending") & (_SENDS.lease_until < now),
                )
            )
            .values(
                status="sending",
                attempts=_SENDS.attempts + 1,
                claimed_by=owner,
                lease_until=until,
            )
            .execution_options(synchronize_session=False)
        )
        async with self._engine.begin() as db:
            if (await db.execute(fresh)).first() is not None:
                return True
            result = cast(CursorResult[Any], await db.execute(retake))
            return result.rowcount == 1

    async def finish(
        self,
        period: Period,
        recipient: str,
        *,
        owner: str,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {"lease_until": None}
        if error is None:
            values |= {"status": "sent", "sent_at": now, "last_error": None}
        else:
            values |= {"status": "failed", "last_error": error, "next_attempt_at": retry_at}
        statement = (
            update(ReportSendRow)
            .where(
                _SENDS.period_start == period.start,
                _SENDS.period_end == period.end,
                _SENDS.recipient == recipient,
                _SENDS.status == "sending",
                _SENDS.claimed_by == owner,
            )
            .values(values)
            .execution_options(synchronize_session=False)
        )
        async with self._engine.begin() as db:
            await db.execute(statement)

    async def release(self, owner: str, now: datetime) -> int:
        """Leases this instance held when it stopped: free them now, not when they lapse."""
        statement = (
            update(ReportSendRow)
            .where(_SENDS.status == "sending", _SENDS.claimed_by == owner)
            .values(lease_until=now)
            .execution_options(synchronize_session=False)
        )
        async with self._engine.begin() as db:
            return cast(CursorResult[Any], await db.execute(statement)).rowcount

    async def sends(self, period: Period) -> list[SendRecord]:
        statement = (
            select(ReportSendRow)
            .where(_SENDS.period_start == period.start, _SENDS.period_end == period.end)
            .order_by(_SENDS.recipient)
        )
        async with self._engine.connect() as db:
            rows = (await db.execute(statement)).all()
        return [
            SendRecord(r.recipient, r.status, r.attempts, r.sent_at, r.last_error, r.message_id)
            for r in rows
        ]


# -- the report's queries ---------------------------------------------------------------------


def _in(column: Any, start: datetime, end: datetime) -> tuple[Any, Any]:
    return column >= start, column < end


def _of(db: AsyncConnection, column: Any, instances: tuple[str, ...]) -> tuple[Any, ...]:
    """Rows of `instances` only (all rows when there are none)."""
    if not instances:
        return ()
    if db.dialect.name == "sqlite":
        # Through coalesce, a no-op (never NULL): SQLite's planner sorts for a GROUP BY
        # that holds a key column compared with constants, instead of walking the key in
        # order. PostgreSQL, though, would guess the rows this keeps and plan badly.
        column = func.coalesce(column, "")
    return (column.in_(instances),)


async def _hours(
    db: AsyncConnection, start: datetime, end: datetime, instances: tuple[str, ...]
) -> tuple[HourCount, ...]:
    # In the rollup's key order: SQLite aggregates as it walks the key, without a sort.
    keys = (_ROLLUP.hour, _ROLLUP.route, _ROLLUP.recipient, _ROLLUP.instance, _ROLLUP.verdict)
    dmarc_failed = case((func.lower(_ROLLUP.dmarc) == "fail", _ROLLUP.n), else_=0)
    statement = (
        select(*keys, func.sum(_ROLLUP.n), func.sum(dmarc_failed))
        .where(*_in(_ROLLUP.hour, start, end), *_of(db, _ROLLUP.instance, instances))
        .group_by(*keys)
    )
    return tuple(
        HourCount(route, recipient, hour, _VERDICTS[verdict], int(n), int(failed), instance)
        for hour, route, recipient, instance, verdict, n, failed in await db.execute(statement)
        if verdict in _VERDICTS  # a verdict a newer version added: not ours to count
    )


Buckets = list[tuple[int, int, float | None]]


async def _delivery(
    db: AsyncConnection, previous: Period, period: Period, instances: tuple[str, ...]
) -> tuple[dict[Line, Histogram], dict[Line, Histogram], dict[date, Histogram]]:
    """Delivery-time histograms per mailbox and instance in both periods and per day of
    `period`, from one pass over the rollup: rows grouped by line, local day and bucket."""
    days = [*previous.days(), *period.days()]
    day = case(*((_ROLLUP.hour < d.end, index) for index, d in enumerate(days)), else_=len(days))
    keys = (_ROLLUP.route, _ROLLUP.recipient, _ROLLUP.instance, day, _ROLLUP.bucket)
    statement = (
        select(*keys, func.sum(_ROLLUP.n), func.max(_ROLLUP.max_seconds))
        .where(
            _ROLLUP.bucket >= 0,
            *_in(_ROLLUP.hour, previous.start, period.end),
            *_of(db, _ROLLUP.instance, instances),
        )
        .group_by(*keys)
    )
    before: dict[Line, Buckets] = defaultdict(list)
    now: dict[Line, Buckets] = defaultdict(list)
    daily: dict[date, Buckets] = defaultdict(list)
    first = len(days) - len(period.days())
    for route, recipient, instance, index, bucket, n, most in await db.execute(statement):
        row = (bucket, int(n), most)
        if index < first:
            before[(route, recipient, instance)].append(row)
        elif index < len(days):
            now[(route, recipient, instance)].append(row)
            daily[days[index].date].append(row)
    return _histograms(now), _histograms(before), _histograms(daily)


def _histograms(rows: Mapping[Any, Buckets]) -> dict[Any, Histogram]:
    return {key: Histogram.of(buckets) for key, buckets in rows.items()}


async def _failures(
    db: AsyncConnection, period: Period, instances: tuple[str, ...]
) -> tuple[FailureCount, ...]:
    keys = (_PROBES.route, _PROBES.recipient, _PROBES.verdict, *FAILURE_KEYS)
    statement = (
        select(*keys, func.count(), func.max(_PROBES.id))
        # Spelled as in the partial index, with literals, so SQLite can use it.
        .where(
            text(FAILED_VERDICTS),
            *_in(_PROBES.planned_at, period.start, period.end),
            *_of(db, _PROBES.instance, instances),
        )
        .group_by(*keys)
    )
    groups = (await db.execute(statement)).all()
    # The newest text of each group, as its example: a few rows read by primary key.
    newest = [row[-1] for row in groups]
    said: dict[int, str | None] = {}
    for at in range(0, len(newest), 500):
        chosen = _PROBES.id.in_(newest[at : at + 500])
        query = select(_PROBES.id, _PROBES.failure_message).where(chosen)
        said.update({probe_id: message for probe_id, message in await db.execute(query)})
    return tuple(
        FailureCount(
            route, to, _VERDICTS[verdict], kind, phase, code, enhanced, transient, n, said.get(last)
        )
        for route, to, verdict, kind, phase, code, enhanced, transient, n, last in groups
    )


async def _incidents(db: AsyncConnection, period: Period) -> tuple[Incident, ...]:
    ends: dict[tuple[str, str, str, datetime], datetime | None] = {}
    a = AlertRow.__table__.c
    # One row per alert: no lower bound, an alert firing for months overlaps this period too.
    statement = select(a.route, a.recipient, a.kind, a.status, a.fired_at, a.resolved_at).where(
        a.fired_at.is_not(None), a.fired_at < period.end
    )
    latest: dict[tuple[str, str, str], datetime] = {}
    for route, recipient, kind, status, fired, resolved in await db.execute(statement):
        latest[(route, recipient, kind)] = fired
        if status == "firing":
            ends[(route, recipient, kind, fired)] = None
        elif resolved is not None and resolved >= fired:
            ends[(route, recipient, kind, fired)] = resolved
    outbox = DeliveryRow.__table__.c
    statement = select(outbox.payload).where(
        outbox.event.in_(("firing", "resolved")),
        outbox.created_at >= period.start - INCIDENT_LOOKBACK,
    )
    for (payload,) in await db.execute(statement):
        fired, resolved = _moment(payload.get("fired_at")), _moment(payload.get("resolved_at"))
        if fired is None or fired >= period.end:
            continue
        key = (str(payload.get("route")), str(payload.get("recipient")), str(payload.get("kind")))
        if resolved is not None and resolved >= fired and payload.get("event") == "resolved":
            ends[(*key, fired)] = resolved
        else:
            ends.setdefault((*key, fired), None)
    return tuple(
        Incident(route, recipient, kind, fired, resolved)
        for (route, recipient, kind, fired), resolved in ends.items()
        # An older episode whose end no row recorded has ended all the same: leave it out
        # rather than show it as still firing.
        if resolved is not None or latest.get((route, recipient, kind), fired) <= fired
    )


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None
