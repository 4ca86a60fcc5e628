"""Who may call each admin endpoint: every route declares a policy through its ``caller`` dependency.

``requires("owner")`` authenticates the request (master key, API key or user JWT, with IP rules applied) and
admits principals whose role ranks at least ``owner``; ``public`` marks the few routes anyone may call (register,
login, refresh). A test walks the router and fails for any route without one of these.

Roles rank ``viewer < member < owner < admin``; ``admin`` is gateway-wide, the others hold within the principal's
workspace. Nobody grants more than they hold: :func:`check_grant` is used wherever a role, priority class or model
list is handed to someone else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from sluice.errors import InvalidRequest, PermissionDenied
from sluice.identity.audit import Actor
from sluice.identity.authenticate import token_from_headers
from sluice.identity.network import BROWSER_HEADER, Address
from sluice.identity.principal import PRIORITY_ORDER, Principal
from sluice.observability.request_id import scope_request_id

if TYPE_CHECKING:
    from sluice.services import Services

ROLE_RANK = {"viewer": 1, "member": 2, "owner": 3, "admin": 4}
WORKSPACE_ROLES = ("owner", "member", "viewer")
PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of an admin request, with what the handlers need alongside it."""

    principal: Principal
    actor: Actor
    services: Services

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


def actor_for(principal: Principal, request_id: str | None) -> Actor:
    return Actor(principal.label or f"{principal.kind}:{principal.id}", request_id)


def request_id(request: Request) -> str | None:
    """The id the request-id middleware gave this request (the one its response carries)."""
    return scope_request_id(request.scope)


def _header(request: Request, name: str) -> bytes | None:
    value = request.headers.get(name)
    return value.encode("latin-1") if value is not None else None


def network_of(request: Request) -> tuple[str | None, bytes | None, bytes | None]:
    """What the client-address rule judges: the TCP peer, ``X-Forwarded-For``, and the UI's vouched browser."""
    peer = request.client.host if request.client else None
    return peer, _header(request, "x-forwarded-for"), _header(request, BROWSER_HEADER.decode())


def client_address(request: Request) -> Address | None:
    """The caller's address by the trusted-proxies rule (the one the IP rules use)."""
    services: Services = request.app.state.services
    return services.gateway.authenticator.proxies.client_address(*network_of(request))


CallerDependency = Callable[[Request], Awaitable[Caller]]


def requires(role: str) -> CallerDependency:
    """A FastAPI dependency: the authenticated caller, if their role ranks at least ``role``."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")
    cached = _DEPENDENCIES.get(role)
    if cached is not None:
        return cached

    async def caller(request: Request) -> Caller:
        services: Services = request.app.state.services
        token = token_from_headers(_header(request, "authorization"), _header(request, "x-api-key"))
        principal = await services.gateway.authenticator.identify_token(token, *network_of(request))
        if ROLE_RANK.get(principal.role, 0) < ROLE_RANK[role]:
            raise PermissionDenied(f"This needs the '{role}' role.", code="insufficient_role")
        return Caller(principal, actor_for(principal, request_id(request)), services)

    caller.required_role = role  # type: ignore[attr-defined]
    _DEPENDENCIES[role] = caller
    return caller


async def public(request: Request) -> Services:
    """Marks a route anyone may call; gives it the services."""
    services: Services = request.app.state.services
    return services


public.required_role = PUBLIC  # type: ignore[attr-defined]

_DEPENDENCIES: dict[str, CallerDependency] = {}


def declared_policy(dependencies: Iterable[Any]) -> str | None:
    """The policy a route declares (for the test that every route has one)."""
    for dependency in dependencies:
        role = getattr(dependency.call, "required_role", None)
        if role is not None:
            return str(role)
        nested = declared_policy(dependency.dependencies)
        if nested is not None:
            return nested
    return None


# --- grants ---------------------------------------------------------------------------------------------------


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
