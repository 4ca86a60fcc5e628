"""SQL for users, their memberships, their sessions (refresh tokens) and password-reset links."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.store.models import Membership, PasswordReset, RefreshToken, User
from sluice.store.types import utcnow


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users ----------------------------------------------------------------------------------------------

    async def get(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def by_email(self, email: str) -> User | None:
        """By an email already normalised (stored lower-cased)."""
        return (await self.session.execute(select(User).where(User.email == email))).scalar_one_or_none()

    async def by_id_or_email(self, ident: str) -> User | None:
        return await self.get(ident) or await self.by_email(ident.strip().lower())

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def list(
        self, *, status: str | None = None, workspace_id: str | None = None, limit: int | None = None
    ) -> Sequence[User]:
        """Oldest first; with ``workspace_id``, that workspace's members only."""
        query = select(User).order_by(User.created_at)
        if workspace_id is not None:
            query = query.join(Membership, Membership.user_id == User.id).where(Membership.workspace_id == workspace_id)
        if status is not None:
            query = query.where(User.status == status)
        if limit is not None:
            query = query.limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def emails(self, user_ids: Sequence[str]) -> dict[str, str]:
        """id → email of those of ``user_ids`` that exist."""
        rows = await self.session.execute(select(User.id, User.email).where(User.id.in_(user_ids)))
        return {row.id: row.email for row in rows}

    async def any_admin(self) -> bool:
        return (await self.session.execute(select(User.id).where(User.is_admin.is_(True)).limit(1))).first() is not None

    # --- memberships ----------------------------------------------------------------------------------------

    async def membership(self, user_id: str, workspace_id: str) -> Membership | None:
        return await self.session.get(Membership, (user_id, workspace_id))

    def add_membership(self, user_id: str, workspace_id: str, role: str) -> Membership:
        member = Membership(user_id=user_id, workspace_id=workspace_id, role=role)
        self.session.add(member)
        return member

    async def remove_membership(self, member: Membership) -> None:
        await self.session.delete(member)

    async def memberships_of(self, user_id: str) -> Sequence[Membership]:
        """A user's memberships, the oldest (their default workspace at login) first."""
        query = select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)
        return (await self.session.execute(query)).scalars().all()

    async def members_of(self, workspace_id: str) -> Sequence[tuple[Membership, str]]:
        """A workspace's memberships with each member's email, oldest first."""
        rows = await self.session.execute(
            select(Membership, User.email)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == workspace_id)
            .order_by(Membership.created_at)
        )
        return [(member, email) for member, email in rows]

    # --- sessions -------------------------------------------------------------------------------------------

    def add_session(self, token: RefreshToken) -> None:
        self.session.add(token)

    async def session_for_rotation(self, token_id: str) -> RefreshToken | None:
        """A refresh token's row, locked (PostgreSQL) until the rotation commits."""
        return await self.session.get(RefreshToken, token_id, with_for_update=True)

    async def mark_used(self, token_id: str, now: datetime) -> bool:
        """Mark a refresh token used; False if it already was (one conditional UPDATE: one of two racers wins)."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def end_sessions(self, user_id: str, now: datetime | None = None) -> None:
        """Revoke every live refresh token of a user (all their sessions end)."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
            .execution_options(synchronize_session=False)
        )

    async def end_family(self, family: str) -> None:
        """Revoke one session (every refresh token of its rotation family)."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    async def family_ended(self, family: str) -> bool:
        revoked = await self.session.execute(
            select(RefreshToken.id).where(RefreshToken.family == family, RefreshToken.revoked_at.is_not(None)).limit(1)
        )
        return revoked.first() is not None

    # --- password resets ------------------------------------------------------------------------------------

    def add_reset(self, reset: PasswordReset) -> None:
        self.session.add(reset)

    async def claim_reset(self, token_hash: str, now: datetime) -> PasswordReset | None:
        """Use a reset link once, before it expires (a conditional UPDATE); None if it cannot be used."""
        claimed = await self.session.execute(
            update(PasswordReset)
            .where(
                PasswordReset.token_hash == token_hash, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        query = select(PasswordReset).where(PasswordReset.token_hash == token_hash)
        return (await self.session.execute(query)).scalar_one()
