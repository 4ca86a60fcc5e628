"""Changes to users, workspaces and keys that the admin API and the CLI both make.

One place for each rule and its audit row, so a change reads the same in the audit log whichever way it was made.
Who may make it (roles, grants, workspace scope) is the caller's business: the API checks it against the
principal (:mod:`sluice.admin.policy`); the CLI is the operator working on the database directly.

``changes`` holds only the fields to change (a field given as ``None`` clears it where that means something).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.errors import InvalidRequest, NotFound
from sluice.identity.accounts import Conflict, normalise_email, user_by_email, user_image
from sluice.identity.audit import Actor, audit
from sluice.identity.passwords import hash_password, password_problem
from sluice.store.models import (
    DEFAULT_WORKSPACE_ID,
    ApiKey,
    IpRule,
    Membership,
    RefreshToken,
    RegistrationToken,
    User,
    Workspace,
)
from sluice.store.types import utcnow


def workspace_image(ws: Workspace) -> dict[str, object]:
    return {
        "id": ws.id,
        "name": ws.name,
        "disabled": ws.disabled_at is not None,
        "priority": ws.priority,
        "allowed_models": ws.allowed_models,
        "created_at": ws.created_at,
    }


def key_role(key: ApiKey) -> str:
    return str((key.settings or {}).get("role", "member"))


def key_image(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "workspace_id": key.workspace_id,
        "user_id": key.user_id,
        "role": key_role(key),
        "allowed_models": key.allowed_models,
        "priority": key.priority,
        "cache": key.cache,
        "created_by": key.created_by,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def invite_image(invite: RegistrationToken) -> dict[str, object]:
    return {
        "id": invite.id,
        "workspace_id": invite.workspace_id,
        "role": invite.role,
        "note": invite.note,
        "created_by": invite.created_by,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
        "used_at": invite.used_at,
        "used_by": invite.used_by,
        "revoked_at": invite.revoked_at,
    }


def rule_image(rule: IpRule) -> dict[str, object]:
    return {
        "id": rule.id,
        "cidr": rule.cidr,
        "scope": rule.scope,
        "workspace_id": rule.workspace_id,
        "key_id": rule.key_id,
        "anonymous": rule.anonymous,
        "priority": rule.priority,
        "allowed_models": rule.allowed_models,
        "note": rule.note,
        "created_by": rule.created_by,
        "created_at": rule.created_at,
    }


def check_expiry(expires_at: datetime | None) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise InvalidRequest("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z).", param="expires_at")
    if expires_at <= utcnow():
        raise InvalidRequest("expires_at is in the past.", param="expires_at")


async def create_user(
    session: AsyncSession,
    actor: Actor,
    email: str,
    *,
    password: str | None,
    workspace_id: str,
    role: str,
    priority: str | None = None,
) -> User:
    """An active account an admin makes (the way in while registration is ``closed``).

    Without a password the account gets an unusable random one; the admin then hands over a reset link.
    """
    email = normalise_email(email)
    if password is not None and (problem := password_problem(password)):
        raise InvalidRequest(problem, param="password")
    if await user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists.", code="email_taken")
    if await session.get(Workspace, workspace_id) is None:
        raise NotFound("No such workspace.", code="workspace_not_found")
    secret = password if password is not None else secrets.token_urlsafe(32)
    user = User(email=email, password_hash=hash_password(secret), status="active", priority=priority)
    session.add(user)
    await session.flush()
    session.add(Membership(user_id=user.id, workspace_id=workspace_id, role=role))
    after = {**user_image(user), "workspace_id": workspace_id, "role": role}
    audit(session, actor, "user.create", "user", user.id, workspace_id=workspace_id, after=after)
    return user


async def set_user_status(session: AsyncSession, actor: Actor, user: User, status: str, action: str) -> None:
    """Approve, enable or disable; disabling also ends every session (its refresh tokens are revoked)."""
    before = user_image(user)
    user.status = status
    if status == "disabled":
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    audit(session, actor, action, "user", user.id, before=before, after=user_image(user))


def update_user(session: AsyncSession, actor: Actor, user: User, changes: Mapping[str, Any]) -> None:
    """Gateway-admin flag and priority class (``priority: None`` clears it: the workspace's class applies)."""
    before = user_image(user)
    if changes.get("is_admin") is not None:
        user.is_admin = bool(changes["is_admin"])
    if "priority" in changes:
        user.priority = changes["priority"]
    audit(session, actor, "user.update", "user", user.id, before=before, after=user_image(user))


async def update_workspace(session: AsyncSession, actor: Actor, ws: Workspace, changes: Mapping[str, Any]) -> None:
    """Name, disabled, priority class, allowed models; the flush surfaces a duplicate name (IntegrityError)."""
    before = workspace_image(ws)
    if changes.get("name") is not None:
        ws.name = changes["name"]
    if changes.get("disabled") is not None:
        if changes["disabled"] and ws.id == DEFAULT_WORKSPACE_ID:
            raise InvalidRequest("The default workspace cannot be disabled.", param="disabled")
        ws.disabled_at = (ws.disabled_at or utcnow()) if changes["disabled"] else None
    if "priority" in changes:
        ws.priority = changes["priority"]
    if "allowed_models" in changes:
        ws.allowed_models = changes["allowed_models"]
    await session.flush()
    audit(
        session,
        actor,
        "workspace.update",
        "workspace",
        ws.id,
        workspace_id=ws.id,
        before=before,
        after=workspace_image(ws),
    )


def revoke_key(session: AsyncSession, actor: Actor, key: ApiKey) -> None:
    """Revoke a key (audited); revoking a revoked key changes nothing and records nothing."""
    if key.revoked_at is not None:
        return
    before = key_image(key)
    key.revoked_at = utcnow()
    audit(
        session,
        actor,
        "key.revoke",
        "key",
        key.id,
        workspace_id=key.workspace_id,
        before=before,
        after=key_image(key),
    )


def edit_key(session: AsyncSession, actor: Actor, key: ApiKey, changes: Mapping[str, Any]) -> None:
    """Name, allowed models (``None``: every model), priority class, expiry (``None``: never), response caching
    (``None``: as the model says)."""
    if key.revoked_at is not None:
        raise InvalidRequest("A revoked key cannot be changed.", code="key_revoked")
    if "expires_at" in changes:
        check_expiry(changes["expires_at"])
    before = key_image(key)
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
    audit(
        session,
        actor,
        "key.update",
        "key",
        key.id,
        workspace_id=key.workspace_id,
        before=before,
        after=key_image(key),
    )
