"""Creating, listing, editing and revoking API keys from the CLI (the admin API has its own, role-checked, routes).

The audit rows carry the same images as the API's (:func:`sluice.identity.changes.key_image`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sluice.errors import NotFound
from sluice.identity.audit import CLI_ACTOR, Actor, audit
from sluice.identity.changes import edit_key, key_image
from sluice.identity.changes import revoke_key as revoke
from sluice.identity.key_repository import KeyRepository
from sluice.identity.keys import generate_key, hash_key, visible_prefix
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, ApiKey, User, Workspace


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once, never stored


async def find_user(db: Database, ident: str) -> User:
    """A user by id or email."""
    async with db.session() as session:
        user = await session.get(User, ident)
        if user is None:
            user = (await session.execute(select(User).where(User.email == ident.strip().lower()))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user with id or email {ident!r}.")
    return user


async def create_key(
    db: Database,
    name: str,
    *,
    workspace_id: str = DEFAULT_WORKSPACE_ID,
    user_id: str | None = None,
    allowed_models: list[str] | None = None,
    priority: str = "standard",
    role: str = "member",
    expires_at: datetime | None = None,
    created_by: str | None = None,
    actor: Actor = CLI_ACTOR,
    cache: bool | None = None,
) -> NewKey:
    secret = generate_key()
    key = ApiKey(
        name=name,
        prefix=visible_prefix(secret),
        key_hash=hash_key(secret),
        workspace_id=workspace_id,
        user_id=user_id,
        allowed_models=allowed_models,
        priority=priority,
        settings={"role": role},
        expires_at=expires_at,
        created_by=created_by,
        cache=cache,
    )
    async with db.session() as session:
        if await session.get(Workspace, workspace_id) is None:
            raise NotFound(f"No workspace {workspace_id!r}.")
        await KeyRepository(session).add(key)
        audit(
            session,
            actor,
            "key.create",
            "key",
            key.id,
            workspace_id=workspace_id,
            after=key_image(key),
        )
    return NewKey(key, secret)


async def list_keys(db: Database, include_revoked: bool = False) -> Sequence[ApiKey]:
    async with db.session() as session:
        return await KeyRepository(session).list(include_revoked=include_revoked)


async def revoke_key(db: Database, ident: str, actor: Actor = CLI_ACTOR) -> ApiKey:
    """Revoke by id or visible prefix; returns the key (its hash lets callers drop cached copies)."""
    async with db.session() as session:
        repo = KeyRepository(session)
        key = await repo.by_id_or_prefix(ident)
        if key is None:
            raise NotFound(f"No API key with id or prefix {ident!r}.")
        revoke(session, actor, key)
        return key


async def update_key(db: Database, ident: str, changes: Mapping[str, Any], actor: Actor = CLI_ACTOR) -> ApiKey:
    """Change a key found by id or visible prefix (see :func:`sluice.identity.changes.edit_key`)."""
    async with db.session() as session:
        key = await KeyRepository(session).by_id_or_prefix(ident)
        if key is None:
            raise NotFound(f"No API key with id or prefix {ident!r}.")
        edit_key(session, actor, key, changes)
        return key
