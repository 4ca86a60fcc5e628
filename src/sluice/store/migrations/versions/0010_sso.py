"""single sign-on: provider identities, sign-ins in flight, password login per user, mapped memberships

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 07:40:00

Users who sign in through an OpenID Connect provider are linked by the ID token's issuer and subject; a sign-in in
flight keeps its state (hashed), nonce and PKCE verifier until the provider sends the browser back. A user may be
barred from password sign-in, and a membership a provider's group mapping made is marked as such, so the next
sign-in can take it away again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sluice.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sluice.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sluice.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sso_identities_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_sso_identities_issuer")),
    )
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_identities_user_id"), ["user_id"], unique=False)
    op.create_table(
        "sso_logins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("for_ui", sa.Boolean(), nullable=False),
        sa.Column("created_at", sluice.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sluice.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", sluice.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ticket_hash", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("workspace_id", sa.String(length=32), nullable=True),
        sa.Column("ticket_used_at", sluice.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_sso_logins")),
        sa.UniqueConstraint("ticket_hash", name=op.f("uq_sso_logins_ticket_hash")),
    )
    with op.batch_alter_table("sso_logins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_logins_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_login", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_login")
    with op.batch_alter_table("sso_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_logins_expires_at"))
    op.drop_table("sso_logins")
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_identities_user_id"))
    op.drop_table("sso_identities")
