"""A populated gateway for the tests generated from the admin router: callers of every role, and for every route a
valid example request (path values and a body) that the route's own role may make successfully.

Because every example succeeds for the roles the route admits, a refusal seen in the generated tests is caused by
what the test added (a privileged field, a role too low), not by a malformed request. A mutating route without an
example here fails those tests, so new routes must be described.

Path values that a request uses up (a key revoked, an invitation, an IP rule, a membership removed, a stored model
deleted) are made fresh for each request.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from sluice.store.models import Base
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_user
from tests.support.server import SluiceServer

ROLES = ("viewer", "member", "owner", "admin")
HOME_MODELS = ["mock-1"]  # what every non-admin caller may use: a grant beyond it is a privilege

# Tables whose rows the generated tests compare before and after a request, and those they do not (each table is
# in exactly one set, so a new table must be placed).
COMPARED = {
    "gateway_settings",
    "limit_policies",
    "model_prices",
    "users",
    "workspaces",
    "api_keys",
    "memberships",
    "password_resets",
    "registration_tokens",
    "ip_rules",
    "conversations",
    "chat_messages",
}
NOT_COMPARED = {
    "audit_events": "the record of changes, checked on its own",
    "refresh_tokens": "sessions: every login adds one",
    "usage_records": "written by calls, not by the admin API",
    "usage_daily": "written by calls, not by the admin API",
    "stored_responses": "written by /v1/responses calls, not by the admin API",
    "sso_identities": "written by single sign-on, not by the admin API",
    "sso_logins": "sign-ins in flight at an identity provider",
}
VOLATILE_COLUMNS = {("api_keys", "last_used_at")}  # written in the background every 15 s


@dataclass
class Caller:
    role: str
    email: str
    password: str
    token: str
    user_id: str


Body = dict[str, Any] | None
Example = Callable[["World", Caller | None], Body]


class World:
    """Two workspaces (``home`` with models limited to :data:`HOME_MODELS`, and ``other``), a caller per role in
    ``home`` (the admin is gateway-wide), a ``target`` member of ``home`` to act on, and an ``outsider`` in
    ``other``."""

    def __init__(self, server: SluiceServer, api: Api) -> None:
        self.server = server
        self.api = api
        self._names = itertools.count()
        self._records: dict[str, str] = {}
        admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        self.admin_token = admin["access_token"]
        self.home = self._ok(
            api.post("/workspaces", self.admin_token, json={"name": "home", "allowed_models": HOME_MODELS})
        )["id"]
        self.other = self._ok(api.post("/workspaces", self.admin_token, json={"name": "other"}))["id"]
        self.callers: dict[str, Caller] = {
            "admin": Caller("admin", ADMIN_EMAIL, ADMIN_PASSWORD, self.admin_token, admin["user_id"])
        }
        for role in ("viewer", "member", "owner"):
            self.callers[role] = self._user(f"{role}@example.com", role, self.home)
        self.target = self._user("target@example.com", "member", self.home)
        self.outsider = self._user("outsider@example.com", "member", self.other)

    # --- helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    def _ok(response: Any) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def _user(self, email: str, role: str, workspace: str) -> Caller:
        token = make_user(self.api, self.admin_token, email, workspace, role)
        user_id = self.api.get("/me", token).json()["user_id"]
        return Caller(role, email, f"pw-{email}-123", token, user_id)

    def name(self, stem: str) -> str:
        return f"{stem}-{next(self._names)}"

    def relogin(self, caller: Caller) -> None:
        """After a request that ends the caller's sessions (logout, password change)."""
        caller.token = self.api.login(caller.email, caller.password, workspace_id=self.home)["access_token"]
        if caller.role == "admin":
            self.admin_token = caller.token

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._ok(self.api.call(method, path, self.admin_token, **kwargs))

    # --- path values -----------------------------------------------------------------------------------------

    def key_of(self, caller: Caller | None) -> str:
        if caller is None or caller.role == "viewer":  # viewers cannot create keys: an admin makes one for them
            owner = self.callers["viewer"]
            body = {"name": self.name("k"), "user_id": owner.user_id, "workspace_id": self.home, "role": "viewer"}
            return str(self.admin("POST", "/keys", json={**body, "allowed_models": HOME_MODELS})["id"])
        created = self._ok(
            self.api.post("/keys", caller.token, json={"name": self.name("k"), "allowed_models": HOME_MODELS})
        )
        return str(created["id"])

    def target_member(self) -> str:
        self.admin("PUT", f"/workspaces/{self.home}/members/{self.target.user_id}", json={"role": "member"})
        return self.target.user_id

    def invite(self) -> str:
        return str(self.admin("POST", "/invites", json={"workspace_id": self.home})["id"])

    def rule(self) -> str:
        rule = {"cidr": "127.0.0.0/8", "scope": "workspace", "workspace_id": self.home}
        return str(self.admin("POST", "/ip-rules", json=rule)["id"])

    def limits_scope(self, method: str) -> str:
        if method == "DELETE":  # something to delete
            self.admin("PUT", f"/limits/workspace/{self.home}", json={"rpm": 100_000})
        return self.home

    def role_defaults(self, method: str) -> str:
        if method == "DELETE":  # something to delete
            self.admin("PUT", "/limits/roles/viewer", json={"rpm": 100_000})
        return "viewer"

    def model(self, method: str) -> str:
        if method == "GET":
            return "mock-1"
        model = self.name("matrix-model")
        if method == "DELETE":
            self.admin("PUT", f"/models/{model}", json={"definition": {"deployments": [{"provider": "mock"}]}})
        return model

    def provider(self, method: str) -> str:
        if method == "POST":
            return "mock"  # the built-in one, to test
        provider = self.name("matrix-provider")
        if method == "DELETE":
            self.admin("PUT", f"/providers/{provider}", json={"definition": {"kind": "mock"}})
        return provider

    def record_of(self, caller: Caller | None) -> str:
        """The usage record of a call the caller made (anonymous: the viewer's), once it has been shipped."""
        holder = caller or self.callers["viewer"]
        if holder.email in self._records:
            return self._records[holder.email]
        body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        headers = {"authorization": f"Bearer {holder.token}"}
        called = self.api.client.post(self.server.url + "/v1/chat/completions", json=body, headers=headers)
        assert called.status_code == 200, called.text
        request_id = called.headers["x-request-id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self.admin("GET", "/requests", params={"request_id": request_id})["data"]
            if found:
                self._records[holder.email] = str(found[0]["id"])
                return self._records[holder.email]
            time.sleep(0.2)
        raise AssertionError(f"the usage record of {request_id} was not shipped within 30 s")

    def path(self, method: str, path: str, caller: Caller | None) -> str:
        """The route's path with values the caller's role may act on."""
        values: dict[str, Callable[[], str]] = {
            "key_id": lambda: self.key_of(caller),
            "user_id": self.target_member,
            "workspace_id": lambda: self.home,
            "invite_id": self.invite,
            "rule_id": self.rule,
            "scope": lambda: "workspace",
            "scope_id": lambda: self.limits_scope(method),
            "role": lambda: self.role_defaults(method),
            "record_id": lambda: self.record_of(caller),
            "provider": lambda: "not-configured",
            "name": lambda: self.model(method) if path.startswith("/models") else self.provider(method),
        }

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise AssertionError(f"no example value for {{{name}}} in {method} {path}: describe it here")
            return values[name]()

        return re.sub(r"\{(\w+)\}", value, path)

    # --- the database, for "nothing changed" -----------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every compared table's rows, each as (its JSON) → (its columns)."""

        async def read() -> dict[str, dict[str, dict[str, Any]]]:
            tables = {t.name: t for t in Base.metadata.sorted_tables}
            assert set(tables) == COMPARED | set(NOT_COMPARED), set(tables) ^ (COMPARED | set(NOT_COMPARED))
            rows: dict[str, dict[str, dict[str, Any]]] = {}
            async with self.server.services.db.session() as session:
                for name in sorted(COMPARED):
                    found: dict[str, dict[str, Any]] = {}
                    for row in await session.execute(select(tables[name])):
                        columns = {k: v for k, v in row._mapping.items() if (name, k) not in VOLATILE_COLUMNS}
                        found[json.dumps(columns, default=str, sort_keys=True)] = columns
                    rows[name] = found
            return rows

        result: dict[str, dict[str, dict[str, Any]]] = self.server.call(read())
        return result


def changed_rows(
    before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    """Rows that are new or different after a request (a changed row appears with its new values)."""
    return [(table, row) for table, rows in after.items() for text, row in rows.items() if text not in before[table]]


def _unique_email(world: World, _caller: Caller | None) -> Body:
    return {"email": f"{world.name('newcomer')}@example.com", "password": "newcomer-password"}


def _login(world: World, _caller: Caller | None) -> Body:
    member = world.callers["member"]
    return {"email": member.email, "password": member.password}


def _refresh(world: World, _caller: Caller | None) -> Body:
    return {"refresh_token": world.api.login(world.target.email, world.target.password)["refresh_token"]}


def _reset(world: World, _caller: Caller | None) -> Body:
    token = world.admin("POST", f"/users/{world.target.user_id}/password-reset")["token"]
    return {"token": token, "new_password": world.target.password}  # the same password: the target can still sign in


def _own_password(_world: World, caller: Caller | None) -> Body:
    if caller is None:  # refused before the body matters
        return {"current_password": "anything", "new_password": "anything-else"}
    return {"current_password": caller.password, "new_password": caller.password}


def _workspace_rule(world: World, caller: Caller | None) -> Body:
    rule = {"cidr": "127.0.0.0/8", "scope": "workspace"}
    if caller is not None and caller.role == "admin":  # gateway-wide: an admin names the workspace
        rule["workspace_id"] = world.home
    return rule


# A valid request body for each route that takes one (routes without a body map to None).
EXAMPLES: dict[tuple[str, str], Example] = {
    ("POST", "/auth/register"): _unique_email,
    ("POST", "/auth/login"): _login,
    ("POST", "/auth/refresh"): _refresh,
    ("POST", "/auth/reset-password"): _reset,
    ("POST", "/auth/logout"): lambda w, c: None,
    ("POST", "/auth/sso/logout"): lambda w, c: None,
    ("POST", "/auth/sso/ticket"): lambda w, c: {"ticket": "sl-sso-not-a-ticket"},
    ("POST", "/auth/password"): _own_password,
    ("POST", "/users"): lambda w, c: {"email": f"{w.name('made')}@example.com", "workspace_id": w.home},
    ("POST", "/users/{user_id}/approve"): lambda w, c: None,
    ("POST", "/users/{user_id}/disable"): lambda w, c: None,
    ("POST", "/users/{user_id}/enable"): lambda w, c: None,
    ("POST", "/users/{user_id}/password-reset"): lambda w, c: None,
    ("PATCH", "/users/{user_id}"): lambda w, c: {"priority": "batch"},
    ("POST", "/workspaces"): lambda w, c: {"name": w.name("ws")},
    ("PATCH", "/workspaces/{workspace_id}"): lambda w, c: {"name": "home"},
    ("PUT", "/workspaces/{workspace_id}/members/{user_id}"): lambda w, c: {"role": "viewer"},
    ("DELETE", "/workspaces/{workspace_id}/members/{user_id}"): lambda w, c: None,
    ("POST", "/keys"): lambda w, c: {"name": w.name("key"), "allowed_models": HOME_MODELS},
    ("PATCH", "/keys/{key_id}"): lambda w, c: {"name": w.name("renamed")},
    ("DELETE", "/keys/{key_id}"): lambda w, c: None,
    ("POST", "/invites"): lambda w, c: {"role": "viewer"},
    ("DELETE", "/invites/{invite_id}"): lambda w, c: None,
    ("POST", "/ip-rules"): _workspace_rule,
    ("DELETE", "/ip-rules/{rule_id}"): lambda w, c: None,
    ("PUT", "/settings"): lambda w, c: {"registration": "approval"},
    ("PUT", "/limits/{scope}/{scope_id}"): lambda w, c: {"rpm": 100_000},
    ("DELETE", "/limits/{scope}/{scope_id}"): lambda w, c: None,
    ("PUT", "/limits/roles/{role}"): lambda w, c: {"rpm": 100_000},
    ("DELETE", "/limits/roles/{role}"): lambda w, c: None,
    ("PUT", "/models/{name}"): lambda w, c: {"definition": {"deployments": [{"provider": "mock"}]}},
    ("DELETE", "/models/{name}"): lambda w, c: None,
    ("PUT", "/providers/{name}"): lambda w, c: {"definition": {"kind": "mock"}},
    ("DELETE", "/providers/{name}"): lambda w, c: None,
    ("POST", "/providers/{name}/test"): lambda w, c: None,
    ("POST", "/setup"): lambda w, c: {"code": "NOT-THE-CODE", "email": "late@example.com", "password": "late-Pass-01"},
}

# Routes whose valid example is refused in this world, and how: the first-admin set-up works only while no admin
# exists (tests/e2e/identity/test_first_run.py covers it succeeding).
# Single sign-on has no provider here (tests/e2e/sso covers it): no sign-in to start, finish or redeem.
REFUSED_HERE = {
    ("POST", "/setup"): 403,
    ("POST", "/auth/sso/ticket"): 401,
    ("GET", "/auth/sso/{provider}/start"): 404,
    ("GET", "/auth/sso/{provider}/callback"): 401,
}

# Requests that end the caller's own sessions: the caller signs in again afterwards.
ENDS_SESSIONS = {("POST", "/auth/logout"), ("POST", "/auth/sso/logout"), ("POST", "/auth/password")}
