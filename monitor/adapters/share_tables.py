"""The tables through which instances on one PostgreSQL share the work (migration 0007).

`instances`: one row per instance name, its heartbeat renewed every lease round; `stopping`
while it drains after SIGTERM (peers take its mailboxes), `stopped_at` once it left.
`mailbox_leases`: one row per seed mailbox being watched: `owner` until `expires_at`
(renewed each round), and `successor`, the instance that is to take it over and whose IMAP
sessions are already up (make-before-break, see monitor.core.sharing).
`sightings`: a canary seen by the watcher of its mailbox on behalf of the instance that sent
it (or resumed it); that instance reads it back and records the verdict.
`canary_key`: the one HMAC key every instance signs and verifies canaries with.

SQLite gets the same tables from the same migration but a single instance never uses them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.adapters.tables import Base, UTCDateTime


class InstanceRow(Base):
    __tablename__ = "instances"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopping: Mapped[bool] = mapped_column(Boolean)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The process heartbeating this name (migration 0009): a second one is refused.
    owner: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)


class LeaseRow(Base):
    __tablename__ = "mailbox_leases"

    mailbox: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    successor: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_mailbox_leases_owner", "owner"),)


class SightingRow(Base):
    __tablename__ = "sightings"

    token: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_by: Mapped[str] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(Text)
    folder_role: Mapped[str] = mapped_column(String(16))
    uid: Mapped[int] = mapped_column(BigInteger)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    internal_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seen_message_id: Mapped[str | None] = mapped_column(Text)
    auth_results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    hops: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    spam_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_sightings_recorded_at", "recorded_at"),)


class CanaryKeyRow(Base):
    __tablename__ = "canary_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("id = 1", name="one"),)
