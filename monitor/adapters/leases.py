"""The SQL of shared work on PostgreSQL: heartbeats, mailbox leases, sightings, the key.

Leases are rows with an owner and an expiry, taken and renewed with atomic conditional
statements (INSERT … ON CONFLICT DO UPDATE … WHERE expired; UPDATE … WHERE owner = me), not
advisory locks: a session lock lives as long as one pooled connection, so a stalled but
connected instance (or a half-open TCP connection) would keep its mailboxes for as long as
the connection lasts, and nobody else could see who holds what. A row expires at a stated
time whatever happens to the connection, and `status` can read it. Every time comes from the
database's clock (now()), so the instances' clocks need not agree.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, delete, exists, func, inspect, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from monitor.adapters import rows as convert
from monitor.adapters.share_tables import CanaryKeyRow, InstanceRow, LeaseRow, SightingRow
from monitor.adapters.tables import ProbeRow
from monitor.core.models import ProbeRecord, Sighting
from monitor.core.sharing import Holder, InstanceTaken, Lease, taken_message

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert

UNFINISHED = ("planned", "sending", "sent")
# The key is created under the migration's advisory lock: instances starting together
# create it once (the same lock number as Store.upgrade).
KEY_LOCK = 0x6D61696C63616E


@dataclass(frozen=True, slots=True)
class Owner:
    """This process, as it stamps its instance's row: a token new at every start (a pid or a
    host alone may repeat across machines and restarts), host and pid to name it to people."""

    token: str
    host: str
    pid: int


THIS_PROCESS = Owner(secrets.token_hex(16), socket.gethostname(), os.getpid())


def insert(table: Any) -> Insert:
    """PostgreSQL's INSERT … ON CONFLICT (these tables exist only there), its dialect imported
    on first use: every probe loads this module, a SQLite one never needs it (issue #17)."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    return postgresql_insert(table)


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance as the database knows it, for `status`, metrics and the status page."""

    name: str
    started_at: datetime
    heartbeat_at: datetime
    stopping: bool
    stopped_at: datetime | None
    live: bool  # heartbeat within the lease time and not stopped
    mailboxes: tuple[str, ...]  # the mailboxes whose lease it holds
    host: str | None = None  # the process heartbeating it (None before migration 0009)
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Fleet:
    """Instances and leases at one moment of the database's clock."""

    now: datetime
    instances: tuple[InstanceStatus, ...]
    leases: dict[str, Lease]

    @property
    def live(self) -> set[str]:
        """Instances that take part in the assignment (live and not draining)."""
        return {i.name for i in self.instances if i.live and not i.stopping}

    def watcher_of(self, mailbox: str) -> str | None:
        lease = self.leases.get(mailbox)
        return lease.owner if lease is not None and lease.expires_at > self.now else None


class SharedWork:
    def __init__(self, engine: AsyncEngine, lease: float, owner: Owner = THIS_PROCESS) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.lease = timedelta(seconds=lease)
        self.owner = owner

    def _alive(self, name: Any) -> Any:
        """SQL: instance `name` has a fresh heartbeat and has not stopped."""
        fresh = InstanceRow.heartbeat_at > func.now() - self.lease
        return exists().where(InstanceRow.name == name, fresh, InstanceRow.stopped_at.is_(None))

    # -- heartbeats and leases ------------------------------------------------------------

    async def heartbeat(self, me: str, *, stopping: bool = False, first: bool = False) -> Fleet:
        """Renew `me`'s heartbeat; the fleet as it stands after it. InstanceTaken if another
        process holds the name: `claim` lost at the start, or took it over since."""
        if not await self.claim(me, stopping=stopping, first=first):
            found = await self.holder(me)
            now, holder = found if found is not None else (datetime.now(UTC), None)
            if holder is None:  # gone between the two statements: the next round says
                raise InstanceTaken(f'monitor.instance: "{me}" changed hands; retrying')
            raise InstanceTaken(taken_message(me, holder, now))
        return await self.fleet()

    async def claim(self, me: str, *, stopping: bool = False, first: bool = False) -> bool:
        """Stamp `me`'s row with a heartbeat from this process; False if another holds it.

        At the start (`first`) a row is ours to take when it is silent for a lease or stopped
        (a crash or a clean stop before us), later only while it bears our token. One
        conditional upsert: two processes taking a silent name at once, the second
        re-checks the condition on the row the first wrote and loses.
        """
        now = func.now()
        mine = {"owner": self.owner.token, "host": self.owner.host, "pid": self.owner.pid}
        values = {"heartbeat_at": now, "stopping": stopping, "stopped_at": None} | mine
        statement = insert(InstanceRow).values(name=me, started_at=now, **values)
        ours = InstanceRow.owner == self.owner.token
        if first:
            values["started_at"] = now  # a restart is a new start
            silent = InstanceRow.heartbeat_at <= now - self.lease
            ours = or_(ours, silent, InstanceRow.stopped_at.is_not(None))
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_=values, where=ours
        ).returning(InstanceRow.name)
        async with self._sessions.begin() as session:
            return (await session.execute(statement)).scalar_one_or_none() is not None

    async def holder(self, me: str) -> tuple[datetime, Holder] | None:
        """The database's now and the process holding `me`, if the name has a row."""
        async with self._sessions() as session:
            moment = (await session.execute(select(func.now()))).scalar_one()
            row = await session.get(InstanceRow, me)
        if row is None:
            return None
        holder = Holder(row.owner, row.host, row.pid, row.heartbeat_at, row.stopping)
        return moment, holder

    async def fleet(self) -> Fleet:
        async with self._sessions() as session:
            moment = (await session.execute(select(func.now()))).scalar_one()
            instances = (await session.scalars(select(InstanceRow))).all()
            leases = (await session.scalars(select(LeaseRow))).all()
        held = {
            row.mailbox: Lease(row.mailbox, row.owner, row.expires_at, row.successor)
            for row in leases
        }
        return Fleet(moment, tuple(_status(i, held, moment, self.lease) for i in instances), held)

    async def acquire(self, me: str, take: Iterable[str], renew: Iterable[str]) -> set[str]:
        """Renew our leases and take free or expired ones; the mailboxes we hold now."""
        until = func.now() + self.lease
        owned: set[str] = set()
        async with self._sessions.begin() as session:
            if renewing := sorted(renew):
                statement = (
                    update(LeaseRow)
                    .where(LeaseRow.owner == me, LeaseRow.mailbox.in_(renewing))
                    .values(expires_at=until)
                    .returning(LeaseRow.mailbox)
                )
                owned |= set((await session.execute(statement)).scalars())
            if taking := sorted(take):
                rows = [
                    {"mailbox": m, "owner": me, "since": func.now(), "expires_at": until}
                    for m in taking
                ]
                excluded = insert(LeaseRow).excluded
                statement = (
                    insert(LeaseRow)
                    .values(rows)
                    .on_conflict_do_update(
                        index_elements=["mailbox"],
                        set_={
                            "owner": excluded.owner,
                            "since": excluded.since,
                            "expires_at": excluded.expires_at,
                            "successor": None,
                        },
                        # Only an expired lease changes hands this way.
                        where=LeaseRow.expires_at <= func.now(),
                    )
                    .returning(LeaseRow.mailbox)
                )
                owned |= set((await session.execute(statement)).scalars())
        return owned

    async def offer(self, me: str, mailboxes: Iterable[str]) -> None:
        """Tell the owners that `me` watches these mailboxes already and can take them."""
        if not (wanted := sorted(mailboxes)):
            return
        statement = (
            update(LeaseRow)
            .where(LeaseRow.mailbox.in_(wanted), LeaseRow.owner != me)
            .where(or_(LeaseRow.successor.is_(None), LeaseRow.successor != me))
            .values(successor=me)
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def hand_over(self, me: str, mailbox: str, successor: str) -> bool:
        """Our lease on `mailbox` passes to its ready successor; False if it was not ours."""
        statement = (
            update(LeaseRow)
            .where(LeaseRow.mailbox == mailbox, LeaseRow.owner == me)
            .where(LeaseRow.successor == successor, self._alive(successor))
            .values(owner=successor, successor=None, since=func.now())
            .values(expires_at=func.now() + self.lease)
        )
        async with self._sessions.begin() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
        return result.rowcount == 1

    async def release(self, me: str, mailboxes: Iterable[str] | None = None) -> None:
        """Give up our leases (all of them by default): anyone may take them at once."""
        statement = delete(LeaseRow).where(LeaseRow.owner == me)
        if mailboxes is not None:
            statement = statement.where(LeaseRow.mailbox.in_(sorted(mailboxes)))
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def leave(self, me: str) -> None:
        """Gone for good (SIGTERM): leases free, unfinished probes up for adoption now. Not
        if another process took the name meanwhile: the leases and the row are its own."""
        statement = (
            update(InstanceRow)
            .where(InstanceRow.name == me, InstanceRow.owner == self.owner.token)
            .values(stopping=False, stopped_at=func.now())
        )
        async with self._sessions.begin() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
        if result.rowcount == 1:
            await self.release(me)

    # -- probes of instances that died ------------------------------------------------------

    async def adopt(self, me: str, mailboxes: Iterable[str]) -> list[ProbeRecord]:
        """Claim the unfinished probes to our mailboxes whose instance is dead or left."""
        if not (mine := sorted(mailboxes)):
            return []
        holder = func.coalesce(ProbeRow.adopted_by, ProbeRow.instance)
        statement = (
            update(ProbeRow)
            .where(ProbeRow.state.in_(UNFINISHED), ProbeRow.recipient.in_(mine))
            .where(holder != me, ~self._alive(holder))
            .values(adopted_by=me)
            .returning(ProbeRow)
            .execution_options(synchronize_session=False)
        )
        return await self._claimed(statement)

    async def claim_own(self, me: str) -> list[ProbeRecord]:
        """At start: the unfinished probes we sent or adopted and nobody adopted since."""
        holder = func.coalesce(ProbeRow.adopted_by, ProbeRow.instance)
        statement = (
            update(ProbeRow)
            .where(ProbeRow.state.in_(UNFINISHED), holder == me)
            # A no-op write that takes the row lock: an adoption racing with us waits for it.
            .values(adopted_by=ProbeRow.adopted_by)
            .returning(ProbeRow)
            .execution_options(synchronize_session=False)
        )
        return await self._claimed(statement)

    async def _claimed(self, statement: Any) -> list[ProbeRecord]:
        async with self._sessions.begin() as session:
            found = (await session.scalars(statement)).all()
        ordered = sorted(found, key=lambda row: (row.planned_at, row.id))
        return [convert.record(row) for row in ordered]

    # -- sightings --------------------------------------------------------------------------

    async def record_sighting(self, sighting: Sighting, seen_by: str) -> None:
        values = convert.sighting_values(sighting) | {
            "token": sighting.token,
            "seen_by": seen_by,
            "folder": sighting.folder,
            "folder_role": sighting.role.value,
            "recorded_at": func.now(),
        }
        statement = insert(SightingRow).values(values).on_conflict_do_nothing()
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def sightings(self, tokens: Sequence[str]) -> list[Sighting]:
        if not tokens:
            return []
        statement = select(SightingRow).where(SightingRow.token.in_(sorted(tokens)))
        async with self._sessions() as session:
            found = (await session.scalars(statement)).all()
        return [s for s in map(convert.sighting, found) if s is not None]

    async def on_their_way(self, mailboxes: Sequence[str]) -> list[tuple[str, str]]:
        """(token, recipient) of canaries handed off to these mailboxes and not judged yet."""
        statement = select(ProbeRow.token, ProbeRow.recipient).where(
            ProbeRow.state == "sent", ProbeRow.recipient.in_(mailboxes)
        )
        async with self._sessions() as session:
            return [(token, to) for token, to in (await session.execute(statement)).all()]

    async def prune_sightings(self, older_than: float) -> int:
        cutoff = func.now() - timedelta(seconds=older_than)
        async with self._sessions.begin() as session:
            statement = delete(SightingRow).where(SightingRow.recorded_at < cutoff)
            done = await session.execute(statement)
        return int(cast(CursorResult[Any], done).rowcount)

    # -- the canary key ---------------------------------------------------------------------

    async def canary_key(self, candidate: bytes) -> bytes:
        """The fleet's key: the stored one, or `candidate` stored now by the first to come."""
        async with self._sessions.begin() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": KEY_LOCK})
            stored = (await session.execute(select(CanaryKeyRow.key))).scalar_one_or_none()
            if stored is not None:
                return bytes(stored)
            session.add(CanaryKeyRow(id=1, key=candidate, created_at=func.now()))
        return candidate


async def fleet_of(engine: AsyncEngine, lease: float) -> Fleet | None:
    """Which instance watches which mailbox and each instance's last heartbeat (`lease`:
    `monitor.lease`, which decides who counts as live). None on SQLite (one instance, no
    leases) and before migration 0007."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as connection:
        known = await connection.run_sync(lambda c: inspect(c).has_table("instances"))
    return await SharedWork(engine, lease).fleet() if known else None


def _status(
    row: InstanceRow, held: dict[str, Lease], now: datetime, lease: timedelta
) -> InstanceStatus:
    live = row.stopped_at is None and row.heartbeat_at > now - lease
    mailboxes = tuple(
        sorted(m for m, x in held.items() if x.owner == row.name and x.expires_at > now)
    )
    return InstanceStatus(
        row.name,
        row.started_at,
        row.heartbeat_at,
        row.stopping,
        row.stopped_at,
        live,
        mailboxes,
        row.host,
        row.pid,
    )
