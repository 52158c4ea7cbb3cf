"""Every transfer of a call, in order, as a JSON list on its row; the transfer_* columns stay the last.

Calls transferred before this revision get a one-entry list made from those columns.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _iso(at: datetime | None) -> str | None:
    """As the store writes times: UTC with its offset (SQLite hands them back naive, in UTC)."""
    if at is None:
        return None
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()


def upgrade() -> None:
    op.add_column("attempts", sa.Column("transfers", sa.JSON(), nullable=True))
    attempts = sa.table(
        "attempts",
        sa.column("id", sa.Uuid()),
        sa.column("transfer_to", sa.String()),
        sa.column("transfer_method", sa.String()),
        sa.column("transfer_result", sa.String()),
        sa.column("transfer_started_at", sa.DateTime(timezone=True)),
        sa.column("transfer_ended_at", sa.DateTime(timezone=True)),
        sa.column("transfers", sa.JSON()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(attempts).where(attempts.c.transfer_result.is_not(None))).mappings().all()
    for row in rows:
        entry = {
            "to": row["transfer_to"],
            "method": row["transfer_method"],
            "result": row["transfer_result"],
            "sip_code": None,  # not kept before this revision
            "started_at": _iso(row["transfer_started_at"]),
            "ended_at": _iso(row["transfer_ended_at"]),
        }
        conn.execute(sa.update(attempts).where(attempts.c.id == row["id"]).values(transfers=[entry]))


def downgrade() -> None:
    with op.batch_alter_table("attempts", recreate="never") as batch:
        batch.drop_column("transfers")
