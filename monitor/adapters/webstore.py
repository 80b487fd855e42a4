"""The status page's SQL: index seeks and the hourly rollup, never a scan of `probes`.

- newest verdict per mailbox: one `ORDER BY planned_at DESC LIMIT 1` seek per pair down the
  (route, recipient, planned_at) index, for the pairs the config names (a VALUES list), so the
  cost grows with the mailboxes, not with the history;
- counts per verdict and delivery-time histograms: `probe_rollup` (see report_tables.py), a
  few rows per mailbox and hour;
- failures by code: the partial covering index of failed probes;
- a route's recent canaries: the (route, planned_at) index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, case, func, literal, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.adapters import rows as convert
from monitor.adapters.alert_tables import AlertRow
from monitor.adapters.alertstore import evidence_from
from monitor.adapters.leases import Fleet, fleet_of
from monitor.adapters.report_tables import FAILED_VERDICTS, RollupRow
from monitor.adapters.reportstore import FAILURE_KEYS
from monitor.adapters.tables import ProbeRow
from monitor.core.models import Failure, Phase, ProbeRecord, Verdict
from monitor.reports.model import Histogram
from monitor.web.model import Latest, Tally

_VERDICTS = {v.value: v for v in Verdict}
_ROLLUP = RollupRow.__table__.c
_PROBES = ProbeRow.__table__.c
_ALERTS = AlertRow.__table__.c
_LATEST = (
    _PROBES.id,
    _PROBES.route,
    _PROBES.recipient,
    _PROBES.verdict,
    _PROBES.planned_at,
    _PROBES.delivery_seconds,
    _PROBES.failure,
    _PROBES.failure_code,
)
_CHUNK = 400  # pairs per statement: SQLite allows 500 SELECTs in one UNION


@dataclass(frozen=True, slots=True)
class OpenAlert:
    route: str
    recipient: str
    kind: str
    since: datetime | None
    fired_at: datetime | None
    probe_id: int | None
    failure: Failure | None


@dataclass(frozen=True, slots=True)
class FailureGroup:
    failure: Failure  # with the newest probe's text as its message
    n: int
    last_id: int
    recipient: str


@dataclass(frozen=True, slots=True)
class Recent:
    probe_id: int
    recipient: str
    planned_at: datetime
    state: str
    verdict: Verdict | None
    delivery_seconds: float | None
    failure: str | None
    code: int | None


class WebStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statements: dict[tuple[tuple[str, str], ...], Any] = {}

    async def fleet(self, lease: float) -> Fleet | None:
        """Who watches which mailbox on a shared database (see leases.fleet_of)."""
        return await fleet_of(self._engine, lease)

    async def latest(self, pairs: Sequence[tuple[str, str]]) -> list[Latest]:
        """The newest final probe of each (route, recipient) that has one."""
        if not pairs:
            return []
        found: list[Latest] = []
        async with self._engine.connect() as db:
            for at in range(0, len(pairs), _CHUNK):
                statement = self._newest_of(tuple(pairs[at : at + _CHUNK]))
                for row in await db.execute(statement):
                    if row.verdict in _VERDICTS:
                        found.append(
                            Latest(
                                row.route,
                                row.recipient,
                                row.id,
                                _VERDICTS[row.verdict],
                                row.planned_at,
                                row.delivery_seconds,
                                row.failure,
                                row.failure_code,
                            )
                        )
        return found

    def _newest_of(self, pairs: tuple[tuple[str, str], ...]) -> Any:
        """Each pair's newest final row, joined by the id its index seek finds. Built once per
        set of pairs (they change only with the config): building it is not free either."""
        kept = self._statements.get(pairs)
        if kept is not None:
            return kept
        # SELECT … UNION ALL SELECT …, not VALUES: SQLAlchemy cannot cache the compiled form
        # of a VALUES, and compiling a thousand pairs each view costs more than the seeks.
        chunk = union_all(
            *(
                select(literal(r, Text).label("route"), literal(t, Text).label("recipient"))
                for r, t in pairs
            )
        ).cte("pairs")
        probe = ProbeRow.__table__.alias("p")
        newest = (
            select(probe.c.id)
            .where(probe.c.route == chunk.c.route, probe.c.recipient == chunk.c.recipient)
            .where(probe.c.state == "final")
            .order_by(probe.c.planned_at.desc(), probe.c.id.desc())
            .limit(1)
            .correlate(chunk)
            .scalar_subquery()
        )
        statement = (
            select(*_LATEST).select_from(chunk).join(ProbeRow.__table__, _PROBES.id == newest)
        )
        if len(self._statements) >= 8:  # old configs' pairs
            self._statements.clear()
        self._statements[pairs] = statement
        return statement

    async def tallies(
        self, since: datetime, until: datetime | None, recent: datetime
    ) -> tuple[dict[tuple[str, str], Tally], dict[tuple[str, str], Tally]]:
        """Per (route, recipient): verdict counts of the hours from `recent` on, and from
        `since` on, both before `until` (None: up to now)."""
        is_recent = case((_ROLLUP.hour >= recent, 1), else_=0)
        keys = (_ROLLUP.route, _ROLLUP.recipient, _ROLLUP.verdict, is_recent)
        statement = select(*keys, func.sum(_ROLLUP.n)).where(*_hours(since, until)).group_by(*keys)
        short: dict[tuple[str, str], dict[Verdict, int]] = defaultdict(dict)
        long: dict[tuple[str, str], dict[Verdict, int]] = defaultdict(dict)
        async with self._engine.connect() as db:
            for route_name, recipient, verdict, fresh, n in await db.execute(statement):
                if verdict not in _VERDICTS:
                    continue
                key, v = (route_name, recipient), _VERDICTS[verdict]
                long[key][v] = long[key].get(v, 0) + int(n)
                if fresh:
                    short[key][v] = short[key].get(v, 0) + int(n)
        return {k: Tally(v) for k, v in short.items()}, {k: Tally(v) for k, v in long.items()}

    async def hourly(
        self, since: datetime, until: datetime | None, route: str, recipient: str | None = None
    ) -> dict[tuple[str, datetime], Tally]:
        """Per (recipient, hour) of one route: verdict counts, for the timeline strip."""
        keys = (_ROLLUP.hour, _ROLLUP.recipient, _ROLLUP.verdict)
        statement = (
            select(*keys, func.sum(_ROLLUP.n))
            .where(*_hours(since, until), _ROLLUP.route == route)
            .group_by(*keys)
        )
        if recipient is not None:
            statement = statement.where(_ROLLUP.recipient == recipient)
        found: dict[tuple[str, datetime], dict[Verdict, int]] = defaultdict(dict)
        async with self._engine.connect() as db:
            for hour, to, verdict, n in await db.execute(statement):
                if verdict in _VERDICTS:
                    found[(to, hour)][_VERDICTS[verdict]] = int(n)
        return {key: Tally(v) for key, v in found.items()}

    async def delivery(
        self,
        since: datetime,
        until: datetime | None,
        route: str | None = None,
        recipient: str | None = None,
    ) -> dict[datetime, Histogram]:
        """Delivery-time histograms per hour (all mailboxes, or one route / mailbox)."""
        keys = (_ROLLUP.hour, _ROLLUP.bucket)
        statement = (
            select(*keys, func.sum(_ROLLUP.n), func.max(_ROLLUP.max_seconds))
            .where(*_hours(since, until), _ROLLUP.bucket >= 0, *_route(route))
            .group_by(*keys)
        )
        if recipient is not None:
            statement = statement.where(_ROLLUP.recipient == recipient)
        rows: dict[datetime, list[tuple[int, int, float | None]]] = defaultdict(list)
        async with self._engine.connect() as db:
            for hour, bucket, n, most in await db.execute(statement):
                rows[hour].append((int(bucket), int(n), most))
        return {hour: Histogram.of(found) for hour, found in rows.items()}

    async def failures(
        self, since: datetime, route: str, recipient: str | None = None
    ) -> list[FailureGroup]:
        """Failed canaries of a route by kind, phase and code, most frequent first."""
        keys = (_PROBES.recipient, *FAILURE_KEYS)
        statement = (
            select(*keys, func.count(), func.max(_PROBES.id))
            # Spelled as in the partial index, with literals, so SQLite can use it.
            .where(text(FAILED_VERDICTS), _PROBES.planned_at >= since, _PROBES.route == route)
            .group_by(*keys)
        )
        if recipient is not None:
            statement = statement.where(_PROBES.recipient == recipient)
        async with self._engine.connect() as db:
            groups = [g for g in (await db.execute(statement)).all() if g[1] and g[2]]
            newest = [g[-1] for g in groups]
            said = dict(
                (
                    await db.execute(
                        select(_PROBES.id, _PROBES.failure_message).where(_PROBES.id.in_(newest))
                    )
                ).all()
            )
        found = [
            FailureGroup(
                Failure(kind, Phase(phase), bool(transient), said.get(last) or "", code, enhanced),
                int(n),
                int(last),
                to,
            )
            for to, kind, phase, code, enhanced, transient, n, last in groups
        ]
        return sorted(found, key=lambda g: (-g.n, -g.last_id))

    async def recent(
        self, route: str, recipient: str | None = None, limit: int = 50
    ) -> list[Recent]:
        statement = (
            select(
                _PROBES.id,
                _PROBES.recipient,
                _PROBES.planned_at,
                _PROBES.state,
                _PROBES.verdict,
                _PROBES.delivery_seconds,
                _PROBES.failure,
                _PROBES.failure_code,
            )
            .where(_PROBES.route == route)
            .order_by(_PROBES.planned_at.desc(), _PROBES.id.desc())
            .limit(limit)
        )
        if recipient is not None:
            statement = statement.where(_PROBES.recipient == recipient)
        async with self._engine.connect() as db:
            rows = (await db.execute(statement)).all()
        return [
            Recent(r[0], r[1], r[2], r[3], _VERDICTS.get(r[4] or ""), r[5], r[6], r[7])
            for r in rows
        ]

    async def probe(self, probe_id: int) -> ProbeRecord | None:
        async with self._engine.connect() as db:
            row = (await db.execute(select(ProbeRow).where(_PROBES.id == probe_id))).first()
        if row is None:
            return None
        # A Core row with the ORM columns' names converts like an ORM row.
        return convert.record(row)  # type: ignore[arg-type]

    async def open_alerts(self) -> list[OpenAlert]:
        statement = select(AlertRow).where(_ALERTS.status == "firing").order_by(_ALERTS.fired_at)
        async with self._engine.connect() as db:
            rows = (await db.execute(statement)).all()
        found = []
        for row in rows:
            evidence = evidence_from(row.evidence)
            found.append(
                OpenAlert(
                    row.route,
                    row.recipient,
                    row.kind,
                    row.since,
                    row.fired_at,
                    evidence.probe_id if evidence else None,
                    evidence.failure if evidence else None,
                )
            )
        return found


def _route(route: str | None) -> tuple[object, ...]:
    return () if route is None else (_ROLLUP.route == route,)


def _hours(since: datetime, until: datetime | None) -> tuple[object, ...]:
    return (
        (_ROLLUP.hour >= since,) if until is None else (_ROLLUP.hour >= since, _ROLLUP.hour < until)
    )
