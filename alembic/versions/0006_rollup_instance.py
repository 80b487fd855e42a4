"""reports by instance: the probe rollup counts per instance too

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

`probe_rollup` gains `instance` in its key, after the mailbox (the hour stays first: a
period is still one range of the key), so a report can count what some instances sent or
split each mailbox's line per instance. The rollup is derived data: it is dropped, created
with the new key (SQLite cannot change the key of a WITHOUT ROWID table in place) and
counted again from `probes`, as 0005 counted it; the triggers on `probes` are created again
with the instance. The failed-probes covering index gains `instance`, so a report of some
instances still reads its failures from the index alone. The downgrade rebuilds 0005's
rollup, triggers and index the same way, to the letter.

Writers wait meanwhile: on PostgreSQL the trigger's DROP locks `probes` until the migration
commits; on SQLite the migration is one write transaction (see `_sqlite_begin`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As frozen in 0005: 16 buckets per decade from 0.1 s; bucket k holds EDGES[k-1] <= s < EDGES[k].
EDGES = tuple(float(f"{0.1 * 10 ** (k / 16):.4g}") for k in range(95))
FAILED = "verdict IN ('send_failed', 'check_failed')"
FAILED_INDEX = "ix_probes_failed_planned_at"
SQLITE_TRIGGERS = ("probes_rollup_insert", "probes_rollup_update", "probes_rollup_delete")


class Rollup:
    """The rollup's table, triggers and index, with the instance (0006) or without (0005)."""

    def __init__(self, by_instance: bool) -> None:
        instance = ["instance"] if by_instance else []
        self.key = ["hour", "route", "recipient", *instance, "verdict", "bucket", "dmarc"]
        self.watched = ["route", "recipient", *instance, "planned_at", "verdict"]
        self.watched += ["delivery_seconds", "auth_results"]
        self.failed_columns = ["planned_at", "route", "recipient", "verdict", "failure"]
        self.failed_columns += ["failure_phase", "failure_code", "failure_enhanced"]
        self.failed_columns += ["failure_transient", *instance, "id"]
        self.KEY = ", ".join(self.key)
        self.COLUMNS = f"{self.KEY}, n, max_seconds"
        self.WATCHED = ", ".join(self.watched)

    def create(self) -> None:
        types = {"hour": sa.DateTime(timezone=True), "verdict": sa.String(length=16)}
        types["bucket"] = sa.Integer()
        op.create_table(
            "probe_rollup",
            *(sa.Column(name, types.get(name, sa.Text()), nullable=False) for name in self.key),
            sa.Column("n", sa.Integer(), nullable=False),
            sa.Column("max_seconds", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint(*self.key, name=op.f("pk_probe_rollup")),
            sqlite_with_rowid=False,
        )
        op.create_index(
            FAILED_INDEX,
            "probes",
            self.failed_columns,
            sqlite_where=sa.text(FAILED),
            postgresql_where=sa.text(FAILED),
        )
        if op.get_context().dialect.name == "sqlite":
            self._sqlite_triggers()
        else:
            self._postgresql_trigger()

    # -- SQLite ---------------------------------------------------------------------------

    def _sqlite_key(self, row: str) -> list[str]:
        """The rollup key of a probes row: `row` is "NEW." or "OLD." in a trigger, "" in a query."""
        ladder = " ".join(
            f"WHEN {row}delivery_seconds < {edge!r} THEN {k}" for k, edge in enumerate(EDGES)
        )
        values = {
            "hour": f"strftime('%Y-%m-%d %H:00:00.000000', {row}planned_at)",
            "bucket": f"CASE WHEN {row}delivery_seconds IS NULL THEN -1 {ladder} "
            f"ELSE {len(EDGES)} END",
            "dmarc": f"coalesce(json_extract({row}auth_results, '$.dmarc.result'), '')",
        }
        return [values.get(column, f"{row}{column}") for column in self.key]

    def _sqlite_add(self, row: str) -> str:
        values = ", ".join([*self._sqlite_key(row), "1", f"{row}delivery_seconds"])
        return (
            f"INSERT INTO probe_rollup ({self.COLUMNS}) SELECT {values} WHERE {row}verdict IS NOT "
            f"NULL ON CONFLICT ({self.KEY}) DO UPDATE SET n = n + 1, max_seconds = max("
            "coalesce(max_seconds, excluded.max_seconds), coalesce(excluded.max_seconds, "
            "max_seconds));"
        )

    def _sqlite_remove(self, row: str) -> str:
        match = " AND ".join(
            f"{column} = {value}"
            for column, value in zip(self.key, self._sqlite_key(row), strict=True)
        )
        return (
            f"UPDATE probe_rollup SET n = n - 1 WHERE {row}verdict IS NOT NULL AND {match}; "
            f"DELETE FROM probe_rollup WHERE n <= 0 AND {match};"
        )

    def _sqlite_triggers(self) -> None:
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in self.watched)
        op.execute(
            "CREATE TRIGGER probes_rollup_insert AFTER INSERT ON probes "
            f"WHEN NEW.verdict IS NOT NULL BEGIN {self._sqlite_add('NEW.')} END"
        )
        op.execute(
            f"CREATE TRIGGER probes_rollup_update AFTER UPDATE OF {self.WATCHED} ON probes "
            f"WHEN {changed} BEGIN {self._sqlite_remove('OLD.')} {self._sqlite_add('NEW.')} END"
        )
        op.execute(
            "CREATE TRIGGER probes_rollup_delete AFTER DELETE ON probes "
            f"WHEN OLD.verdict IS NOT NULL BEGIN {self._sqlite_remove('OLD.')} END"
        )
        key = ", ".join(self._sqlite_key(""))
        op.execute(
            f"INSERT INTO probe_rollup ({self.COLUMNS}) SELECT {key}, count(*), "
            f"max(delivery_seconds) FROM probes WHERE verdict IS NOT NULL GROUP BY {key}"
        )

    # -- PostgreSQL -----------------------------------------------------------------------

    def _pg_key(self, row: str) -> list[str]:
        edges = ", ".join(repr(edge) for edge in EDGES)
        values = {
            # date_trunc on a timestamptz would cut in the session's time zone.
            "hour": f"date_trunc('hour', {row}planned_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            "bucket": f"coalesce(width_bucket({row}delivery_seconds, "
            f"ARRAY[{edges}]::float8[]), -1)",
            "dmarc": f"coalesce({row}auth_results -> 'dmarc' ->> 'result', '')",
        }
        return [values.get(column, f"{row}{column}") for column in self.key]

    def _postgresql_trigger(self) -> None:
        match = " AND ".join(
            f"{column} = {value}"
            for column, value in zip(self.key, self._pg_key("OLD."), strict=True)
        )
        same = " AND ".join(
            f"OLD.{c}::text IS NOT DISTINCT FROM NEW.{c}::text" for c in self.watched
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
        INSERT INTO probe_rollup AS r ({self.COLUMNS})
        VALUES ({", ".join(self._pg_key("NEW."))}, 1, NEW.delivery_seconds)
        ON CONFLICT ({self.KEY}) DO UPDATE
        SET n = r.n + 1, max_seconds = GREATEST(r.max_seconds, EXCLUDED.max_seconds);
    END IF;
    RETURN NULL;
END
$$"""
        )
        op.execute(
            f"CREATE TRIGGER probes_rollup AFTER INSERT OR DELETE OR UPDATE OF {self.WATCHED} "
            "ON probes FOR EACH ROW EXECUTE FUNCTION probe_rollup_apply()"
        )
        key = ", ".join(self._pg_key(""))
        op.execute(
            f"INSERT INTO probe_rollup ({self.COLUMNS}) SELECT {key}, count(*), "
            f"max(delivery_seconds) FROM probes WHERE verdict IS NOT NULL GROUP BY {key}"
        )


def _drop() -> None:
    """The rollup, its triggers and the failed-probes index, whichever key they have."""
    if op.get_context().dialect.name == "sqlite":
        _sqlite_begin()
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS probes_rollup ON probes")
        op.execute("DROP FUNCTION IF EXISTS probe_rollup_apply()")
    op.drop_index(FAILED_INDEX, table_name="probes")
    op.drop_table("probe_rollup")


def _sqlite_begin() -> None:
    # Python's sqlite3 opens its implicit transaction before the first INSERT, UPDATE or
    # DELETE only, and runs DDL before that on its own: a DML statement first makes the
    # whole rebuild one transaction (all or nothing; no probe written between the steps).
    op.execute("DELETE FROM probe_rollup")


def upgrade() -> None:
    _drop()
    Rollup(by_instance=True).create()


def downgrade() -> None:
    _drop()
    Rollup(by_instance=False).create()
