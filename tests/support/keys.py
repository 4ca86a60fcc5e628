"""Keys for tests, made the way the operator makes them (``sluice keys …``): through the key service, as
:data:`~sluice.identity.grants.OPERATOR`, with nothing announced (tests that need a running gateway to drop a key
revoke it through the admin API)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sluice.identity.grants import OPERATOR
from sluice.identity.key_service import KeyService, KeyTerms, NewKey
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, ApiKey

__all__ = ["NewKey", "create_key", "list_keys", "revoke_key"]


async def _unannounced(_kind: str, _ident: str | None) -> None:
    """Nothing runs beside these tests' database that would need telling."""


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
    cache: bool | None = None,
) -> NewKey:
    terms = KeyTerms(
        name=name,
        workspace_id=workspace_id,
        user_id=user_id,
        role=role,
        priority=priority,
        allowed_models=allowed_models,
        expires_at=expires_at,
        cache=cache,
    )
    return await KeyService(db, _unannounced).create(OPERATOR, terms)


async def list_keys(db: Database, include_revoked: bool = False) -> Sequence[ApiKey]:
    return await KeyService(db, _unannounced).list(OPERATOR, include_revoked=include_revoked)


async def revoke_key(db: Database, ident: str) -> ApiKey:
    service = KeyService(db, _unannounced)
    return await service.revoke(OPERATOR, (await service.find(ident)).id)
