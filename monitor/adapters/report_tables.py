"""Reporting's tables, on the same metadata as `probes` (one schema, one migration chain).

`probe_rollup`: final probes counted per (route, recipient, instance, UTC hour, verdict,
delivery-time bucket, DMARC result). The weekly report reads it instead of `probes`: SQLite
groups by sorting, so grouping ten million probes takes tens of seconds, while their rollup
is a few rows per mailbox and hour. Database triggers (alembic 0005, with the instance since
0006) keep it in step with `probes` in the same transaction as every insert, update and
delete, whichever code writes the probe: `Store.finish`, `Store.mark_late`, a bulk import.
`instance` is the `[monitor] instance` that claimed and sent the canary (several daemons may
share a PostgreSQL database); `bucket` is `monitor.reports.model.bucket_of` of
`delivery_seconds` (-1: no delivery time); `dmarc` the receiver's DMARC result ("": none
recorded). `max_seconds` is exact unless probes were deleted: then it is an upper bound
within its bucket. The buckets are frozen in the migrations: changing them needs a new one.

WARNING for later migrations: a SQLite batch migration that *recreates* `probes` (alter or
drop a column, change a constraint) drops its triggers; such a migration must create them
again (copy them from 0006, the latest to define them). tests/integration/test_report.py
fails when they are missing.

`report_sends`: one row per (period, recipient address) of the scheduled report, so a restart
neither sends a week's report twice nor forgets it. A row is `sending` while leased,
then `sent` or `failed` (retried from `next_attempt_at`).

`ix_probes_failed_planned_at` is a partial covering index on `probes`: the report's failure
table reads only failed probes, however many succeeded, and only from the index (the
instance included, for a report of some instances only).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, Index, Integer, String, Text, text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from monitor.adapters.tables import Base, ProbeRow, UTCDateTime

SEND_STATUSES = ("sending", "sent", "failed")
FAILED_VERDICTS = "verdict IN ('send_failed', 'check_failed')"


class RollupRow(Base):
    __tablename__ = "probe_rollup"

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    route: Mapped[str] = mapped_column(Text, primary_key=True)
    recipient: Mapped[str] = mapped_column(Text, primary_key=True)
    instance: Mapped[str] = mapped_column(Text, primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    dmarc: Mapped[str] = mapped_column(Text, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    max_seconds: Mapped[float | None] = mapped_column(Float)

    # Hour first and clustered (SQLite: WITHOUT ROWID): a period is one range of the key,
    # new rows append at its end, and grouping by (hour, route, recipient, instance, verdict)
    # streams in key order instead of sorting.
    __table_args__ = ({"sqlite_with_rowid": False},)


class ReportSendRow(Base):
    __tablename__ = "report_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    recipient: Mapped[str] = mapped_column(Text)  # an email address
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Unique("period_start", "period_end", "recipient"),
        CheckConstraint(f"status IN {SEND_STATUSES!r}", name="status"),
    )


# Queries must spell the same predicate with literal values (not bound parameters) for
# SQLite to use a partial index.
# It holds every column the failure table groups and filters by (and `id`, to fetch one
# example text per group afterwards), so that query never reads the wide probe rows. The
# server's text itself stays out: PostgreSQL refuses index entries above ~2.7 kB.
FAILED_COLUMNS = (
    "planned_at",
    "route",
    "recipient",
    "verdict",
    "failure",
    "failure_phase",
    "failure_code",
    "failure_enhanced",
    "failure_transient",
    "instance",
    "id",
)
FAILED_PROBES_INDEX = Index(
    "ix_probes_failed_planned_at",
    *(ProbeRow.__table__.c[name] for name in FAILED_COLUMNS),
    sqlite_where=text(FAILED_VERDICTS),
    postgresql_where=text(FAILED_VERDICTS),
)
