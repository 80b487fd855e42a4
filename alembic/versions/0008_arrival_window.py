"""probes: the arrival window, where the canary surely landed (its error bar)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

`arrived_after` is the latest evidence it had not landed yet (the hand-off, or the last look
that missed it), `arrived_before` the earliest that it had (the look that saw it, or a
server stamp); `arrived_at` lies between them. Older probes keep both empty: the evidence
was not recorded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
# If another 0007 lands first, renumber this file and change only this line.
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("arrived_after", "arrived_before")


# Plain ALTER TABLE, not batch mode: batch would rebuild `probes` on SQLite and lose the
# rollup triggers 0006 put on it (SQLite drops a column in place since 3.35).
def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("probes", sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in reversed(_COLUMNS):
        op.drop_column("probes", name)
