"""The database schema: one `probes` row per canary.

Everything a report aggregates over (route, recipient, planned_at, verdict, delivery_seconds)
is a typed column, never buried in JSON, so SQL can group and average over millions of rows.
Free text that comes from servers or users is `Text`: PostgreSQL enforces VARCHAR lengths and
SQLite does not, and a record must not be lost on one backend only. Secrets have no column.

The migration in alembic/versions must agree with these definitions; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Constraint names must be stable: SQLite batch migrations recreate tables and can only
# drop or alter a constraint they can name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PROBE_STATES = ("planned", "sending", "sent", "final")


class UTCDateTime(TypeDecorator[datetime]):
    """The one place where stored times become UTC-aware.

    SQLite keeps DATETIME as text without an offset (SQLAlchemy silently drops tzinfo), so a
    naive or non-UTC value would be stored as the wrong instant: naive input is refused and
    aware input is converted to UTC. Whatever comes back naive is UTC by construction.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError("the store accepts only timezone-aware datetimes")
        value = value.astimezone(UTC)
        # Equal width UTC text sorts in time order, which SQLite comparisons rely on.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProbeRow(Base):
    __tablename__ = "probes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # planned
    token: Mapped[str] = mapped_column(Text, unique=True)
    route: Mapped[str] = mapped_column(Text)
    sender: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    slot: Mapped[datetime] = mapped_column(UTCDateTime())
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    message_id: Mapped[str] = mapped_column(Text)
    instance: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    # sent: the deciding reply is denormalised out of smtp_replies so SQL can group by code
    smtp_phase: Mapped[str | None] = mapped_column(String(32))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_enhanced: Mapped[str | None] = mapped_column(String(32))
    smtp_message: Mapped[str | None] = mapped_column(Text)
    smtp_replies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    queue_id: Mapped[str | None] = mapped_column(Text)
    tls_version: Mapped[str | None] = mapped_column(String(32))
    handoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # final; no CHECK on verdict so a new verdict needs no table rebuild on SQLite
    verdict: Mapped[str | None] = mapped_column(String(16))
    failure: Mapped[str | None] = mapped_column(String(64))
    failure_phase: Mapped[str | None] = mapped_column(String(32))
    failure_transient: Mapped[bool | None] = mapped_column(Boolean)
    failure_message: Mapped[str | None] = mapped_column(Text)
    failure_code: Mapped[int | None] = mapped_column(Integer)
    failure_enhanced: Mapped[str | None] = mapped_column(String(32))
    # sighting and placement; IMAP UIDs are unsigned 32-bit, too big for a signed INTEGER
    folder: Mapped[str | None] = mapped_column(Text)
    folder_role: Mapped[str | None] = mapped_column(String(16))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    detected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    internal_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seen_message_id: Mapped[str | None] = mapped_column(Text)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    arrival_source: Mapped[str | None] = mapped_column(String(16))
    # where the arrival surely lies (0007): the error bar of arrived_at
    arrived_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    arrived_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_seconds: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # what the catalogue said of the failure, as shown when it was recorded
    failure_explanation: Mapped[str | None] = mapped_column(Text)
    failure_remedy: Mapped[str | None] = mapped_column(Text)
    # what the receiver thought of the canary: Authentication-Results, the Received hops,
    # spam-filter verdict headers (shapes in monitor.core.receipt)
    auth_results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    hops: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    spam_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # several instances: the live instance that took over this unfinished probe after its
    # sender died or left (migration 0007); `instance` stays the sender's
    adopted_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The claim: of several instances planning the same slot, exactly one insert wins.
        UniqueConstraint("route", "recipient", "slot"),
        CheckConstraint(f"state IN {PROBE_STATES!r}", name="state"),
        Index("ix_probes_planned_at", "planned_at"),
        Index("ix_probes_route_planned_at", "route", "planned_at"),
        # The newest probe of one mailbox (`mailcanary status`) is a seek, however long
        # the history and however many mailboxes share the route.
        Index("ix_probes_route_recipient_planned_at", "route", "recipient", "planned_at"),
        Index("ix_probes_state", "state"),
    )
