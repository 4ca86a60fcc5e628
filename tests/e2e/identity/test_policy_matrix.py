"""SECURITY.md case 8 and the audit log, generated from the admin router.

Every admin route declares a policy (a route without one fails), and for every route, every kind of caller
(anonymous, viewer, member, owner, admin) and every privileged field (role, workspace, admin flag, owner, priority
class, models, budget, spend, scope, anonymity) the generated requests show:

- a caller below the route's role is refused *for its role* (401 anonymous, 403 ``insufficient_role``), and the
  database does not change;
- a caller the route admits gets the route's valid example accepted (so a refusal below is the field's doing),
  and the same example with a privileged value beyond the caller's own (another workspace, a higher role or
  priority, models it may not use, a budget…) is either refused with the database unchanged or accepted with the
  value not applied.

And every route that changes something writes an audit event carrying the request's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import select

from sluice.admin.api import admin_routes
from sluice.admin.policy import PUBLIC, ROLE_RANK, declared_policy
from sluice.store.models import AuditEvent
from tests.e2e.identity.admin_world import (
    ENDS_SESSIONS,
    EXAMPLES,
    HOME_MODELS,
    REFUSED_HERE,
    Caller,
    World,
    changed_rows,
)
from tests.e2e.identity.conftest import Api, identity_settings
from tests.support.server import SluiceServer

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
ALLOWED = (400, 403, 404, 422)  # the ways a refused request may answer
PRIVILEGED_FIELDS = (
    "role",
    "workspace_id",
    "is_admin",
    "user_id",
    "priority",
    "allowed_models",
    "budget",
    "spend",
    "scope",
    "anonymous",
)
# Changes that are not configuration: sessions come and go with every sign-in, and a provider test only probes.
NOT_AUDITED = {
    ("POST", "/auth/login"): "a session, not a change",
    ("POST", "/auth/refresh"): "a session, not a change",
    ("POST", "/auth/logout"): "a session, not a change",
    ("POST", "/auth/sso/logout"): "a session, not a change",
    ("POST", "/auth/sso/ticket"): "a session, not a change (and no sign-in to redeem in this world)",
    ("POST", "/providers/{name}/test"): "a probe of the upstream; nothing is stored",
    ("POST", "/setup"): "refused once an admin exists (test_first_run checks the set-up's audit event)",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with SluiceServer(identity_settings(tmp_path_factory.mktemp("matrix"))) as server:
        api = Api(server.url)
        yield World(server, api)
        api.close()


def _body_model(route: APIRoute) -> type[BaseModel] | None:
    if route.body_field is None:
        return None
    model = route.body_field.field_info.annotation
    assert isinstance(model, type) and issubclass(model, BaseModel), route.path
    return model


def _routes() -> list[tuple[str, APIRoute]]:
    return [(method, route) for route in admin_routes() for method in sorted(route.methods)]


def test_every_admin_route_declares_a_policy() -> None:
    routes = admin_routes()
    assert len(routes) > 30
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if declared_policy(r.dependant.dependencies) is None]
    assert missing == []


def test_a_route_without_a_policy_is_detected() -> None:
    router = APIRouter()

    @router.get("/sneaky")
    async def sneaky() -> dict[str, str]:
        return {}

    route = next(r for r in router.routes if isinstance(r, APIRoute))
    assert declared_policy(route.dependant.dependencies) is None


def test_every_mutating_route_has_a_valid_example_and_no_example_is_stale() -> None:
    mutating = {(m, r.path) for m, r in _routes() if m in MUTATING}
    assert mutating - set(EXAMPLES) == set(), "describe these routes in admin_world.EXAMPLES"
    assert set(EXAMPLES) - mutating == set()
    assert set(NOT_AUDITED) <= mutating


def test_every_request_body_forbids_unknown_fields() -> None:
    for _method, route in _routes():
        model = _body_model(route)
        if model is not None:
            assert model.model_config.get("extra") == "forbid", f"{route.path}: {model.__name__}"


def beyond(world: World, caller: Caller, field: str) -> Any:
    """A value for ``field`` that grants more than ``caller`` holds."""
    return {
        "role": "admin",
        "workspace_id": world.other,
        "is_admin": True,
        "user_id": world.outsider.user_id,
        "priority": "interactive",  # every non-admin caller here is 'standard'
        "allowed_models": [*HOME_MODELS, "beyond-the-grant"],
        "budget": 1e9,
        "spend": 0,
        "scope": "global",
        "anonymous": True,
    }[field]


def applied(field: str, value: Any, rows: list[tuple[str, dict[str, Any]]]) -> bool:
    """Whether a privileged value reached the database through one of the changed rows."""
    for table, row in rows:
        if field in ("budget", "spend") and table == "limit_policies":
            return True
        if field == "role" and isinstance(row.get("settings"), dict) and row["settings"].get("role") == value:
            return True
        if field in row and row[field] == value:
            return True
    return False


def send(world: World, method: str, path: str, token: str | None, body: Any) -> httpx.Response:
    return world.api.call(method, path, token, json=body)


def _check_route(world: World, method: str, route: APIRoute, checked: list[str]) -> None:
    policy = declared_policy(route.dependant.dependencies)
    assert policy is not None
    example = EXAMPLES.get((method, route.path), lambda w, c: None)
    model = _body_model(route)
    fields = set(model.model_fields) if model is not None else set()
    mutating = method in MUTATING
    callers: list[Caller | None] = [None] if policy == PUBLIC else [None, *world.callers.values()]
    for caller in callers:
        who = caller.role if caller is not None else "anonymous"
        token = caller.token if caller is not None else None
        admitted = policy == PUBLIC or (caller is not None and ROLE_RANK[caller.role] >= ROLE_RANK[policy])
        where = f"{method} {route.path} as {who}"

        if admitted and mutating and model is not None:
            # For privileges, a public route's subject is the member whose credentials the example uses.
            holder = caller or world.callers["member"]
            for field in PRIVILEGED_FIELDS:
                if holder.role == "admin" and field in fields:
                    continue  # an admin holds every grant: only fields no body takes are tried on it
                path = world.path(method, route.path, caller)
                body = {**(example(world, caller) or {}), field: beyond(world, holder, field)}
                before = world.snapshot()
                response = send(world, method, path, token, body)
                rows = changed_rows(before, world.snapshot())
                if response.status_code < 300:
                    assert not applied(field, body[field], rows), f"{where}: {field}={body[field]!r} was applied"
                else:
                    assert response.status_code in ALLOWED, (where, field, response.status_code, response.text)
                    assert rows == [], f"{where}: refused {field} but the database changed: {rows}"
                checked.append(f"{where} {field}")

        path = world.path(method, route.path, caller)
        body = example(world, caller) if mutating else None
        before = world.snapshot() if mutating else None
        response = send(world, method, path, token, body)
        if admitted and (method, route.path) in REFUSED_HERE:
            assert response.status_code == REFUSED_HERE[(method, route.path)], (where, response.text)
            assert before is None or changed_rows(before, world.snapshot()) == [], f"{where}: the database changed"
        elif admitted:
            assert response.status_code < 300, (where, response.status_code, response.text)
            if caller is not None and (method, route.path) in ENDS_SESSIONS:
                world.relogin(caller)
        else:
            expected = 401 if caller is None else 403
            assert response.status_code == expected, (where, response.status_code, response.text)
            if caller is not None:
                assert response.json()["error"]["code"] == "insufficient_role", (where, response.text)
            if before is not None:
                assert changed_rows(before, world.snapshot()) == [], f"{where}: refused but the database changed"
        checked.append(where)


@pytest.mark.timeout(900)
def test_role_route_field_matrix(world: World) -> None:
    checked: list[str] = []
    for method, route in _routes():
        _check_route(world, method, route, checked)
    assert len(checked) > 400


@pytest.mark.timeout(600)
def test_every_change_through_the_admin_api_is_audited(world: World) -> None:
    """Each mutating route, called by the least role it admits, leaves an audit event with the request's id."""
    audited = 0
    for method, route in _routes():
        if method not in MUTATING or (method, route.path) in NOT_AUDITED:
            continue
        policy = declared_policy(route.dependant.dependencies)
        caller = None if policy == PUBLIC else next(c for c in world.callers.values() if c.role == policy)
        path = world.path(method, route.path, caller)
        request_id = f"audit-check-{audited}"
        response = world.api.call(
            method,
            path,
            caller.token if caller else None,
            json=EXAMPLES[(method, route.path)](world, caller),
            headers={"x-request-id": request_id},
        )
        assert response.status_code < 300, (method, path, response.text)
        if caller is not None and (method, route.path) in ENDS_SESSIONS:
            world.relogin(caller)

        async def events(rid: str = request_id) -> list[str]:
            async with world.server.services.db.session() as session:
                rows = await session.execute(select(AuditEvent.action).where(AuditEvent.request_id == rid))
                return list(rows.scalars())

        assert world.server.call(events()) != [], f"{method} {route.path} changed something without an audit event"
        audited += 1
    assert audited >= 25


def test_the_world_has_no_other_workspaces_keys_for_its_callers(world: World, tmp_path: Path) -> None:
    """The matrix's premise: the non-admin callers hold only the home workspace and its models."""
    for caller in world.callers.values():
        me = world.api.get("/me", caller.token).json()
        if caller.role != "admin":
            assert me["workspace_id"] == world.home and me["allowed_models"] == HOME_MODELS
            assert me["priority"] == "standard"
