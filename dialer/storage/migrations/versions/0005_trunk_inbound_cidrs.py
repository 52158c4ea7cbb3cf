"""A trunk's inbound networks: the CIDRs its inbound INVITEs may come from besides its host's addresses.

Existing trunks get none: they keep taking inbound calls from their host's addresses only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("trunks", sa.Column("inbound_cidrs", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("trunks", recreate="never") as batch:
        batch.drop_column("inbound_cidrs")
