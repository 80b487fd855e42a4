"""instances: the process that heartbeats each name (owner token, host, pid)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Two daemons started with the same `monitor.instance` would renew each other's heartbeat and
leases and both act as one instance. Each process now stamps the name's row with a random
token of its own start (and its host and pid, to name it in the refusal); a heartbeat only
renews a row bearing its token. Rows written before this migration have none. Plain ALTER
TABLE, as 0007: the table exists on SQLite too though only PostgreSQL uses it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("owner", sa.Text()), ("host", sa.Text()), ("pid", sa.Integer()))


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("instances", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("instances", name)
