"""The request log API (``/admin/v1/requests``): recent calls with names, filters, pages and one call in detail,
each caller confined to what its role may see, and never the prompt or the answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings, make_user
from tests.support.server import SluiceServer

PROMPT = "a question nobody else should read"


class Scene:
    def __init__(self, server: SluiceServer, api: Api) -> None:
        self.server = server
        self.api = api
        self.admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        self.home = api.post("/workspaces", self.admin, json={"name": "home"}).json()["id"]
        self.away = api.post("/workspaces", self.admin, json={"name": "away"}).json()["id"]
        self.owner = make_user(api, self.admin, "owner@example.com", self.home, "owner")
        self.member = make_user(api, self.admin, "member@example.com", self.home, "member")
        self.other = make_user(api, self.admin, "other@example.com", self.home, "member")
        self.stranger = make_user(api, self.admin, "stranger@example.com", self.away, "member")
        key = api.post("/keys", self.member, json={"name": "member laptop"}).json()
        self.key_id, self.key = key["id"], key["key"]

    def call(self, token: str, model: str = "mock-1", request_id: str | None = None) -> str:
        headers = {"authorization": f"Bearer {token}"}
        if request_id:
            headers["x-request-id"] = request_id
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5}
        response = httpx.post(f"{self.server.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        return str(response.headers["x-request-id"])

    def log(self, token: str, expect: int = 200, **params: Any) -> Any:
        response = self.api.get("/requests", token, params=params)
        assert response.status_code == expect, response.text
        return response.json()

    def shipped(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self.log(self.admin, request_id=request_id)["data"]
            if found:
                return dict(found[0])
            time.sleep(0.1)
        raise AssertionError(f"{request_id} was not shipped")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    settings = identity_settings(Path(tmp_path_factory.mktemp("log")))
    with SluiceServer(settings) as server:
        api = Api(server.url)
        yield Scene(server, api)
        api.close()


def test_each_role_sees_its_own_scope_with_names_and_never_the_prompt(scene: Scene) -> None:
    mine = scene.call(scene.key, request_id="log-member-key")
    theirs = scene.call(scene.other, request_id="log-other")
    far = scene.call(scene.stranger, request_id="log-stranger")
    for request_id in (mine, theirs, far):
        scene.shipped(request_id)

    entry = scene.log(scene.member, request_id=mine)["data"][0]
    assert entry["key_name"] == "member laptop" and entry["key_prefix"]
    assert entry["user_email"] == "member@example.com" and entry["workspace_name"] == "home"
    assert entry["model"] == "mock-1" and entry["status"] == 200 and entry["completion_tokens"] > 0
    assert {"latency_ms", "ttft_ms", "queue_wait_ms", "cost", "deployment"} <= set(entry)

    member_sees = {e["request_id"] for e in scene.log(scene.member, limit=200)["data"]}
    assert mine in member_sees and theirs not in member_sees and far not in member_sees
    owner_sees = {e["request_id"] for e in scene.log(scene.owner, limit=200)["data"]}
    assert {mine, theirs} <= owner_sees and far not in owner_sees
    assert scene.log(scene.owner, workspace_id=scene.away)["data"] == []  # another workspace: nothing
    admin_sees = {e["request_id"] for e in scene.log(scene.admin, limit=200)["data"]}
    assert {mine, theirs, far} <= admin_sees

    response = scene.api.get("/requests", scene.admin, params={"limit": 200})
    assert PROMPT not in response.text  # the gateway never stores what was asked or answered


def test_one_call_in_detail_is_visible_only_within_scope(scene: Scene) -> None:
    record = scene.shipped(scene.call(scene.other, request_id="log-detail"))
    assert scene.api.get(f"/requests/{record['id']}", scene.other).json()["request_id"] == "log-detail"
    assert scene.api.get(f"/requests/{record['id']}", scene.owner).status_code == 200
    for outsider in (scene.member, scene.stranger):
        refused = scene.api.get(f"/requests/{record['id']}", outsider)
        assert refused.status_code == 404 and refused.json()["error"]["message"] == "No such request."
    assert scene.api.get("/requests/no-such-record", scene.admin).status_code == 404


def test_filters_and_pages(scene: Scene) -> None:
    ids = [scene.call(scene.other, request_id=f"log-page-{n}") for n in range(5)]
    missing = scene.call(scene.other, model="no-such-model", request_id="log-missing-model")
    for request_id in [*ids, missing]:
        scene.shipped(request_id)
    user_id = scene.api.get("/me", scene.other).json()["user_id"]

    failed = scene.log(scene.admin, user_id=user_id, outcome="error", limit=200)["data"]
    assert [e["request_id"] for e in failed] == ["log-missing-model"]
    assert failed[0]["status"] == 404
    assert all(e["status"] < 400 for e in scene.log(scene.admin, user_id=user_id, outcome="ok")["data"])
    assert scene.log(scene.admin, model="mock-1", request_id="log-missing-model")["data"] == []

    seen: list[str] = []
    before = None
    for _ in range(10):
        params: dict[str, Any] = {"user_id": user_id, "limit": 2}
        if before:
            params["before"] = before
        page = scene.log(scene.admin, **params)
        seen += [e["request_id"] for e in page["data"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen[:6] == ["log-missing-model", *reversed(ids)]  # newest first, no record twice or skipped
    assert len(seen) == len(set(seen))

    bad = scene.api.get("/requests", scene.admin, params={"before": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "before"
    assert scene.api.get("/requests", None).status_code == 401
