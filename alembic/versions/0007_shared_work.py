"""shared work: instance heartbeats, mailbox leases, sightings, one canary key, adoption

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Several instances on one PostgreSQL share the seed mailboxes through leases and hand each
other the canaries they see (monitor.adapters.share_tables). `probes.adopted_by` names the
instance that took over an unfinished probe of a dead one. The column is added with a plain
ALTER TABLE, not a batch rebuild: rebuilding `probes` on SQLite would drop 0006's rollup
triggers. The downgrade drops exactly what the upgrade created (SQLite >= 3.35 drops a
column in place).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "instances",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("started_at", utc, nullable=False),
        sa.Column("heartbeat_at", utc, nullable=False),
        sa.Column("stopping", sa.Boolean(), nullable=False),
        sa.Column("stopped_at", utc, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instances")),
    )
    op.create_table(
        "mailbox_leases",
        sa.Column("mailbox", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("since", utc, nullable=False),
        sa.Column("expires_at", utc, nullable=False),
        sa.Column("successor", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("mailbox", name=op.f("pk_mailbox_leases")),
    )
    op.create_index("ix_mailbox_leases_owner", "mailbox_leases", ["owner"])
    op.create_table(
        "sightings",
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("seen_by", sa.Text(), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("folder_role", sa.String(length=16), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", utc, nullable=False),
        sa.Column("internal_date", utc, nullable=True),
        sa.Column("received_at", utc, nullable=True),
        sa.Column("seen_message_id", sa.Text(), nullable=True),
        sa.Column("auth_results", sa.JSON(), nullable=True),
        sa.Column("hops", sa.JSON(), nullable=True),
        sa.Column("spam_headers", sa.JSON(), nullable=True),
        sa.Column("recorded_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_sightings")),
    )
    op.create_index("ix_sightings_recorded_at", "sightings", ["recorded_at"])
    op.create_table(
        "canary_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_canary_key_one")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_key")),
    )
    op.add_column("probes", sa.Column("adopted_by", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("probes", "adopted_by")
    op.drop_table("canary_key")
    op.drop_index("ix_sightings_recorded_at", table_name="sightings")
    op.drop_table("sightings")
    op.drop_index("ix_mailbox_leases_owner", table_name="mailbox_leases")
    op.drop_table("mailbox_leases")
    op.drop_table("instances")
