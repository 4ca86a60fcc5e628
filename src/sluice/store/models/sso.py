"""Single sign-on: which provider identity is which user, and sign-ins in flight (state, nonce, PKCE verifier)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sluice.store.models.base import Base
from sluice.store.types import UTCDateTime, new_id, utcnow


class SsoIdentity(Base):
    """A user as one identity provider knows them: the ID token's ``iss`` and ``sub`` (stable, unlike emails)."""

    __tablename__ = "sso_identities"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (UniqueConstraint("issuer", "subject"),)


class SsoLogin(Base):
    """One sign-in started at a provider. ``state`` comes back once (its hash is the key); after the callback a
    single-use ``ticket`` hands the signed-in session to the web UI."""

    __tablename__ = "sso_logins"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    for_ui: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    workspace_id: Mapped[str | None] = mapped_column(String(32), default=None)
    ticket_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
