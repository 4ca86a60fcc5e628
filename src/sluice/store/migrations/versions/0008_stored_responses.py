"""stored responses (the Responses API's store)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sluice.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("previous_response_id", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("input_items", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sluice.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sluice.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
    )
    with op.batch_alter_table("stored_responses", schema=None) as batch_op:
        batch_op.create_index("ix_stored_responses_owner", ["workspace_id", "owner"], unique=False)
        batch_op.create_index("ix_stored_responses_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stored_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_stored_responses_expires_at")
        batch_op.drop_index("ix_stored_responses_owner")
    op.drop_table("stored_responses")
