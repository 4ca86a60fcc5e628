"""API keys: creating, listing, editing and revoking them, for the admin API, the CLI and (through the API) the UI.

A key never holds more than its creator: its role, priority class and models are capped by the creator's
(:func:`sluice.identity.grants.check_grant`); a key made for a user belongs to a workspace the user is a member of
(gateway admins excepted, when an admin makes it). The secret appears once, in what :meth:`KeyService.create`
returns; afterwards only the visible prefix. A changed or revoked key is announced, so every replica drops it from
its cache at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sluice.errors import InvalidRequest, NotFound, PermissionDenied
from sluice.identity.access_repository import RuleRepository
from sluice.identity.audit import audit
from sluice.identity.grants import Authority, check_grant
from sluice.identity.images import key_image
from sluice.identity.invalidation import Announce
from sluice.identity.key_repository import KeyRepository
from sluice.identity.keys import generate_key, hash_key, visible_prefix
from sluice.identity.network import parse_network
from sluice.identity.user_repository import UserRepository
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.naming import require_name
from sluice.store.db import Database
from sluice.store.models import ApiKey, IpRule
from sluice.store.types import utcnow

LIST_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class KeyTerms:
    """What a new key is: fields left ``None`` default to the creator's own (workspace, user, role, priority)."""

    name: str
    workspace_id: str | None = None
    user_id: str | None = None
    role: str | None = None
    priority: str | None = None
    allowed_models: list[str] | None = None  # None: every model the creator may use
    expires_at: datetime | None = None
    ip_allow: Sequence[str] = field(default_factory=tuple)  # networks the key may be used from
    cache: bool | None = None


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once, never stored


def check_expiry(expires_at: datetime | None) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise InvalidRequest("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z).", param="expires_at")
    if expires_at <= utcnow():
        raise InvalidRequest("expires_at is in the past.", param="expires_at")


def _networks(cidrs: Sequence[str]) -> list[str]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(str(parse_network(cidr)))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="ip_allow") from None
    return networks


class KeyService:
    def __init__(self, db: Database, announce: Announce) -> None:
        self.db = db
        self.announce = announce

    async def create(self, by: Authority, terms: KeyTerms) -> NewKey:
        require_name(terms.name)
        p = by.principal
        workspace_id = terms.workspace_id or p.workspace_id
        if workspace_id is None:
            raise InvalidRequest("Name the workspace the key belongs to.", param="workspace_id")
        if not by.is_admin and workspace_id != p.workspace_id:
            raise PermissionDenied("You can only create keys in your own workspace.", code="grant_exceeds_own")
        user_id = terms.user_id if terms.user_id is not None else p.user_id
        if user_id != p.user_id and not by.at_least("owner"):
            raise PermissionDenied("You can only create keys for yourself.", code="grant_exceeds_own")
        role = terms.role or ("member" if by.is_admin else p.role)
        priority = terms.priority or p.priority
        check_grant(p, role=role, priority=priority, models=terms.allowed_models, grants_models=True)
        check_expiry(terms.expires_at)
        networks = _networks(terms.ip_allow)
        secret = generate_key()
        async with self.db.session() as session:
            if not await WorkspaceRepository(session).exists(workspace_id):
                raise NotFound("No such workspace.", code="workspace_not_found")
            if user_id is not None:
                await self._check_owner(UserRepository(session), by, user_id, workspace_id)
            key = await KeyRepository(session).add(
                ApiKey(
                    name=terms.name,
                    prefix=visible_prefix(secret),
                    key_hash=hash_key(secret),
                    workspace_id=workspace_id,
                    user_id=user_id,
                    allowed_models=terms.allowed_models,
                    priority=priority,
                    settings={"role": role},
                    expires_at=terms.expires_at,
                    created_by=by.actor.name,
                    cache=terms.cache,
                )
            )
            rules = RuleRepository(session)
            for cidr in networks:
                await rules.add(
                    IpRule(cidr=cidr, scope="key", key_id=key.id, workspace_id=workspace_id, created_by=by.actor.name)
                )
            audit(session, by.actor, "key.create", "key", key.id, workspace_id=workspace_id, after=key_image(key))
        if networks:
            await self.announce("rules", None)
        return NewKey(key, secret)

    @staticmethod
    async def _check_owner(users: UserRepository, by: Authority, user_id: str, workspace_id: str) -> None:
        """A key's owner is a member of its workspace (or a gateway admin, given the key by an admin)."""
        user = await users.get(user_id)
        member = await users.membership(user_id, workspace_id)
        if user is None or (member is None and not (user.is_admin and by.is_admin)):
            raise NotFound("No such user in this workspace.", code="user_not_found")

    async def list(
        self, by: Authority, workspace_id: str | None = None, include_revoked: bool = False
    ) -> Sequence[ApiKey]:
        """The keys ``by`` may see: gateway admins every key (or one workspace's), owners their workspace's,
        everyone else their own."""
        workspace, user, own = _reach(by, workspace_id)
        created_by = by.actor.name if own and user is None else None
        async with self.db.session() as session:
            return await KeyRepository(session).list(
                workspace,
                include_revoked,
                user_id=user if own else None,
                created_by=created_by,
                limit=LIST_LIMIT,
            )

    async def get(self, by: Authority, key_id: str) -> ApiKey:
        async with self.db.session() as session:
            return await _visible(KeyRepository(session), by, key_id)

    async def find(self, ident: str) -> ApiKey:
        """A key by id or visible prefix (the operator's way of naming one)."""
        async with self.db.session() as session:
            key = await KeyRepository(session).by_id_or_prefix(ident)
        if key is None:
            raise NotFound(f"No API key with id or prefix {ident!r}.", code="key_not_found")
        return key

    async def edit(self, by: Authority, key_id: str, changes: Mapping[str, Any]) -> ApiKey:
        """Name, allowed models (``None``: every model), priority class, expiry (``None``: never), response caching
        (``None``: as the model says); ``changes`` holds only the fields to change, within ``by``'s grants."""
        check_grant(
            by.principal,
            priority=changes.get("priority") if "priority" in changes else None,
            models=changes.get("allowed_models"),
            grants_models="allowed_models" in changes,
        )
        if "expires_at" in changes:
            check_expiry(changes["expires_at"])
        if changes.get("name") is not None:
            require_name(changes["name"])
        async with self.db.session() as session:
            key = await _visible(KeyRepository(session), by, key_id)
            if key.revoked_at is not None:
                raise InvalidRequest("A revoked key cannot be changed.", code="key_revoked")
            before = key_image(key)
            _apply(key, changes)
            _audit_change(session, by, "key.update", key, before)
        await self.announce("key", key.key_hash)
        return key

    async def revoke(self, by: Authority, key_id: str) -> ApiKey:
        """Revoke a key (audited); revoking a revoked key changes nothing and records nothing."""
        async with self.db.session() as session:
            key = await _visible(KeyRepository(session), by, key_id)
            if key.revoked_at is None:
                before = key_image(key)
                key.revoked_at = utcnow()
                _audit_change(session, by, "key.revoke", key, before)
        await self.announce("key", key.key_hash)
        return key


def _audit_change(session: AsyncSession, by: Authority, action: str, key: ApiKey, before: dict[str, object]) -> None:
    audit(session, by.actor, action, "key", key.id, workspace_id=key.workspace_id, before=before, after=key_image(key))


def _apply(key: ApiKey, changes: Mapping[str, Any]) -> None:
    if changes.get("name") is not None:
        key.name = changes["name"]
    if "allowed_models" in changes:
        key.allowed_models = changes["allowed_models"]
    if changes.get("priority") is not None:
        key.priority = changes["priority"]
    if "expires_at" in changes:
        key.expires_at = changes["expires_at"]
    if "cache" in changes:
        key.cache = changes["cache"]


def _reach(by: Authority, workspace_id: str | None) -> tuple[str | None, str | None, bool]:
    """(workspace, user, own-only) the keys ``by`` may see are confined to."""
    p = by.principal
    if by.is_admin:
        return workspace_id, None, False
    if by.at_least("owner"):
        return p.workspace_id, None, False
    return p.workspace_id, p.user_id, True


async def _visible(keys: KeyRepository, by: Authority, key_id: str) -> ApiKey:
    """The key, if ``by`` may see it; a key out of sight is not found, exactly like a key that does not exist."""
    key = await keys.get(key_id)
    if key is not None and not by.is_admin:
        workspace, user, own = _reach(by, None)
        mine = key.user_id == user if user is not None else key.created_by == by.actor.name
        if key.workspace_id != workspace or (own and not mine):
            key = None
    if key is None:
        raise NotFound("No such API key.", code="key_not_found")
    return key
