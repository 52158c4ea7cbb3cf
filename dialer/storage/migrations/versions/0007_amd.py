"""Answering-machine detection: a campaign's AMD settings and voicemail retry rule, the prospect's
voicemail count, and on each call its verdict (``answered_by``) and an API call's own AMD settings.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Existing campaigns get detection off and the default voicemail retry rule.
_CAMPAIGN = (
    ("retry_voicemail_calls", sa.Boolean(), sa.true()),
    ("max_retries_voicemail", sa.Integer(), sa.text("2")),
    ("retry_delay_voicemail_seconds", sa.Integer(), sa.text("3600")),
    ("amd", sa.String(), sa.text("'off'")),
    ("amd_timeout_seconds", sa.Integer(), sa.text("30")),
    ("amd_async", sa.Boolean(), sa.false()),
    ("amd_on_machine", sa.String(), sa.text("'hangup'")),
)


def upgrade() -> None:
    for name, type_, default in _CAMPAIGN:
        op.add_column("campaigns", sa.Column(name, type_, nullable=False, server_default=default))
    op.add_column("campaigns", sa.Column("amd_message_url", sa.String(), nullable=True))
    op.add_column(
        "prospects", sa.Column("attempts_voicemail", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column("attempts", sa.Column("answered_by", sa.String(), nullable=True))
    op.add_column("attempts", sa.Column("amd", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts", recreate="never") as batch:
        batch.drop_column("amd")
        batch.drop_column("answered_by")
    with op.batch_alter_table("prospects", recreate="never") as batch:
        batch.drop_column("attempts_voicemail")
    with op.batch_alter_table("campaigns", recreate="never") as batch:
        batch.drop_column("amd_message_url")
        for name, _type, _default in reversed(_CAMPAIGN):
            batch.drop_column(name)
