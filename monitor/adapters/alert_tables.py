"""Alerting's tables, on the same metadata as `probes` (one schema, one migration chain).

`alerts`: one row per (route, recipient, kind): the state machine's state. `version` makes
every update a compare-and-set, so two instances sharing a database never both advance it.
`alert_deliveries`: the outbox. One row per transition × channel × target (an email address;
"" for a webhook), written in the same transaction as the state change that caused it, so a
crash loses or duplicates neither. Unique on (transition_id, channel, target): nothing is
queued twice. A row is leased (`leased_by`, `lease_until`) while it is being sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from monitor.adapters.tables import Base, UTCDateTime

ALERT_STATUSES = ("ok", "pending", "firing", "resolved")
DELIVERY_STATUSES = ("pending", "sent", "failed")


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    route: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    bad_streak: Mapped[int] = mapped_column(Integer)
    good_streak: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_good_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_bad_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seq: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    # The canary that made it bad and the one that resolved it (whitelisted facts only).
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recovery: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Unique("route", "recipient", "kind"),
        CheckConstraint(f"status IN {ALERT_STATUSES!r}", name="status"),
        Index("ix_alerts_status", "status"),
    )


class DeliveryRow(Base):
    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transition_id: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(16))
    route: Mapped[str | None] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(32))
    # The rendered alert (`monitor.alerts.message.describe`); signing happens when sending.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_by: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Unique("transition_id", "channel", "target"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )
