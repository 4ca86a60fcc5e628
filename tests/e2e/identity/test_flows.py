"""The identity flows end to end over HTTP: register → approve/invite → login → own key → call → refresh → logout."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.support.server import SluiceServer


def chat(server: SluiceServer, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_register_approve_login_key_call_refresh_logout(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]

    registered = api.post("/auth/register", json={"email": "Ann@Example.com", "password": "ann-password-1"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["pending"] is True
    user_id = registered.json()["user"]["id"]

    pending = api.post("/auth/login", json={"email": "ann@example.com", "password": "ann-password-1"})
    assert pending.status_code == 403 and pending.json()["error"]["code"] == "pending"

    approved = api.post(f"/users/{user_id}/approve", admin)
    assert approved.status_code == 200 and approved.json()["status"] == "active"

    tokens = api.login("ann@example.com", "ann-password-1")
    access = tokens["access_token"]
    me = api.get("/me", access).json()
    assert me["kind"] == "user" and me["role"] == "member" and me["workspace_id"] == "default"

    created = api.post("/keys", access, json={"name": "ann laptop"})
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    assert secret.startswith("sk-sl-") and created.json()["user_id"] == user_id

    assert chat(server, secret).status_code == 200
    assert chat(server, access).status_code == 200
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=access, max_retries=0)
    assert client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "x"}]).choices

    refreshed = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert chat(server, new["access_token"]).status_code == 200
    replay = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401  # a rotated refresh token is good once; a replay ends the session
    assert chat(server, new["access_token"]).status_code == 401

    fresh = api.login("ann@example.com", "ann-password-1")
    assert api.post("/auth/logout", fresh["access_token"]).status_code == 204
    assert chat(server, fresh["access_token"]).status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code == 401

    key_id = created.json()["id"]
    assert api.call("DELETE", f"/keys/{key_id}", admin).status_code == 200
    assert chat(server, secret).status_code == 401

    second = api.post("/keys", api.login("ann@example.com", "ann-password-1")["access_token"], json={"name": "k2"})
    other_secret = second.json()["key"]
    assert chat(server, other_secret).status_code == 200
    assert api.post(f"/users/{user_id}/disable", admin).status_code == 200
    assert chat(server, other_secret).status_code == 401  # a disabled user's keys stop with the account
    assert api.post("/auth/login", json={"email": "ann@example.com", "password": "ann-password-1"}).status_code == 401


def test_invite_flow_binds_workspace_and_role(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    ws = api.post("/workspaces", admin, json={"name": "lab"}).json()
    invite = api.post("/invites", admin, json={"workspace_id": ws["id"], "role": "owner"})
    assert invite.status_code == 201
    token = invite.json()["token"]

    listed = api.get("/invites", admin)
    assert listed.status_code == 200 and "token" not in listed.json()[0]

    done = api.post(
        "/auth/register", json={"email": "bob@example.com", "password": "bob-password-1", "invite_token": token}
    )
    assert done.status_code == 201 and done.json()["pending"] is False
    again = api.post(
        "/auth/register", json={"email": "eve@example.com", "password": "eve-password-1", "invite_token": token}
    )
    assert again.status_code == 403

    bob = api.login("bob@example.com", "bob-password-1")
    assert bob["workspace_id"] == ws["id"]
    assert api.get("/me", bob["access_token"]).json()["role"] == "owner"


def test_change_password_ends_other_sessions(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    changed = api.post(
        "/auth/password",
        admin["access_token"],
        json={"current_password": ADMIN_PASSWORD, "new_password": "a-new-admin-password"},
    )
    assert changed.status_code == 204
    assert api.post("/auth/refresh", json={"refresh_token": admin["refresh_token"]}).status_code == 401
    assert api.login(ADMIN_EMAIL, "a-new-admin-password")["access_token"]


def _register(api: Api, email: str, invite: str | None = None) -> httpx.Response:
    body = {"email": email, "password": "x-password-1"}
    if invite is not None:
        body["invite_token"] = invite
    return api.post("/auth/register", json=body)


@pytest.mark.parametrize("mode", ["closed", "invite"])
def test_registration_modes_refuse_without_invite(server: SluiceServer, api: Api, mode: str) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    changed = api.call("PUT", "/settings", admin, json={"registration": mode})
    assert changed.status_code == 200 and changed.json()["registration"] == mode
    refused = _register(api, "x@example.com")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == ("registration_closed" if mode == "closed" else "invite_required")
    audit = api.get("/audit", admin, params={"action": "settings.update"}).json()
    assert audit[0]["before"] == {"registration": "approval"} and audit[0]["after"] == {"registration": mode}


def test_closed_registration_refuses_invitations_too(server: SluiceServer, api: Api) -> None:
    """closed means no self-registration at all; the token is not used up and works once the mode allows it."""
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    token = api.post("/invites", admin, json={"role": "member"}).json()["token"]
    assert api.call("PUT", "/settings", admin, json={"registration": "closed"}).status_code == 200
    refused = _register(api, "invited@example.com", token)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "registration_closed"
    assert api.get("/invites", admin).json()[0]["used_at"] is None
    assert all(u["email"] != "invited@example.com" for u in api.get("/users", admin).json())
    assert api.call("PUT", "/settings", admin, json={"registration": "invite"}).status_code == 200
    assert _register(api, "invited@example.com", token).status_code == 201


def test_admins_create_accounts_while_registration_is_closed(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    api.call("PUT", "/settings", admin, json={"registration": "closed"})
    lab = api.post("/workspaces", admin, json={"name": "lab"}).json()["id"]

    made = api.post("/users", admin, json={"email": "Made@Example.com", "workspace_id": lab, "role": "owner"})
    assert made.status_code == 201, made.text
    link = made.json()["password_reset"]
    assert made.json()["user"]["status"] == "active" and link["ui_path"] == f"/ui/reset?token={link['token']}"
    assert (
        api.post("/auth/reset-password", json={"token": link["token"], "new_password": "made-password-1"}).status_code
        == 204
    )
    session = api.login("made@example.com", "made-password-1")
    assert session["workspace_id"] == lab and api.get("/me", session["access_token"]).json()["role"] == "owner"

    direct = api.post("/users", admin, json={"email": "direct@example.com", "password": "direct-password-1"})
    assert direct.status_code == 201 and direct.json()["password_reset"] is None
    assert api.login("direct@example.com", "direct-password-1")["workspace_id"] == "default"
    assert api.post("/users", admin, json={"email": "direct@example.com"}).status_code == 409
    assert api.post("/users", admin, json={"email": "x@example.com", "workspace_id": "nowhere"}).status_code == 404
    assert api.post("/users", admin, json={"email": "y@example.com", "password": "short"}).status_code == 400
    owner = session["access_token"]
    assert api.post("/users", owner, json={"email": "z@example.com", "workspace_id": lab}).status_code == 403
    created = api.get("/audit", admin, params={"action": "user.create"}).json()
    assert [e["after"]["email"] for e in created] == ["direct@example.com", "made@example.com"]
    assert all("password" not in str(e) for e in created)


def test_login_failures_are_throttled_and_alike(server: SluiceServer, api: Api) -> None:
    unknown = api.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever-1"})
    wrong = api.post("/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong-password"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    statuses = [
        api.post("/auth/login", json={"email": ADMIN_EMAIL, "password": f"wrong-{i}"}).status_code for i in range(6)
    ]
    assert statuses[-1] == 429
    throttled = api.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    time.sleep(0)  # the window is minutes long: the right password does not bypass it either


def test_queue_snapshot_by_role(tmp_path: Path) -> None:
    from tests.e2e.identity.conftest import identity_settings, make_user

    capped = {"models": [{"name": "capped", "deployments": [{"provider": "mock", "capacity": 2}]}]}
    with SluiceServer(identity_settings(tmp_path, **capped)) as server:
        api = Api(server.url)
        admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        headers = {"authorization": f"Bearer {admin}"}
        body = {"model": "capped", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{server.url}/v1/chat/completions", headers=headers, json=body).status_code == 200
        snapshot = api.get("/queues", admin)
        assert snapshot.status_code == 200
        state = snapshot.json()
        assert {c["name"] for c in state["classes"]} >= {"interactive", "standard", "batch"}
        assert "capped" in json.dumps(state["deployments"])
        owner = make_user(api, admin, "queue-owner@example.com", role="owner")
        assert api.get("/queues", owner).status_code == 200
        member = make_user(api, admin, "queue-member@example.com", role="member")
        assert api.get("/queues", member).status_code == 403
        api.close()


def test_admin_password_reset_link_is_single_use_and_ends_sessions(server: SluiceServer, api: Api) -> None:
    from tests.e2e.identity.conftest import make_user

    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    session = make_user(api, admin, "forgetful@example.com")
    user_id = api.get("/me", session).json()["user_id"]
    assert api.post(f"/users/{user_id}/password-reset", session).status_code == 403  # admins only
    created = api.post(f"/users/{user_id}/password-reset", admin)
    assert created.status_code == 201
    token = created.json()["token"]
    assert created.json()["ui_path"] == f"/ui/reset?token={token}"
    short = api.post("/auth/reset-password", json={"token": token, "new_password": "short"})
    assert short.status_code == 400  # a bad password does not use the link up
    assert api.post("/auth/reset-password", json={"token": token, "new_password": "brand-new-pass"}).status_code == 204
    assert api.post("/auth/reset-password", json={"token": token, "new_password": "again-new-pass"}).status_code == 403
    assert chat(server, session).status_code == 401  # the old session ended
    assert api.login("forgetful@example.com", "brand-new-pass")["access_token"]
    assert token not in api.get("/audit", admin).text


def test_keys_are_edited_within_the_owners_grants(server: SluiceServer, api: Api) -> None:
    from tests.e2e.identity.conftest import make_user

    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    member = make_user(api, admin, "editor@example.com")
    key = api.post("/keys", member, json={"name": "k"}).json()
    assert chat(server, key["key"]).status_code == 200
    renamed = api.call("PATCH", f"/keys/{key['id']}", member, json={"name": "renamed", "allowed_models": ["nope"]})
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    assert chat(server, key["key"]).status_code == 404  # the new model list applies at once
    assert api.call("PATCH", f"/keys/{key['id']}", member, json={"priority": "interactive"}).status_code == 403
    assert api.call("PATCH", f"/keys/{key['id']}", member, json={"role": "admin"}).status_code == 422
    other = make_user(api, admin, "other-editor@example.com")
    assert api.call("PATCH", f"/keys/{key['id']}", other, json={"name": "mine"}).status_code == 404
    assert api.call("PATCH", f"/keys/{key['id']}", member, json={"allowed_models": None}).status_code == 200
    assert chat(server, key["key"]).status_code == 200
