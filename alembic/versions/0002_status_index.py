"""probes: index for the newest probe per (route, recipient)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_probes_route_recipient_planned_at"),
        "probes",
        ["route", "recipient", "planned_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_probes_route_recipient_planned_at"), table_name="probes")
