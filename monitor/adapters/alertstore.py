"""Alert states and the delivery outbox, over the daemon's own engine.

`commit` writes state changes and the deliveries they cause in one transaction: after a
crash either both are there or neither. State updates are compare-and-set on `version`
(`Conflict` when another writer got there first: reload and step again). Deliveries are
claimed with a lease before sending, so two instances never send the same row at once; a
lease that outlives a crash simply expires (or `release` frees it at the next start).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from monitor.adapters.alert_tables import AlertRow, DeliveryRow
from monitor.adapters.writer import Work, transaction_async
from monitor.alerts.state import AlertKind, AlertState, Evidence, Key, Status
from monitor.core.models import Failure, Phase, Verdict

Transaction = Callable[[Work[None]], Awaitable[None]]


class Conflict(Exception):
    """Another writer changed an alert state since it was read."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    state: AlertState
    version: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery to queue: a transition for one channel and target."""

    transition_id: str
    channel: str
    target: str  # an email address; "" for a webhook
    event: str
    payload: dict[str, Any]
    route: str | None = None
    recipient: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    transition_id: str
    channel: str
    target: str
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None

    @property
    def delivery_id(self) -> str:
        """Stable per row: receivers dedupe a resend after a crash on it."""
        suffix = f"/{self.target}" if self.target else ""
        return f"{self.transition_id}#{self.channel}{suffix}"


_ALERTS = AlertRow.__table__
_UPDATE_STATE = _ALERTS.update().where(
    _ALERTS.c.route == bindparam("_route"),
    _ALERTS.c.recipient == bindparam("_recipient"),
    _ALERTS.c.kind == bindparam("_kind"),
    _ALERTS.c.version == bindparam("_version"),
)


class AlertStore:
    def __init__(self, engine: AsyncEngine, transaction: Transaction | None = None) -> None:
        """`transaction` runs the state writes (`monitor.adapters.store.Store.transaction`:
        on a SQLite file, in one trip to the probe writer's thread); else the engine does."""
        self._engine = engine
        self._transaction = transaction or functools.partial(transaction_async, engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    # -- states -----------------------------------------------------------------------------

    async def load(self, *, statuses: Iterable[Status] | None = None) -> dict[Key, StoredAlert]:
        statement = select(AlertRow)
        if statuses is not None:
            statement = statement.where(AlertRow.status.in_([s.value for s in statuses]))
        async with self._sessions() as session:
            rows = (await session.scalars(statement.order_by(AlertRow.id))).all()
        return {(r.route, r.recipient, AlertKind(r.kind)): _stored(r) for r in rows}

    async def commit(
        self,
        changes: Iterable[tuple[int | None, AlertState]],
        outgoing: Iterable[Outgoing],
        now: datetime,
    ) -> dict[Key, int]:
        """Write new states (each with the version it was read at; None: new) and queue
        their deliveries, all or nothing. Returns the new versions."""
        versions: dict[Key, int] = {}
        new: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        for version, state in changes:
            values = {**_state_values(state), "updated_at": now}
            if version is None:
                new.append({**values, "version": 1})
            else:
                key = {"_route": state.route, "_recipient": state.recipient}
                key |= {"_kind": state.kind.value, "_version": version}
                moved.append({**values, "version": version + 1, **key})
            versions[state.key] = 1 if version is None else version + 1
        rows = [_delivery_values(item, now) for item in outgoing]

        # Core statements built once, each run for all its rows: at 1,000 mailboxes every
        # verdict moves a few states, and building ORM statements per state cost more than
        # the writes themselves.
        def write(connection: Connection) -> None:
            if new:  # a racing insert fails here, inside the transaction
                connection.execute(AlertRow.__table__.insert(), new)
            if moved:
                _update_all(connection, moved)
            if rows:
                connection.execute(self._insert_new(rows))

        try:
            await self._transaction(write)
        except IntegrityError as exc:
            raise Conflict("an alert state was created meanwhile") from exc
        return versions

    def _insert_new(self, rows: list[dict[str, Any]]) -> Any:
        dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
        insert = dialects[self._engine.dialect.name]
        return (
            insert(DeliveryRow.__table__)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["transition_id", "channel", "target"])
        )

    # -- the outbox -------------------------------------------------------------------------

    async def claim(
        self, owner: str, now: datetime, *, lease: float, limit: int = 50
    ) -> list[Delivery]:
        """Pending deliveries that are due, leased to `owner` for `lease` seconds."""
        free = or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until < now)
        due = (
            select(DeliveryRow)
            .where(DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now, free)
            .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
            .limit(limit)
        )
        claimed = []
        async with self._sessions.begin() as session:
            for row in (await session.scalars(due)).all():
                statement = (
                    update(DeliveryRow)
                    .where(DeliveryRow.id == row.id, DeliveryRow.status == "pending", free)
                    .values(leased_by=owner, lease_until=now + timedelta(seconds=lease))
                    .execution_options(synchronize_session=False)
                )
                result = cast(CursorResult[Any], await session.execute(statement))
                if result.rowcount == 1:
                    claimed.append(_delivery(row))
        return claimed

    async def sent(self, delivery: Delivery, owner: str, now: datetime) -> None:
        await self._finish(delivery, owner, status="sent", sent_at=now, last_error=None)

    async def retry(self, delivery: Delivery, owner: str, at: datetime, error: str) -> None:
        await self._finish(delivery, owner, status="pending", next_attempt_at=at, last_error=error)

    async def give_up(self, delivery: Delivery, owner: str, error: str) -> None:
        await self._finish(delivery, owner, status="failed", last_error=error)

    async def _finish(self, delivery: Delivery, owner: str, **values: Any) -> None:
        statement = (
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery.id, DeliveryRow.leased_by == owner)
            .values(**values, attempts=DeliveryRow.attempts + 1, leased_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def release(self, owner: str) -> int:
        """Free the leases `owner` held when it stopped (or crashed): resend them now."""
        statement = (
            update(DeliveryRow)
            .where(DeliveryRow.leased_by == owner, DeliveryRow.status == "pending")
            .values(leased_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
        return result.rowcount

    async def next_due(self) -> datetime | None:
        statement = select(DeliveryRow.next_attempt_at).where(DeliveryRow.status == "pending")
        statement = statement.order_by(DeliveryRow.next_attempt_at).limit(1)
        async with self._sessions() as session:
            return (await session.execute(statement)).scalar_one_or_none()

    async def deliveries(
        self,
        *,
        statuses: Iterable[str] | None = None,
        transition_ids: Iterable[str] | None = None,
        limit: int = 200,
    ) -> list[Delivery]:
        """Newest first."""
        statement = select(DeliveryRow)
        if statuses is not None:
            statement = statement.where(DeliveryRow.status.in_(list(statuses)))
        if transition_ids is not None:
            statement = statement.where(DeliveryRow.transition_id.in_(list(transition_ids)))
        statement = statement.order_by(DeliveryRow.id.desc()).limit(limit)
        async with self._sessions() as session:
            return [_delivery(row) for row in (await session.scalars(statement)).all()]


# ---------------------------------------------------------------- rows ↔ domain


def _state_values(state: AlertState) -> dict[str, Any]:
    return {
        "route": state.route,
        "recipient": state.recipient,
        "kind": state.kind.value,
        "status": state.status.value,
        "bad_streak": state.bad_streak,
        "good_streak": state.good_streak,
        "since": state.since,
        "fired_at": state.fired_at,
        "resolved_at": state.resolved_at,
        "last_good_at": state.last_good_at,
        "last_bad_at": state.last_bad_at,
        "last_seen_at": state.last_seen_at,
        "last_notified_at": state.last_notified_at,
        "seq": state.seq,
        "evidence": evidence_json(state.evidence),
        "recovery": evidence_json(state.recovery),
    }


def _stored(row: AlertRow) -> StoredAlert:
    state = AlertState(
        route=row.route,
        recipient=row.recipient,
        kind=AlertKind(row.kind),
        status=Status(row.status),
        bad_streak=row.bad_streak,
        good_streak=row.good_streak,
        since=row.since,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        last_good_at=row.last_good_at,
        last_bad_at=row.last_bad_at,
        last_seen_at=row.last_seen_at,
        last_notified_at=row.last_notified_at,
        seq=row.seq,
        evidence=evidence_from(row.evidence),
        recovery=evidence_from(row.recovery),
    )
    return StoredAlert(state, row.version)


def evidence_json(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    failure = evidence.failure
    return {
        "probe_id": evidence.probe_id,
        "planned_at": evidence.planned_at.isoformat(),
        "verdict": evidence.verdict.value,
        "sender": evidence.sender,
        "folder": evidence.folder,
        "delivery_seconds": evidence.delivery_seconds,
        "auth": dict(evidence.auth) if evidence.auth else None,
        "content": evidence.content or None,
        "failure": None
        if failure is None
        else {
            "kind": failure.kind,
            "phase": failure.phase.value,
            "transient": failure.transient,
            "message": failure.message,
            "code": failure.code,
            "enhanced": failure.enhanced,
        },
    }


def evidence_from(data: dict[str, Any] | None) -> Evidence | None:
    if data is None:
        return None
    failure = data.get("failure")
    return Evidence(
        probe_id=int(data["probe_id"]),
        planned_at=datetime.fromisoformat(data["planned_at"]),
        verdict=Verdict(data["verdict"]),
        sender=data["sender"],
        folder=data.get("folder"),
        delivery_seconds=data.get("delivery_seconds"),
        auth=tuple((data.get("auth") or {}).items()),  # absent in rows written before 0.2
        content=data.get("content") or "",  # absent in rows written before it was kept
        failure=None
        if failure is None
        else Failure(
            kind=failure["kind"],
            phase=Phase(failure["phase"]),
            transient=bool(failure["transient"]),
            message=failure["message"],
            code=failure.get("code"),
            enhanced=failure.get("enhanced"),
        ),
    )


def _delivery_values(item: Outgoing, now: datetime) -> dict[str, Any]:
    return {
        "transition_id": item.transition_id,
        "channel": item.channel,
        "target": item.target,
        "event": item.event,
        "route": item.route,
        "recipient": item.recipient,
        "kind": item.kind,
        "payload": item.payload,
        "created_at": now,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
    }


def _delivery(row: DeliveryRow) -> Delivery:
    return Delivery(
        id=row.id,
        transition_id=row.transition_id,
        channel=row.channel,
        target=row.target,
        event=row.event,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        sent_at=row.sent_at,
    )


def _update_all(connection: Connection, moved: list[dict[str, Any]]) -> None:
    """Compare-and-set on version: every row must match, else `Conflict` (rolled back)."""
    # Drivers that cannot count rows over an executemany (asyncpg) go one row at a time.
    if connection.dialect.supports_sane_multi_rowcount:
        batches = [moved]
    else:
        batches = [[row] for row in moved]
    for batch in batches:
        result = connection.execute(_UPDATE_STATE, batch)
        if result.rowcount != len(batch):
            raise Conflict("an alert state changed meanwhile")
