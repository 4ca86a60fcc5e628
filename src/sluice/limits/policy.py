"""What is limited for a caller: the scopes a request is charged to and each scope's limits.

A request is charged to every scope it belongs to — its key, its user, its workspace — and must fit within all of
them. Each scope's limits come, most specific first, from: a stored policy (admin API / CLI), a ``limits.scopes``
entry in the configuration, the role default (for the caller's own key or user scope: stored, else
``limits.role_defaults``), the scope type's default. The master key is never limited.

:meth:`PolicyTable.resolve` is that order, and the only place it is written down: admission and every view of a
scope's limits (the admin API, ``sluice limits spend``) go through it, so what they show is what admission applies.
Stored role defaults are rows of ``limit_policies`` with the scope type ``role`` and the role as id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from sluice.accounting.prices import units_to_nanos
from sluice.config import LimitsConfig, LimitValues
from sluice.identity.principal import Principal
from sluice.limits.periods import Period

ScopeType = str  # "key" | "user" | "workspace"
ROLE_SCOPE = "role"  # the scope type of stored role defaults
Source = Literal["stored", "config", "role", "default", "none"]


@dataclass(frozen=True, slots=True)
class Limits:
    """One scope's limits in the units the stores count in (budget in nanos)."""

    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    budget_nanos: int | None = None
    period: Period = "month"

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.concurrent is None and self.budget_nanos is None

    @classmethod
    def of(cls, values: LimitValues) -> Limits:
        return cls(
            rpm=values.rpm,
            tpm=values.tpm,
            concurrent=values.concurrent,
            budget_nanos=units_to_nanos(values.budget) if values.budget is not None else None,
            period=values.period,
        )


@dataclass(frozen=True, slots=True)
class Scope:
    type: ScopeType
    id: str
    limits: Limits

    @property
    def name(self) -> str:
        return f"{self.type}:{self.id}"


class PolicyTable:
    """Resolves a principal's scopes from stored policies, configuration and defaults (all in memory)."""

    def __init__(self, config: LimitsConfig, stored: Mapping[tuple[str, str], Limits] | None = None) -> None:
        self.config = config
        self._configured: dict[tuple[str, str], Limits] = {(s.scope, s.id): Limits.of(s) for s in config.scopes}
        self._defaults: dict[str, Limits] = {scope: Limits.of(v) for scope, v in config.defaults.items()}
        self._role_defaults = {role: Limits.of(values) for role, values in config.role_defaults.items()}
        self._stored: dict[tuple[str, str], Limits] = {}
        self._stored_roles: dict[str, Limits] = {}
        self.replace_stored(stored or {})

    def replace_stored(self, stored: Mapping[tuple[str, str], Limits]) -> None:
        self._stored = {key: limits for key, limits in stored.items() if key[0] != ROLE_SCOPE}
        self._stored_roles = {key[1]: limits for key, limits in stored.items() if key[0] == ROLE_SCOPE}

    def resolve(self, scope_type: ScopeType, scope_id: str, role: str | None = None) -> tuple[Limits, Source]:
        """A scope's limits and where they come from; ``role``: the caller's, when this is their own scope."""
        key = (scope_type, scope_id)
        found = self._stored.get(key)
        if found is not None:
            return found, "stored"
        found = self._configured.get(key)
        if found is not None:
            return found, "config"
        if role is not None:
            found = self._stored_roles.get(role) or self._role_defaults.get(role)
            if found is not None:
                return found, "role"
        found = self._defaults.get(scope_type)
        if found is not None:
            return found, "default"
        return Limits(), "none"

    def limits_for(self, scope_type: ScopeType, scope_id: str, role: str | None = None) -> Limits:
        return self.resolve(scope_type, scope_id, role)[0]

    def role_default(self, role: str) -> tuple[Limits, Source]:
        """The default for a role's own key or user scope: stored, else configured."""
        found = self._stored_roles.get(role)
        if found is not None:
            return found, "stored"
        found = self._role_defaults.get(role)
        if found is not None:
            return found, "config"
        return Limits(), "none"

    def scopes_for(self, principal: Principal) -> list[Scope]:
        """The scopes (with non-empty limits) a request by ``principal`` is charged to."""
        if principal.kind == "master":
            return []
        own = "key" if principal.key_id is not None else ("user" if principal.user_id is not None else None)
        candidates: Iterable[tuple[ScopeType, str | None]] = (
            ("key", principal.key_id),
            ("user", principal.user_id),
            ("workspace", principal.workspace_id),
        )
        scopes = []
        for scope_type, scope_id in candidates:
            if scope_id is None:
                continue
            limits = self.limits_for(scope_type, scope_id, principal.role if scope_type == own else None)
            if not limits.empty:
                scopes.append(Scope(scope_type, scope_id, limits))
        return scopes
