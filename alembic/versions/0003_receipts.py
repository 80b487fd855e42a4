"""probes: the catalogue's explanation and remedy, and what the receiver thought

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("failure_explanation", sa.Text()),
    ("failure_remedy", sa.Text()),
    ("auth_results", sa.JSON()),
    ("hops", sa.JSON()),
    ("spam_headers", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("probes") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probes") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
