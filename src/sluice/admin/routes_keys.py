"""``/admin/v1/keys``: API keys, created by anyone for themselves and by owners and admins for others.

The rules (grants, workspace membership, visibility, audit, invalidation) are the key service's
(:class:`sluice.identity.key_service.KeyService`), shared with the CLI; these routes parse, declare the least role,
call it and render. The secret appears once, in the creation response; afterwards only the visible prefix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sluice.admin.policy import Caller, requires
from sluice.admin.schemas import KeyCreate, KeyCreated, KeyOut, KeyUpdate
from sluice.identity.images import key_role
from sluice.identity.key_service import KeyTerms
from sluice.store.models import ApiKey

router = APIRouter(tags=["keys"])

Member = Annotated[Caller, Depends(requires("member"))]
Viewer = Annotated[Caller, Depends(requires("viewer"))]


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


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(
    caller: Viewer,
    workspace_id: Annotated[str | None, Query(max_length=64)] = None,
    include_revoked: bool = False,
) -> list[KeyOut]:
    return [key_out(k) for k in await caller.identity.keys.list(caller, workspace_id, include_revoked)]


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, caller: Member) -> KeyCreated:
    terms = KeyTerms(
        name=body.name,
        workspace_id=body.workspace_id,
        user_id=body.user_id,
        role=body.role,
        priority=body.priority,
        allowed_models=body.allowed_models,
        expires_at=body.expires_at,
        ip_allow=tuple(body.ip_allow or ()),
        cache=body.cache,
    )
    new = await caller.identity.keys.create(caller, terms)
    return KeyCreated(**key_out(new.key).model_dump(), key=new.secret)


@router.get("/keys/{key_id}", response_model=KeyOut)
async def get_key(key_id: str, caller: Viewer) -> KeyOut:
    return key_out(await caller.identity.keys.get(caller, key_id))


@router.patch("/keys/{key_id}", response_model=KeyOut)
async def update_key(key_id: str, body: KeyUpdate, caller: Member) -> KeyOut:
    """Rename a key or change its models, priority class, expiry or cache setting, within the caller's grants."""
    changes = body.model_dump(include=body.model_fields_set)
    return key_out(await caller.identity.keys.edit(caller, key_id, changes))


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, caller: Member) -> KeyOut:
    return key_out(await caller.identity.keys.revoke(caller, key_id))
