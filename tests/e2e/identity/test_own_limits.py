"""``GET /admin/v1/me/limits``: every caller reads what limits them — their key, their user, their workspace — with
this period's spend and what is left of each budget, and nothing of anyone else's."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings, make_user
from tests.support.server import SluiceServer

PRICE = {"input": 1000.0, "output": 1000.0}  # a thousand per million tokens: every call costs something


def test_a_member_sees_their_own_budgets_and_what_is_left(tmp_path: Path) -> None:
    models = [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]}]
    with SluiceServer(identity_settings(tmp_path, models=models, currency="EUR")) as server:
        api = Api(server.url)
        admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        home = api.post("/workspaces", admin, json={"name": "home"}).json()["id"]
        member = make_user(api, admin, "mia@example.com", home, "member")
        viewer = make_user(api, admin, "vic@example.com", home, "viewer")
        mia = api.get("/me", member).json()["user_id"]
        assert api.call("PUT", f"/limits/user/{mia}", admin, json={"budget": 5, "rpm": 30}).status_code == 200
        assert (
            api.call("PUT", f"/limits/workspace/{home}", admin, json={"budget": 50, "period": "day"}).status_code == 200
        )

        body = {"model": "priced", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
        called = httpx.post(
            f"{server.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {member}"}, timeout=30
        )
        assert called.status_code == 200, called.text

        deadline = time.monotonic() + 30
        while True:
            standing = api.get("/me/limits", member).json()
            scopes = {s["scope"]: s for s in standing["scopes"]}
            if scopes["user"]["spent"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert standing["currency"] == "EUR"
        assert set(scopes) == {"user", "workspace"}  # signed in with a password: no key scope
        user = scopes["user"]
        assert user["id"] == mia and user["name"] == "mia@example.com" and user["source"] == "stored"
        assert user["budget"] == 5 and user["rpm"] == 30 and user["period"] == "month"
        assert 0 < user["spent"] < 5 and abs(user["remaining"] - (5 - user["spent"])) < 1e-9
        workspace = scopes["workspace"]
        assert workspace["name"] == "home" and workspace["budget"] == 50 and workspace["period"] == "day"
        assert workspace["spent"] == user["spent"]  # the workspace's only spender so far

        seen = api.get("/me/limits", viewer).json()["scopes"]
        assert {s["scope"]: s["name"] for s in seen} == {"user": "vic@example.com", "workspace": "home"}
        assert next(s for s in seen if s["scope"] == "user")["spent"] == 0
        assert api.get("/me/limits", None).status_code == 401
        api.close()
