"""What a stored key may do now: what the key says, intersected with what its owner holds *now* in its workspace.

A key is capped by its creator's grants when it is made (:func:`sluice.identity.grants.check_grant`), but its owner
can later be demoted, removed from the workspace or disabled, and the workspace can narrow its models. So every
resolution recomputes the key's effective role, models and priority class from one row: the key, its workspace, its
owner and the owner's membership there (:meth:`sluice.identity.key_repository.KeyRepository.standing`).

- Revoked key, missing or disabled workspace → no principal.
- Owned key: owner gone, not active, or neither a member of the workspace nor a gateway admin → no principal.
  Otherwise the role is the lower of the key's and the owner's (``admin`` for gateway admins, else the membership
  role) and the priority class the lower of the key's and the owner's (the user's class, else the workspace's;
  gateway admins are not capped).
- Models: the key's set intersected with the workspace's restriction (owned or not).

A change to any of these is announced (``("user", id)``, ``("workspace", id)``) and every replica drops its cached
keys at once (:mod:`sluice.identity.invalidation`), as fast as a revocation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.identity.grants import ROLE_RANK, priority_rank
from sluice.identity.principal import DEFAULT_PRIORITY, Principal
from sluice.store.models import ApiKey, Membership, User, Workspace


@dataclass(frozen=True, slots=True)
class KeyStanding:
    """One key with what its standing is computed from (``None`` where the joined row does not exist)."""

    key: ApiKey
    workspace: Workspace | None
    owner: User | None
    membership: Membership | None


def lower_role(a: str, b: str) -> str:
    return a if ROLE_RANK.get(a, 0) <= ROLE_RANK.get(b, 0) else b


def lower_priority(a: str, b: str) -> str:
    """The less urgent of two classes (unknown classes count as ``standard``)."""
    return a if priority_rank(a) <= priority_rank(b) else b


def intersect_models(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """``None`` means every model."""
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _models(names: list[str] | None) -> frozenset[str] | None:
    return frozenset(names) if names is not None else None


def effective_principal(standing: KeyStanding) -> Principal | None:
    """The principal a key stands for now, or None if it may not be used."""
    key, workspace = standing.key, standing.workspace
    if key.revoked_at is not None or workspace is None or workspace.disabled_at is not None:
        return None
    role = str(key.settings.get("role", "member")) if key.settings else "member"
    priority = key.priority
    if key.user_id is not None:
        owner = standing.owner
        if owner is None or owner.status != "active":
            return None
        if owner.is_admin:
            role = lower_role(role, "admin")
        elif standing.membership is None:
            return None
        else:
            role = lower_role(role, standing.membership.role)
            held = owner.priority or workspace.priority or DEFAULT_PRIORITY
            priority = lower_priority(priority, held)
    return Principal(
        kind="key",
        id=key.id,
        role=role,
        workspace_id=key.workspace_id,
        user_id=key.user_id,
        key_id=key.id,
        priority=priority,
        allowed_models=intersect_models(_models(key.allowed_models), _models(workspace.allowed_models)),
        label=key.prefix,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        cache=key.cache,
    )
