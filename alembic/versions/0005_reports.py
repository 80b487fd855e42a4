"""reports: the probe rollup kept by triggers, the record of report sends

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

`probe_rollup` counts final probes per (route, recipient, UTC hour, verdict, delivery-time
bucket, DMARC result); triggers on `probes` keep it in step in the same transaction as every
write, and existing probes are counted once here. The bucket edges are frozen below and
must equal `monitor.reports.model.EDGES` (a test checks every bucket through the database).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 16 buckets per decade from 0.1 s; bucket k holds EDGES[k-1] <= seconds < EDGES[k].
EDGES = tuple(float(f"{0.1 * 10 ** (k / 16):.4g}") for k in range(95))
FAILED = "verdict IN ('send_failed', 'check_failed')"
FAILED_COLUMNS = [
    "planned_at",
    "route",
    "recipient",
    "verdict",
    "failure",
    "failure_phase",
    "failure_code",
    "failure_enhanced",
    "failure_transient",
    "id",
]
KEY = "hour, route, recipient, verdict, bucket, dmarc"
COLUMNS = f"{KEY}, n, max_seconds"
TRIGGERS = ("probes_rollup_insert", "probes_rollup_update", "probes_rollup_delete")
WATCHED = "route, recipient, planned_at, verdict, delivery_seconds, auth_results"


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "probe_rollup",
        sa.Column("hour", utc, nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("dmarc", sa.Text(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("max_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "hour", "route", "recipient", "verdict", "bucket", "dmarc", name=op.f("pk_probe_rollup")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "report_sends",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period_start", utc, nullable=False),
        sa.Column("period_end", utc, nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("lease_until", utc, nullable=True),
        sa.Column("next_attempt_at", utc, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("sent_at", utc, nullable=True),
        sa.CheckConstraint(
            "status IN ('sending', 'sent', 'failed')", name=op.f("ck_report_sends_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_sends")),
        sa.UniqueConstraint(
            "period_start",
            "period_end",
            "recipient",
            name=op.f("uq_report_sends_period_start_period_end_recipient"),
        ),
    )
    op.create_index(
        "ix_probes_failed_planned_at",
        "probes",
        FAILED_COLUMNS,
        sqlite_where=sa.text(FAILED),
        postgresql_where=sa.text(FAILED),
    )
    if op.get_context().dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgresql_trigger()


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS probes_rollup ON probes")
        op.execute("DROP FUNCTION IF EXISTS probe_rollup_apply()")
    op.drop_index("ix_probes_failed_planned_at", table_name="probes")
    op.drop_table("report_sends")
    op.drop_table("probe_rollup")


# -- SQLite ---------------------------------------------------------------------------------


def _sqlite_key(row: str) -> list[str]:
    """The rollup key of a probes row (`row` is "NEW." or "OLD." in a trigger, "" in a query)."""
    ladder = " ".join(
        f"WHEN {row}delivery_seconds < {edge!r} THEN {k}" for k, edge in enumerate(EDGES)
    )
    return [
        f"strftime('%Y-%m-%d %H:00:00.000000', {row}planned_at)",
        f"{row}route",
        f"{row}recipient",
        f"{row}verdict",
        f"CASE WHEN {row}delivery_seconds IS NULL THEN -1 {ladder} ELSE {len(EDGES)} END",
        f"coalesce(json_extract({row}auth_results, '$.dmarc.result'), '')",
    ]


def _sqlite_add(row: str) -> str:
    values = ", ".join([*_sqlite_key(row), "1", f"{row}delivery_seconds"])
    return (
        f"INSERT INTO probe_rollup ({COLUMNS}) SELECT {values} WHERE {row}verdict IS NOT NULL "
        f"ON CONFLICT ({KEY}) DO UPDATE SET n = n + 1, max_seconds = max("
        "coalesce(max_seconds, excluded.max_seconds), coalesce(excluded.max_seconds, max_seconds));"
    )


def _sqlite_remove(row: str) -> str:
    match = " AND ".join(
        f"{column} = {value}"
        for column, value in zip(KEY.split(", "), _sqlite_key(row), strict=True)
    )
    return (
        f"UPDATE probe_rollup SET n = n - 1 WHERE {row}verdict IS NOT NULL AND {match}; "
        f"DELETE FROM probe_rollup WHERE n <= 0 AND {match};"
    )


def _sqlite_triggers() -> None:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED.split(", "))
    op.execute(
        "CREATE TRIGGER probes_rollup_insert AFTER INSERT ON probes "
        f"WHEN NEW.verdict IS NOT NULL BEGIN {_sqlite_add('NEW.')} END"
    )
    op.execute(
        f"CREATE TRIGGER probes_rollup_update AFTER UPDATE OF {WATCHED} ON probes "
        f"WHEN {changed} BEGIN {_sqlite_remove('OLD.')} {_sqlite_add('NEW.')} END"
    )
    op.execute(
        "CREATE TRIGGER probes_rollup_delete AFTER DELETE ON probes "
        f"WHEN OLD.verdict IS NOT NULL BEGIN {_sqlite_remove('OLD.')} END"
    )
    key = ", ".join(_sqlite_key(""))
    op.execute(
        f"INSERT INTO probe_rollup ({COLUMNS}) SELECT {key}, count(*), max(delivery_seconds) "
        f"FROM probes WHERE verdict IS NOT NULL GROUP BY {', '.join(_sqlite_key(''))}"
    )


# -- PostgreSQL -----------------------------------------------------------------------------


def _pg_key(row: str) -> list[str]:
    edges = ", ".join(repr(edge) for edge in EDGES)
    return [
        # date_trunc on a timestamptz would cut in the session's time zone.
        f"date_trunc('hour', {row}planned_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        f"{row}route",
        f"{row}recipient",
        f"{row}verdict",
        f"coalesce(width_bucket({row}delivery_seconds, ARRAY[{edges}]::float8[]), -1)",
        f"coalesce({row}auth_results -> 'dmarc' ->> 'result', '')",
    ]


def _postgresql_trigger() -> None:
    match = " AND ".join(
        f"{column} = {value}"
        for column, value in zip(KEY.split(", "), _pg_key("OLD."), strict=True)
    )
    same = " AND ".join(
        f"OLD.{c}::text IS NOT DISTINCT FROM NEW.{c}::text" for c in WATCHED.split(", ")
    )
    op.execute(
        f"""
CREATE OR REPLACE FUNCTION probe_rollup_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {same} THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.verdict IS NOT NULL THEN
        UPDATE probe_rollup SET n = n - 1 WHERE {match};
        DELETE FROM probe_rollup WHERE n <= 0 AND {match};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.verdict IS NOT NULL THEN
        INSERT INTO probe_rollup AS r ({COLUMNS})
        VALUES ({", ".join(_pg_key("NEW."))}, 1, NEW.delivery_seconds)
        ON CONFLICT ({KEY}) DO UPDATE
        SET n = r.n + 1, max_seconds = GREATEST(r.max_seconds, EXCLUDED.max_seconds);
    END IF;
    RETURN NULL;
END
$$"""
    )
    op.execute(
        f"CREATE TRIGGER probes_rollup AFTER INSERT OR DELETE OR UPDATE OF {WATCHED} "
        "ON probes FOR EACH ROW EXECUTE FUNCTION probe_rollup_apply()"
    )
    key = ", ".join(_pg_key(""))
    op.execute(
        f"INSERT INTO probe_rollup ({COLUMNS}) SELECT {key}, count(*), max(delivery_seconds) "
        f"FROM probes WHERE verdict IS NOT NULL GROUP BY {key}"
    )
