"""From an identity provider's claims to Sluice's access: which workspaces, which role in each, which priority class.

Pure functions over the configured :class:`~sluice.config_sso.ClaimMapping` rules, so what a group grants is
decided in one place for people (groups in the ID token) and services (roles in a client-credentials token).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.config_sso import ROLE_RANK, ClaimMapping
from sluice.identity.principal import PRIORITY_ORDER

MAX_VALUES = 1000  # a claim listing more groups than this is cut (a token is not a directory)


@dataclass(frozen=True, slots=True)
class Grant:
    """One workspace a caller gets, with the strongest role any matching rule gives there."""

    workspace: str  # as configured: an id or a name
    role: str


@dataclass(frozen=True, slots=True)
class MappedAccess:
    grants: tuple[Grant, ...] = ()
    is_admin: bool = False  # some matching rule gives the role "admin" (a gateway admin)
    priority: str | None = None  # the most urgent class any matching rule names
    matched: tuple[str, ...] = field(default=())  # the claim values that matched a rule (for the audit log)

    @property
    def empty(self) -> bool:
        return not self.grants


def claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (Keycloak's ``resource_access.sluice.roles``)."""
    if name in claims:
        return claims[name]
    node: Any = claims
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """A claim as a list of strings: a list, a single string, or a space-separated string (like ``scope``)."""
    value = claim(claims, name)
    if isinstance(value, str):
        values = value.split() if name in ("scope", "scp") else [value]
    elif isinstance(value, list):
        values = [str(v) for v in value if isinstance(v, str | int)]
    else:
        values = []
    return values[:MAX_VALUES]


def map_claims(
    values: Iterable[str],
    rules: Sequence[ClaimMapping],
    default_workspace: str | None = None,
    default_role: str = "member",
) -> MappedAccess:
    """The access ``values`` (a caller's groups or roles) give under ``rules``; the default when none matches."""
    held = set(values)
    roles: dict[str, str] = {}
    priorities: list[str] = []
    matched: list[str] = []
    for rule in rules:
        if rule.value not in held:
            continue
        matched.append(rule.value)
        current = roles.get(rule.workspace)
        if current is None or ROLE_RANK[rule.role] > ROLE_RANK[current]:
            roles[rule.workspace] = rule.role
        if rule.priority is not None:
            priorities.append(rule.priority)
    if not roles and default_workspace is not None:
        roles[default_workspace] = default_role
    return MappedAccess(
        grants=tuple(Grant(workspace, role) for workspace, role in roles.items()),
        is_admin="admin" in roles.values(),
        priority=most_urgent(priorities),
        matched=tuple(dict.fromkeys(matched)),
    )


def most_urgent(priorities: Sequence[str]) -> str | None:
    """The most urgent of the named classes (known classes by the scheduler's order, then any other)."""
    if not priorities:
        return None
    order = {name: i for i, name in enumerate(PRIORITY_ORDER)}
    return min(priorities, key=lambda p: order.get(p, len(order)))


def membership_role(role: str) -> str:
    """The workspace role a mapped role means: a gateway admin is an owner of the workspaces mapped to them."""
    return "owner" if role == "admin" else role
