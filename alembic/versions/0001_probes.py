"""probes: one row per canary

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("slot", utc, nullable=False),
        sa.Column("planned_at", utc, nullable=False),
        sa.Column("deadline_at", utc, nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("instance", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("smtp_phase", sa.String(length=32), nullable=True),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("smtp_enhanced", sa.String(length=32), nullable=True),
        sa.Column("smtp_message", sa.Text(), nullable=True),
        sa.Column("smtp_replies", sa.JSON(), nullable=True),
        sa.Column("queue_id", sa.Text(), nullable=True),
        sa.Column("tls_version", sa.String(length=32), nullable=True),
        sa.Column("handoff_at", utc, nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("failure", sa.String(length=64), nullable=True),
        sa.Column("failure_phase", sa.String(length=32), nullable=True),
        sa.Column("failure_transient", sa.Boolean(), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("failure_code", sa.Integer(), nullable=True),
        sa.Column("failure_enhanced", sa.String(length=32), nullable=True),
        sa.Column("folder", sa.Text(), nullable=True),
        sa.Column("folder_role", sa.String(length=16), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("detected_at", utc, nullable=True),
        sa.Column("internal_date", utc, nullable=True),
        sa.Column("received_at", utc, nullable=True),
        sa.Column("seen_message_id", sa.Text(), nullable=True),
        sa.Column("arrived_at", utc, nullable=True),
        sa.Column("arrival_source", sa.String(length=16), nullable=True),
        sa.Column("delivery_seconds", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("finished_at", utc, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probes")),
        sa.UniqueConstraint("token", name=op.f("uq_probes_token")),
        sa.UniqueConstraint(
            "route", "recipient", "slot", name=op.f("uq_probes_route_recipient_slot")
        ),
        sa.CheckConstraint(
            "state IN ('planned', 'sending', 'sent', 'final')", name=op.f("ck_probes_state")
        ),
    )
    op.create_index(op.f("ix_probes_planned_at"), "probes", ["planned_at"])
    op.create_index(op.f("ix_probes_route_planned_at"), "probes", ["route", "planned_at"])
    op.create_index(op.f("ix_probes_state"), "probes", ["state"])


def downgrade() -> None:
    op.drop_table("probes")
