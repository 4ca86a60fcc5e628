"""``/admin/v1/keys``: API keys, created by anyone for themselves and by owners and admins for others.

A key never holds more than its creator: its role, priority class and models are capped by the creator's (see
:func:`sluice.admin.policy.check_grant`). The secret appears once, in the creation response; afterwards only the
visible prefix. Revocation takes effect on every replica at once through the invalidation channel.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.admin.policy import Caller, check_grant, requires
from sluice.admin.schemas import KeyCreate, KeyCreated, KeyOut, KeyUpdate
from sluice.errors import InvalidRequest, NotFound, PermissionDenied
from sluice.identity.audit import audit
from sluice.identity.changes import check_expiry, edit_key, key_image, key_role
from sluice.identity.changes import revoke_key as revoke
from sluice.identity.keys import generate_key, hash_key, visible_prefix
from sluice.identity.network import parse_network
from sluice.store.models import ApiKey, IpRule, Membership, User, Workspace

router = APIRouter(tags=["keys"])

Member = Annotated[Caller, Depends(requires("viewer"))]


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        workspace_id=key.workspace_id,
        user_id=key.user_id,
        role=key_role(key),
        allowed_models=key.allowed_models,
        priority=key.priority,
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        cache=key.cache,
    )


def _filter_for(caller: Caller, workspace_id: str | None) -> tuple[str | None, str | None, bool]:
    """(workspace, user, own-only) a caller's key queries are confined to."""
    p = caller.principal
    if caller.is_admin:
        return workspace_id, None, False
    if caller.at_least("owner"):
        return p.workspace_id, None, False
    return p.workspace_id, p.user_id, True


async def visible_key(session: AsyncSession, caller: Caller, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is not None and not caller.is_admin:
        workspace, user, own = _filter_for(caller, None)
        mine = key.user_id == user if user is not None else key.created_by == caller.actor.name
        if key.workspace_id != workspace or (own and not mine):
            key = None
    if key is None:
        raise NotFound("No such API key.", code="key_not_found")
    return key


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(
    caller: Member,
    workspace_id: Annotated[str | None, Query(max_length=64)] = None,
    include_revoked: bool = False,
) -> list[KeyOut]:
    workspace, user, own = _filter_for(caller, workspace_id)
    query = select(ApiKey).order_by(ApiKey.created_at)
    if workspace is not None:
        query = query.where(ApiKey.workspace_id == workspace)
    if own:
        query = (
            query.where(ApiKey.user_id == user)
            if user is not None
            else query.where(ApiKey.created_by == caller.actor.name)
        )
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    async with caller.services.db.session() as session:
        return [key_out(k) for k in (await session.execute(query.limit(10_000))).scalars()]


def _checked_terms(body: KeyCreate) -> list[str]:
    """Validate the expiry; return the key's IP networks, normalised."""
    check_expiry(body.expires_at)
    networks = []
    for cidr in body.ip_allow or []:
        try:
            networks.append(str(parse_network(cidr)))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="ip_allow") from None
    return networks


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, caller: Annotated[Caller, Depends(requires("member"))]) -> KeyCreated:
    p = caller.principal
    workspace_id = body.workspace_id or p.workspace_id
    if workspace_id is None:
        raise InvalidRequest("Name the workspace the key belongs to.", param="workspace_id")
    if not caller.is_admin and workspace_id != p.workspace_id:
        raise PermissionDenied("You can only create keys in your own workspace.", code="grant_exceeds_own")
    user_id = body.user_id if body.user_id is not None else p.user_id
    if user_id != p.user_id and not caller.at_least("owner"):
        raise PermissionDenied("You can only create keys for yourself.", code="grant_exceeds_own")
    role = body.role or ("member" if caller.is_admin else p.role)
    priority = body.priority or p.priority
    check_grant(p, role=role, priority=priority, models=body.allowed_models, grants_models=True)
    networks = _checked_terms(body)
    secret = generate_key()
    async with caller.services.db.session() as session:
        if await session.get(Workspace, workspace_id) is None:
            raise NotFound("No such workspace.", code="workspace_not_found")
        if user_id is not None:
            user = await session.get(User, user_id)
            member = await session.get(Membership, (user_id, workspace_id))
            if user is None or (member is None and not (user.is_admin and caller.is_admin)):
                raise NotFound("No such user in this workspace.", code="user_not_found")
            if member is not None and not caller.is_admin:
                check_grant(p, role=role)
        key = ApiKey(
            name=body.name,
            prefix=visible_prefix(secret),
            key_hash=hash_key(secret),
            workspace_id=workspace_id,
            user_id=user_id,
            allowed_models=body.allowed_models,
            priority=priority,
            settings={"role": role},
            expires_at=body.expires_at,
            created_by=caller.actor.name,
            cache=body.cache,
        )
        session.add(key)
        await session.flush()
        for cidr in networks:
            session.add(
                IpRule(cidr=cidr, scope="key", key_id=key.id, workspace_id=workspace_id, created_by=caller.actor.name)
            )
        audit(session, caller.actor, "key.create", "key", key.id, workspace_id=workspace_id, after=key_image(key))
    if networks:
        await caller.services.invalidation.publish("rules")
    return KeyCreated(**key_out(key).model_dump(), key=secret)


@router.get("/keys/{key_id}", response_model=KeyOut)
async def get_key(key_id: str, caller: Member) -> KeyOut:
    async with caller.services.db.session() as session:
        return key_out(await visible_key(session, caller, key_id))


@router.patch("/keys/{key_id}", response_model=KeyOut)
async def update_key(key_id: str, body: KeyUpdate, caller: Annotated[Caller, Depends(requires("member"))]) -> KeyOut:
    """Rename a key or change its models, priority class, expiry or cache setting, within the caller's grants."""
    fields = body.model_fields_set
    check_grant(
        caller.principal,
        priority=body.priority if "priority" in fields else None,
        models=body.allowed_models,
        grants_models="allowed_models" in fields,
    )
    if "expires_at" in fields:
        check_expiry(body.expires_at)
    async with caller.services.db.session() as session:
        key = await visible_key(session, caller, key_id)
        edit_key(session, caller.actor, key, body.model_dump(include=fields))
    await caller.services.invalidation.publish("key", key.key_hash)
    return key_out(key)


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, caller: Annotated[Caller, Depends(requires("member"))]) -> KeyOut:
    async with caller.services.db.session() as session:
        key = await visible_key(session, caller, key_id)
        revoke(session, caller.actor, key)
    await caller.services.invalidation.publish("key", key.key_hash)
    return key_out(key)
