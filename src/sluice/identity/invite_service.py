"""Invitations (registration tokens): created by gateway admins for any workspace and by workspace owners for their
own, with a role no higher than the creator's. The token is returned once; only its hash is kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sluice.config import Settings
from sluice.errors import NotFound, PermissionDenied
from sluice.identity.access_repository import InviteRepository
from sluice.identity.accounts import hash_invite, invite_expiry, new_invite_token
from sluice.identity.audit import audit
from sluice.identity.grants import Authority, check_grant
from sluice.identity.images import invite_image
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.store.db import Database
from sluice.store.models import RegistrationToken
from sluice.store.types import utcnow

LIST_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class NewInvite:
    invite: RegistrationToken
    token: str  # shown once, never stored


class InviteService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def list(self, by: Authority) -> Sequence[RegistrationToken]:
        async with self.db.session() as session:
            return await InviteRepository(session).list(by.workspace_scope(), limit=LIST_LIMIT)

    async def create(
        self,
        by: Authority,
        *,
        workspace_id: str | None = None,
        role: str = "member",
        hours: float | None = None,
        note: str = "",
    ) -> NewInvite:
        """An invitation into ``workspace_id`` (gateway admins: any, or none for the default; owners: their own)
        valid for ``hours`` (default ``auth.invite_ttl_hours``)."""
        target = workspace_id if by.is_admin else by.principal.workspace_id
        if not by.is_admin and workspace_id not in (None, target):
            raise PermissionDenied("You can only invite into your own workspace.", code="grant_exceeds_own")
        check_grant(by.principal, role=role)
        token = new_invite_token()
        async with self.db.session() as session:
            if target is not None and not await WorkspaceRepository(session).exists(target):
                raise NotFound("No such workspace.", code="workspace_not_found")
            invite = await InviteRepository(session).add(
                RegistrationToken(
                    token_hash=hash_invite(token),
                    workspace_id=target,
                    role=role,
                    note=note,
                    created_by=by.actor.name,
                    expires_at=invite_expiry(hours or self.settings.auth.invite_ttl_hours),
                )
            )
            audit(
                session,
                by.actor,
                "invite.create",
                "invite",
                invite.id,
                workspace_id=target,
                after=invite_image(invite),
            )
        return NewInvite(invite, token)

    async def revoke(self, by: Authority, invite_id: str) -> RegistrationToken:
        async with self.db.session() as session:
            invite = await InviteRepository(session).get(invite_id)
            if invite is None or not by.sees_workspace(invite.workspace_id):
                raise NotFound("No such invitation.", code="invite_not_found")
            if invite.revoked_at is None:
                invite.revoked_at = utcnow()
            audit(session, by.actor, "invite.revoke", "invite", invite.id, workspace_id=invite.workspace_id)
        return invite
