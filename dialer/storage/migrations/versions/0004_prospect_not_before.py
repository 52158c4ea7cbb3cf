"""A prospect's earliest next attempt by its retry policy, kept apart from the calling window's deferral.

So a change of the campaign's window can re-plan prospects the old window deferred without dialling a
retry before its delay. Rows retried before this revision have none: they are left where they are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("prospects", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prospects", recreate="never") as batch:
        batch.drop_column("not_before")
