"""Call recordings: whether a campaign's or API call's calls are recorded, where each recording is kept
and when it was made or deleted, and how long a tenant keeps them.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ATTEMPT_COLUMNS = (
    ("recording_location", sa.String()),
    ("recording_at", sa.DateTime(timezone=True)),
    ("recording_seconds", sa.Float()),
    ("recording_deleted_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("record", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("attempts", sa.Column("record", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name, type_ in _ATTEMPT_COLUMNS:
        op.add_column("attempts", sa.Column(name, type_, nullable=True))
    op.add_column("tenants", sa.Column("recording_retention_days", sa.Integer(), nullable=True))
    op.create_index(
        "ix_attempts_recordings",
        "attempts",
        ["tenant_id", "recording_at"],
        postgresql_where=sa.text("recording_location IS NOT NULL"),
        sqlite_where=sa.text("recording_location IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_attempts_recordings", table_name="attempts")
    with op.batch_alter_table("tenants", recreate="never") as batch:
        batch.drop_column("recording_retention_days")
    with op.batch_alter_table("attempts", recreate="never") as batch:
        for name, _type in reversed(_ATTEMPT_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("record")
    with op.batch_alter_table("campaigns", recreate="never") as batch:
        batch.drop_column("record")
