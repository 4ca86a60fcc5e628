"""Who may do what: roles, the grant rule (nobody hands out more than they hold) and the acting authority.

Roles rank ``viewer < member < owner < admin``; ``admin`` is gateway-wide, the others hold within the principal's
workspace. Every identity service takes an :class:`Authority` (the principal whose grants cap the change, and the
actor its audit row names) and applies the same rules whoever calls: the admin API passes the signed-in caller,
the CLI passes :data:`OPERATOR` (the operator at the database holds every grant, like the master key).
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.errors import InvalidRequest, PermissionDenied
from sluice.identity.audit import CLI_ACTOR, Actor
from sluice.identity.principal import MASTER, PRIORITY_ORDER, Principal

ROLE_RANK = {"viewer": 1, "member": 2, "owner": 3, "admin": 4}
WORKSPACE_ROLES = ("owner", "member", "viewer")
KEY_ROLES = ("admin", "owner", "member", "viewer")


@dataclass(frozen=True, slots=True)
class Authority:
    """Who makes a change or asks a question, and so what they may reach and hand out."""

    principal: Principal
    actor: Actor

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    def workspace_scope(self, requested: str | None = None) -> str | None:
        """The workspace a query is confined to: the caller's own, unless a gateway admin (then ``requested``)."""
        if self.is_admin:
            return requested
        return self.principal.workspace_id

    def sees_workspace(self, workspace_id: str | None) -> bool:
        return self.is_admin or (workspace_id is not None and workspace_id == self.principal.workspace_id)

    def at_least(self, role: str) -> bool:
        return ROLE_RANK.get(self.principal.role, 0) >= ROLE_RANK[role]


OPERATOR = Authority(MASTER, CLI_ACTOR)


def priority_rank(name: str) -> int:
    """Higher is more urgent; unknown classes rank with ``standard``."""
    order = PRIORITY_ORDER
    if name in order:
        return len(order) - order.index(name)
    return len(order) - order.index("standard")


def check_grant(
    grantor: Principal,
    *,
    role: str | None = None,
    priority: str | None = None,
    models: list[str] | None = None,
    grants_models: bool = False,
) -> None:
    """Refuse to hand out a role, priority class or model set beyond the grantor's own.

    With ``grants_models``, ``models`` is the set being granted (``None`` meaning every model).
    """
    if priority is not None and priority not in PRIORITY_ORDER:
        raise InvalidRequest(
            f"Unknown priority class '{priority}' (known: {', '.join(PRIORITY_ORDER)}).", param="priority"
        )
    if role is not None and ROLE_RANK.get(role, 99) > ROLE_RANK.get(grantor.role, 0):
        raise PermissionDenied(f"You cannot grant the role '{role}': it is above your own.", code="grant_exceeds_own")
    if priority is not None and priority_rank(priority) > priority_rank(grantor.priority) and not grantor.is_admin:
        raise PermissionDenied(
            f"You cannot grant the priority class '{priority}': it is above your own.", code="grant_exceeds_own"
        )
    if (
        grants_models
        and grantor.allowed_models is not None
        and (models is None or not set(models) <= grantor.allowed_models)
    ):
        raise PermissionDenied("You cannot grant models you may not use yourself.", code="grant_exceeds_own")
