"""The probe record: SQLAlchemy 2 async over SQLite (one instance) or PostgreSQL (several).

Every method is one short transaction. Times go in and come out UTC-aware; the
`UTCDateTime` column type is the only place that deals with SQLite's naive datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    and_,
    bindparam,
    event,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import monitor
from monitor.adapters import (
    alert_tables,  # noqa: F401 - registers its tables on the metadata
    report_tables,  # noqa: F401 - registers its tables on the metadata
    share_tables,  # noqa: F401 - registers its tables on the metadata
)
from monitor.adapters import rows as convert
from monitor.adapters.leases import Fleet, fleet_of
from monitor.adapters.migrations import migrations_head
from monitor.adapters.quickread import sqlite_path
from monitor.adapters.tables import ProbeRow
from monitor.adapters.writer import FileWriter, Work, Written, transaction_async, written
from monitor.adapters.writeturns import Urgency, WriteTurns
from monitor.core.models import (
    Decision,
    PlannedProbe,
    ProbeRecord,
    SendOutcome,
    Sighting,
    Verdict,
    utcnow,
)
from monitor.probe.verdict import INTERRUPTED

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_T = TypeVar("_T")
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_UNFINISHED = ("planned", "sending", "sent")
_MIGRATION_LOCK = 0x6D61696C63616E  # any fixed bigint; "mailcan" in ASCII


# What the CLI catches to say "database: …" in one line, without knowing SQLAlchemy.
DatabaseError = SQLAlchemyError


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


def missing_file(url: str) -> Path | None:
    """The SQLite file a reader would create by opening `url`, when it does not exist yet."""
    path = sqlite_path(url)
    return path if path is not None and not path.exists() else None


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


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # only migrations need Alembic

    config = AlembicConfig()
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    return config


def _upgrade_to_head(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _insert(dialect: str) -> Any:
    """The dialect's INSERT (for ON CONFLICT). PostgreSQL's is imported only when it is the
    database: its dialect package costs a SQLite one-shot probe ~0.03 CPU-s (issue #17)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time; pooled connections racing for it back off in
        # sleeps and, in a burst of probes (1,000 mailboxes firing together), some wait past
        # busy_timeout and fail. Taking turns here first keeps the order fair and the waits short.
        self._writers = WriteTurns() if engine.dialect.name == "sqlite" else None
        # A probe's writes are Core statements built once: building an ORM statement per
        # call cost more CPU than SQLite's own work on the row (1,000 mailboxes, profiled).
        self._plan = (
            _insert(engine.dialect.name)(ProbeRow.__table__)
            # Only the slot claim may collide quietly; a duplicate token still raises.
            .on_conflict_do_nothing(index_elements=["route", "recipient", "slot"])
            .returning(ProbeRow.__table__.c.id)
        )
        self._updates: dict[tuple[str, ...], Any] = {}
        # A SQLite file: a probe's writes go one trip each to a thread of their own (writer.py).
        self._file = FileWriter.for_engine(engine, _sqlite_pragmas)

    def _write_turn(self, urgency: Urgency) -> AbstractAsyncContextManager[object]:
        return self._writers.turn(urgency) if self._writers is not None else nullcontext()

    async def transaction(self, work: Work[_T]) -> _T:
        """`work` in a transaction of its own, committed when this returns."""
        if self._file is not None:
            return await self._file.transaction(work)
        return await transaction_async(self._engine, work)

    async def _write(self, statement: Any, params: dict[str, Any], urgency: Urgency) -> Written:
        async with self._write_turn(urgency):
            return await self.transaction(lambda c: written(c.execute(statement, params)))

    @classmethod
    async def open(cls, url: str) -> Store:
        """Engine and sessions only; call `upgrade()` to bring the schema to head."""
        return cls(make_engine(url))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def upgrade(self) -> None:
        """Bring the schema to head. One already there costs one query and no Alembic."""
        if await self._at_head():
            return
        # Alembic's env.py would start its own event loop; hand it our connection instead.
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Instances started together would race to create the same tables; the lock
                # lasts until this transaction commits, so the next one finds the schema at head.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            await connection.run_sync(_upgrade_to_head)

    async def _at_head(self) -> bool:
        head = migrations_head(migrations_dir() / "versions")
        if head is None:
            return False
        try:
            async with self._engine.connect() as connection:
                found = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return found.scalars().all() == [head]
        except SQLAlchemyError:  # no such table yet: a new database, Alembic creates it
            return False

    async def has_table(self, table: str, *columns: str) -> bool:
        """Whether the schema has `table` (with these columns): before the daemon's first
        start, or before a migration, readers say "nothing yet" instead of failing."""

        def look(connection: Connection) -> bool:
            found = inspect(connection)
            if not found.has_table(table):
                return False
            present = {column["name"] for column in found.get_columns(table)}
            return set(columns) <= present

        async with self._engine.connect() as connection:
            return await connection.run_sync(look)

    async def fleet(self, lease: float) -> Fleet | None:
        """Who watches which mailbox on a shared database (see leases.fleet_of)."""
        return await fleet_of(self._engine, lease)

    async def ping(self) -> None:
        """One round trip: raises when the database does not answer."""
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        # Also ends aiosqlite's worker threads, which would otherwise keep the process alive.
        if self._file is not None:
            await self._file.close()
        await self._engine.dispose()

    async def plan(self, probe: PlannedProbe, *, sending: bool = False) -> int:
        """Write the probe's row; `sending=True` writes it straight in the state `sending`
        (one write fewer per probe): recovery then looks for the canary before judging,
        as for any probe whose send may have begun."""
        values = convert.planned_values(probe)
        values["state"] = "sending" if sending else "planned"
        probe_id = (await self._write(self._plan, values, Urgency.PLAN)).returned
        if probe_id is None:
            raise SlotTaken(
                f"slot {probe.slot.isoformat()} of route {probe.route!r} "
                f"to {probe.recipient!r} is already claimed"
            )
        return int(probe_id)

    async def mark_sending(self, probe_id: int) -> None:
        await self._update(probe_id, ("planned",), {"state": "sending"}, Urgency.PROGRESS)

    async def record_send(self, probe_id: int, outcome: SendOutcome) -> None:
        values = convert.send_values(outcome)
        if outcome.ok:
            values["state"] = "sent"
        await self._update(probe_id, ("planned", "sending"), values, Urgency.PROGRESS)

    async def finish(
        self, probe_id: int, decision: Decision, sighting: Sighting | None = None
    ) -> None:
        values = convert.decision_values(decision, sighting)
        values["state"] = "final"
        values["finished_at"] = utcnow()
        await self._update(probe_id, _UNFINISHED, values, Urgency.VERDICT)

    async def mark_late(self, token: str, decision: Decision, sighting: Sighting) -> bool:
        """Record a canary found after its probe was judged; only a verdict of absence may
        change (`monitor.core.verdict.revisable`: missing, or send_failed/interrupted)."""
        if sighting.token != token:
            raise ValueError("the sighting is of another canary")
        revisable = or_(
            ProbeRow.verdict == Verdict.MISSING.value,
            and_(ProbeRow.verdict == Verdict.SEND_FAILED.value, ProbeRow.failure == INTERRUPTED),
        )
        # The canary turned up: whatever failure the absence was put down to no longer holds.
        values = convert.no_failure() | convert.decision_values(decision, sighting)
        statement = ProbeRow.__table__.update().where(ProbeRow.token == token, revisable)
        return (await self._write(statement.values(values), {}, Urgency.VERDICT)).rowcount == 1

    async def by_token(self, token: str) -> ProbeRecord | None:
        rows = await self._select(select(ProbeRow).where(ProbeRow.token == token))
        return convert.record(rows[0]) if rows else None

    async def unfinished(self, *, instance: str | None = None) -> list[ProbeRecord]:
        """Probes not yet final, oldest first; only `instance`'s own when it is given
        (on a shared database each instance resumes what it started, nobody else's)."""
        # IN rather than != so the state index serves it once most rows are final.
        statement = select(ProbeRow).where(ProbeRow.state.in_(_UNFINISHED))
        if instance is not None:
            statement = statement.where(ProbeRow.instance == instance)
        statement = statement.order_by(ProbeRow.planned_at, ProbeRow.id)
        return [convert.record(row) for row in await self._select(statement)]

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
        return [convert.record(row) for row in await self._select(statement)]

    async def _select(self, statement: Any) -> Sequence[ProbeRow]:
        async with self._sessions() as session:
            return (await session.scalars(statement)).all()

    async def _update(
        self, probe_id: int, states: tuple[str, ...], values: dict[str, Any], urgency: Urgency
    ) -> None:
        # The state condition makes each step a compare-and-set: a probe cannot go backwards
        # or be finished twice, even by two racing tasks. The SET clause comes from the
        # values' keys, so each shape of step compiles once and is then served from cache.
        statement = self._updates.get(states)
        if statement is None:
            table = ProbeRow.__table__
            condition = and_(table.c.id == bindparam("_probe_id"), table.c.state.in_(states))
            statement = self._updates[states] = table.update().where(condition)
        result = await self._write(statement, {**values, "_probe_id": probe_id}, urgency)
        if result.rowcount != 1:
            raise ProbeStateError(f"probe {probe_id} does not exist or is not {'/'.join(states)}")

    async def latest_per_pair(self) -> list[PairLatest]:
        """Per (route, recipient) ever probed, by route and recipient: the newest final probe,
        when the newest inbox canary was planned, and how many probes are still in flight."""
        c = ProbeRow.__table__.c
        pairs = select(c.route, c.recipient).group_by(c.route, c.recipient).subquery("pairs")
        summary = select(
            pairs,
            _newest_of_pair(pairs, "id", state="final").label("last_id"),
            _newest_of_pair(pairs, "planned_at", verdict=Verdict.INBOX.value).label("inbox_at"),
        ).subquery("summary")
        # Grouped on its own so the state index serves it: only unfinished rows are read.
        flying = (
            select(c.route, c.recipient, func.count().label("n"))
            .where(c.state.in_(_UNFINISHED))
            .group_by(c.route, c.recipient)
            .subquery("flying")
        )
        same_pair = and_(
            flying.c.route == summary.c.route, flying.c.recipient == summary.c.recipient
        )
        statement = (
            select(summary.c.route, summary.c.recipient, summary.c.inbox_at, flying.c.n, ProbeRow)
            .outerjoin(ProbeRow, ProbeRow.id == summary.c.last_id)
            .outerjoin(flying, same_pair)
            .order_by(summary.c.route, summary.c.recipient)
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [
            PairLatest(route, to, convert.record(row) if row else None, inbox_at, in_flight or 0)
            for route, to, inbox_at, in_flight, row in rows
        ]


@dataclass(frozen=True, slots=True)
class PairLatest:
    """Where one (route, recipient) stands; `last` is its newest final probe, if any."""

    route: str
    recipient: str
    last: ProbeRecord | None
    last_inbox_at: datetime | None  # planned time of the newest canary whose verdict is inbox
    in_flight: int  # probes planned, sending or sent: not decided yet


def _newest_of_pair(pairs: Any, column: str, **equal: str) -> Any:
    """`column` of the pair's newest probe with these values: ORDER BY … DESC LIMIT 1 walks the
    (route, recipient, planned_at) index back from the pair's newest row to the first match."""
    probe = ProbeRow.__table__.alias()
    return (
        select(probe.c[column])
        .where(probe.c.route == pairs.c.route, probe.c.recipient == pairs.c.recipient)
        .where(*(probe.c[key] == value for key, value in equal.items()))
        .order_by(probe.c.planned_at.desc(), probe.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
