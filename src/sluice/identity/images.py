"""The audit images of identity's objects: what an audit row records before and after a change.

One image per kind of object, so a change reads the same in the audit log whichever way it was made. Secrets never
appear: images name no hash or token, and :func:`sluice.identity.audit.scrub` drops any field that would.
"""

from __future__ import annotations

from sluice.store.models import ApiKey, IpRule, RegistrationToken, User, Workspace


def user_image(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "email": user.email,
        "status": user.status,
        "is_admin": user.is_admin,
        "priority": user.priority,
        "password_login": user.password_login,
    }


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
