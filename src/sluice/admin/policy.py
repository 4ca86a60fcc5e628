"""Who may call each admin endpoint: every route declares a policy through its ``caller`` dependency.

``requires("owner")`` authenticates the request (master key, API key or user JWT, with IP rules applied) and
admits principals whose role ranks at least ``owner``; ``public`` marks the few routes anyone may call (register,
login, refresh). A test walks the router and fails for any route without one of these.

Roles rank ``viewer < member < owner < admin`` (:data:`sluice.identity.grants.ROLE_RANK`); ``admin`` is
gateway-wide, the others hold within the principal's workspace. What a caller may see and hand out once admitted
(visibility, the grant rule) is the identity services' to decide: a :class:`Caller` is the
:class:`~sluice.identity.grants.Authority` they are given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from sluice.errors import PermissionDenied
from sluice.identity.audit import Actor
from sluice.identity.authenticate import token_from_headers
from sluice.identity.grants import ROLE_RANK, Authority
from sluice.identity.network import BROWSER_HEADER, Address
from sluice.identity.principal import Principal
from sluice.observability.request_id import scope_request_id

if TYPE_CHECKING:
    from sluice.identity.service import IdentityService
    from sluice.services import Services

__all__ = ["PUBLIC", "ROLE_RANK", "Caller", "declared_policy", "public", "requires"]

PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Caller(Authority):
    """The authenticated principal of an admin request (the authority the services act for), with the services."""

    services: Services

    @property
    def identity(self) -> IdentityService:
        return self.services.identity


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
