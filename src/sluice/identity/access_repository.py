"""SQL for invitations (registration tokens) and IP rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.store.models import IpRule, RegistrationToken


class InviteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, invite_id: str) -> RegistrationToken | None:
        return await self.session.get(RegistrationToken, invite_id)

    async def add(self, invite: RegistrationToken) -> RegistrationToken:
        self.session.add(invite)
        await self.session.flush()
        return invite

    async def list(self, workspace_id: str | None = None, limit: int | None = None) -> Sequence[RegistrationToken]:
        query = select(RegistrationToken).order_by(RegistrationToken.created_at)
        if workspace_id is not None:
            query = query.where(RegistrationToken.workspace_id == workspace_id)
        if limit is not None:
            query = query.limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def claim(self, token_hash: str, user_id: str, now: datetime) -> RegistrationToken | None:
        """Mark an open invitation used by ``user_id``: one conditional UPDATE, so of two concurrent claims exactly
        one wins; None for the loser, and for a token that is unknown, expired, revoked or used."""
        result = await self.session.execute(
            update(RegistrationToken)
            .where(
                RegistrationToken.token_hash == token_hash,
                RegistrationToken.used_at.is_(None),
                RegistrationToken.revoked_at.is_(None),
                RegistrationToken.expires_at > now,
            )
            .values(used_at=now, used_by=user_id)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        query = select(RegistrationToken).where(RegistrationToken.token_hash == token_hash)
        return (await self.session.execute(query)).scalar_one()


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, rule_id: str) -> IpRule | None:
        return await self.session.get(IpRule, rule_id)

    async def add(self, rule: IpRule) -> IpRule:
        self.session.add(rule)
        await self.session.flush()
        return rule

    async def remove(self, rule: IpRule) -> None:
        await self.session.delete(rule)

    async def list(self, workspace_id: str | None = None) -> Sequence[IpRule]:
        """Oldest first; with ``workspace_id``, the rules filed under that workspace."""
        query = select(IpRule).order_by(IpRule.created_at)
        if workspace_id is not None:
            query = query.where(IpRule.workspace_id == workspace_id)
        return (await self.session.execute(query)).scalars().all()
