"""per-conversation sampling settings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:00:00

A conversation in the web UI keeps its own temperature and answer length (max tokens) beside its model and system
prompt; null means the model's default.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("temperature", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("max_tokens")
        batch_op.drop_column("temperature")
