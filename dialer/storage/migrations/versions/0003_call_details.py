"""Call details: the callee's name, when the voice worker joined, when a transfer started and ended;
a campaign's opt-out DTMF digit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("callee_name", sa.String()),
    ("worker_connected_at", sa.DateTime(timezone=True)),
    ("transfer_started_at", sa.DateTime(timezone=True)),
    ("transfer_ended_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("attempts", sa.Column(name, type_, nullable=True))
    op.add_column("campaigns", sa.Column("opt_out_digit", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", recreate="never") as batch:
        batch.drop_column("opt_out_digit")
    with op.batch_alter_table("attempts", recreate="never") as batch:
        for name, _type in reversed(_COLUMNS):
            batch.drop_column(name)
