"""The probe record: SQLAlchemy 2 async over SQLite (one instance) or PostgreSQL (several).

Every method is one short transaction. Times go in and come out UTC-aware; the
`UTCDateTime` column type is the only place that deals with SQLite's naive datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import monitor
from monitor.adapters.tables import ProbeRow
from monitor.core.models import (
    ArrivalSource,
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    ProbeRecord,
    Role,
    SendOutcome,
    Sighting,
    SmtpReply,
    Verdict,
    utcnow,
)

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_UNFINISHED = ("planned", "sending", "sent")


class SlotTaken(Exception):
    """Another instance (or an earlier run) already claimed this route/recipient/slot."""


class ProbeStateError(Exception):
    """The probe does not exist or is not in a state that allows this step."""


def async_url(url: str) -> str:
    """The user's database URL with the async driver we use for its backend."""
    parsed = make_url(url)
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    driver = _ASYNC_DRIVERS.get(backend)
    if driver is None:
        # Only the scheme: the rest of the URL may carry a password.
        raise ValueError(f"unsupported database {parsed.drivername!r}: use sqlite or postgresql")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def make_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their directory and per-connection PRAGMAs."""
    target = make_url(async_url(url))
    if target.get_backend_name() == "sqlite":
        _ensure_directory(target)
    else:
        # A daemon outlives database restarts; test a pooled connection before using it.
        options.setdefault("pool_pre_ping", True)
    engine = create_async_engine(target, **options)
    if target.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _ensure_directory(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("uri") == "true":
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (CLI, reports) run beside the daemon's writes; busy_timeout makes a
    # second writer wait instead of failing at once. These are per connection, not per file.
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=5000",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def migrations_dir() -> Path:
    """The Alembic script directory: packaged in a wheel, or `alembic/` in a source tree."""
    package = Path(monitor.__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "alembic"):
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    raise FileNotFoundError(f"no Alembic migrations next to {package}")


def alembic_config() -> Config:
    config = Config()
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    return config


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Engine and sessions only; call `upgrade()` to bring the schema to head."""
        return cls(make_engine(url))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def upgrade(self) -> None:
        # Alembic's env.py would start its own event loop; hand it our connection instead.
        async with self._engine.begin() as connection:
            await connection.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        # Also ends aiosqlite's worker threads, which would otherwise keep the process alive.
        await self._engine.dispose()

    async def plan(self, probe: PlannedProbe) -> int:
        dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
        insert = dialects[self._engine.dialect.name]
        statement = (
            insert(ProbeRow.__table__)
            .values({**_planned_values(probe), "state": "planned"})
            # Only the slot claim may collide quietly; a duplicate token still raises.
            .on_conflict_do_nothing(index_elements=["route", "recipient", "slot"])
            .returning(ProbeRow.__table__.c.id)
        )
        async with self._sessions.begin() as session:
            probe_id = (await session.execute(statement)).scalar_one_or_none()
        if probe_id is None:
            raise SlotTaken(
                f"slot {probe.slot.isoformat()} of route {probe.route!r} "
                f"to {probe.recipient!r} is already claimed"
            )
        return int(probe_id)

    async def mark_sending(self, probe_id: int) -> None:
        await self._update(probe_id, ("planned",), {"state": "sending"})

    async def record_send(self, probe_id: int, outcome: SendOutcome) -> None:
        values = _send_values(outcome)
        if outcome.ok:
            values["state"] = "sent"
        await self._update(probe_id, ("planned", "sending"), values)

    async def finish(
        self, probe_id: int, decision: Decision, sighting: Sighting | None = None
    ) -> None:
        values = _decision_values(decision, sighting)
        values["state"] = "final"
        values["finished_at"] = utcnow()
        await self._update(probe_id, _UNFINISHED, values)

    async def mark_late(self, token: str, decision: Decision, sighting: Sighting) -> bool:
        """Record a canary found after its deadline; only a `missing` verdict may change."""
        if sighting.token != token:
            raise ValueError("the sighting is of another canary")
        statement = (
            update(ProbeRow)
            .where(ProbeRow.token == token, ProbeRow.verdict == Verdict.MISSING.value)
            .values(_decision_values(decision, sighting))
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
        return result.rowcount == 1

    async def by_token(self, token: str) -> ProbeRecord | None:
        rows = await self._select(select(ProbeRow).where(ProbeRow.token == token))
        return _record(rows[0]) if rows else None

    async def unfinished(self) -> list[ProbeRecord]:
        # IN rather than != so the state index serves it once most rows are final.
        statement = (
            select(ProbeRow)
            .where(ProbeRow.state.in_(_UNFINISHED))
            .order_by(ProbeRow.planned_at, ProbeRow.id)
        )
        return [_record(row) for row in await self._select(statement)]

    async def history(
        self, *, since: datetime | None = None, route: str | None = None, limit: int = 1000
    ) -> list[ProbeRecord]:
        """Newest first by planned time."""
        statement = select(ProbeRow)
        if since is not None:
            statement = statement.where(ProbeRow.planned_at >= since)
        if route is not None:
            statement = statement.where(ProbeRow.route == route)
        statement = statement.order_by(ProbeRow.planned_at.desc(), ProbeRow.id.desc()).limit(limit)
        return [_record(row) for row in await self._select(statement)]

    async def _select(self, statement: Any) -> Sequence[ProbeRow]:
        async with self._sessions() as session:
            return (await session.scalars(statement)).all()

    async def _update(self, probe_id: int, states: tuple[str, ...], values: dict[str, Any]) -> None:
        # The state condition makes each step a compare-and-set: a probe cannot go backwards
        # or be finished twice, even by two racing tasks.
        statement = (
            update(ProbeRow)
            .where(ProbeRow.id == probe_id, ProbeRow.state.in_(states))
            .values(values)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
        if result.rowcount != 1:
            raise ProbeStateError(f"probe {probe_id} does not exist or is not {'/'.join(states)}")


def _planned_values(probe: PlannedProbe) -> dict[str, Any]:
    return {
        "token": probe.token,
        "route": probe.route,
        "sender": probe.sender,
        "recipient": probe.recipient,
        "slot": probe.slot,
        "planned_at": probe.planned_at,
        "deadline_at": probe.deadline_at,
        "message_id": probe.message_id,
        "instance": probe.instance,
    }


def _send_values(outcome: SendOutcome) -> dict[str, Any]:
    # handoff_monotonic is not stored: a monotonic clock means nothing to another process.
    last = outcome.last_reply
    values: dict[str, Any] = {
        "smtp_phase": outcome.phase.value,
        "smtp_code": last.code if last else None,
        "smtp_enhanced": last.enhanced if last else None,
        "smtp_message": last.text if last else None,
        "smtp_replies": [
            {"phase": r.phase.value, "code": r.code, "enhanced": r.enhanced, "text": r.text}
            for r in outcome.replies
        ],
        "queue_id": outcome.queue_id,
        "tls_version": outcome.tls_version,
        "handoff_at": outcome.handoff_at,
    }
    if outcome.failure is not None:
        values |= _failure_values(outcome.failure)
    return values


def _failure_values(failure: Failure) -> dict[str, Any]:
    return {
        "failure": failure.kind,
        "failure_phase": failure.phase.value,
        "failure_transient": failure.transient,
        "failure_message": failure.message,
        "failure_code": failure.code,
        "failure_enhanced": failure.enhanced,
    }


def _decision_values(decision: Decision, sighting: Sighting | None) -> dict[str, Any]:
    role = decision.role or (sighting.role if sighting else None)
    values: dict[str, Any] = {
        "verdict": decision.verdict.value,
        "folder": decision.folder or (sighting.folder if sighting else None),
        "folder_role": role.value if role else None,
        "arrived_at": decision.arrived_at,
        "arrival_source": decision.arrival_source.value if decision.arrival_source else None,
        "delivery_seconds": decision.delivery_seconds,
        "reason": decision.reason,
    }
    # Without a failure of its own the decision keeps the one the send recorded.
    if decision.failure is not None:
        values |= _failure_values(decision.failure)
    if sighting is not None:
        values |= {
            "uid": sighting.uid,
            "uidvalidity": sighting.uidvalidity,
            "detected_at": sighting.detected_at,
            "internal_date": sighting.internal_date,
            "received_at": sighting.received_at,
            "seen_message_id": sighting.message_id,
        }
    return values


def _record(row: ProbeRow) -> ProbeRecord:
    failure = _failure(row)
    return ProbeRecord(
        id=row.id,
        planned=PlannedProbe(
            token=row.token,
            route=row.route,
            sender=row.sender,
            recipient=row.recipient,
            slot=row.slot,
            planned_at=row.planned_at,
            deadline_at=row.deadline_at,
            message_id=row.message_id,
            instance=row.instance,
        ),
        state=row.state,
        send=_send(row, failure),
        sighting=_sighting(row),
        decision=_decision(row, failure),
        finished_at=row.finished_at,
    )


def _failure(row: ProbeRow) -> Failure | None:
    if row.failure is None or row.failure_phase is None:
        return None
    return Failure(
        kind=row.failure,
        phase=Phase(row.failure_phase),
        transient=bool(row.failure_transient),
        message=row.failure_message or "",
        code=row.failure_code,
        enhanced=row.failure_enhanced,
    )


def _send(row: ProbeRow, failure: Failure | None) -> SendOutcome | None:
    if row.smtp_phase is None:
        return None
    phase = Phase(row.smtp_phase)
    replies = tuple(
        SmtpReply(phase=Phase(r["phase"]), code=r["code"], enhanced=r["enhanced"], text=r["text"])
        for r in row.smtp_replies or ()
    )
    return SendOutcome(
        phase=phase,
        replies=replies,
        # A send that reached DONE did not fail; a failure on such a row is the watcher's.
        failure=failure if phase is not Phase.DONE else None,
        queue_id=row.queue_id,
        tls_version=row.tls_version,
        handoff_at=row.handoff_at,
    )


def _sighting(row: ProbeRow) -> Sighting | None:
    if (
        row.uid is None
        or row.uidvalidity is None
        or row.detected_at is None
        or row.folder is None
        or row.folder_role is None
    ):
        return None
    return Sighting(
        token=row.token,
        folder=row.folder,
        role=Role(row.folder_role),
        uid=row.uid,
        uidvalidity=row.uidvalidity,
        detected_at=row.detected_at,
        internal_date=row.internal_date,
        received_at=row.received_at,
        message_id=row.seen_message_id,
    )


def _decision(row: ProbeRow, failure: Failure | None) -> Decision | None:
    if row.verdict is None:
        return None
    return Decision(
        verdict=Verdict(row.verdict),
        folder=row.folder,
        role=Role(row.folder_role) if row.folder_role else None,
        arrived_at=row.arrived_at,
        arrival_source=ArrivalSource(row.arrival_source) if row.arrival_source else None,
        delivery_seconds=row.delivery_seconds,
        failure=failure,
        reason=row.reason,
    )
