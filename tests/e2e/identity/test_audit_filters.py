"""GET /admin/v1/audit: filters by time range, action, actor, target and workspace, pages by id, and keeps an owner
inside their own workspace whatever they ask for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_user
from tests.support.server import MASTER_KEY, SluiceServer


def test_audit_filters_combine_and_page_newest_first(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    other = api.post("/workspaces", admin, json={"name": "audit-b"}).json()["id"]
    key = api.post("/keys", MASTER_KEY, json={"name": "k", "workspace_id": "default"}).json()
    for n in range(4):
        assert api.call("PATCH", f"/keys/{key['id']}", MASTER_KEY, json={"name": f"k{n}"}).status_code == 200
    api.post("/invites", admin, json={"workspace_id": other, "role": "member"})

    by_target = api.get("/audit", admin, params={"target_type": "key", "target_id": key["id"]}).json()
    assert [e["action"] for e in by_target] == ["key.update"] * 4 + ["key.create"]
    assert [e["id"] for e in by_target] == sorted((e["id"] for e in by_target), reverse=True)
    assert {e["actor"] for e in by_target} == {"master"}
    assert api.get("/audit", admin, params={"target_id": key["id"], "actor": "cli"}).json() == []
    assert [
        e["action"] for e in api.get("/audit", admin, params={"target_id": key["id"], "action": "key.create"}).json()
    ] == ["key.create"]

    first = api.get("/audit", admin, params={"target_id": key["id"], "limit": 2}).json()
    second = api.get("/audit", admin, params={"target_id": key["id"], "limit": 2, "before_id": first[-1]["id"]}).json()
    third = api.get("/audit", admin, params={"target_id": key["id"], "limit": 2, "before_id": second[-1]["id"]}).json()
    assert [e["id"] for e in first + second + third] == [e["id"] for e in by_target]

    in_other = api.get("/audit", admin, params={"workspace_id": other}).json()
    assert [e["action"] for e in in_other] == ["invite.create", "workspace.create"]
    assert {e["workspace_id"] for e in in_other} == {other}

    now = datetime.now(UTC)
    later = api.get("/audit", admin, params={"since": (now + timedelta(minutes=5)).isoformat()}).json()
    earlier = api.get("/audit", admin, params={"until": (now - timedelta(days=1)).isoformat()}).json()
    recent = api.get(
        "/audit",
        admin,
        params={"since": (now - timedelta(minutes=5)).isoformat(), "until": (now + timedelta(minutes=5)).isoformat()},
    ).json()
    assert later == [] and earlier == [] and len(recent) >= len(by_target) + 2


def test_audit_refuses_naive_or_inverted_ranges_and_bad_paging_naming_the_field(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    naive = api.get("/audit", admin, params={"until": "2026-01-01T00:00:00"})
    assert naive.status_code == 400 and naive.json()["error"]["param"] == "until"
    inverted = api.get("/audit", admin, params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert inverted.status_code == 400 and inverted.json()["error"]["param"] == "since"
    for bad in ({"before_id": "0"}, {"before_id": "x"}, {"limit": "0"}, {"actor": "a" * 200}):
        response = api.get("/audit", admin, params=bad)
        assert response.status_code in (400, 422), (bad, response.text)
        assert "Traceback" not in response.text


def test_an_owner_sees_only_their_workspace_whatever_workspace_they_name(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    ws_a = api.post("/workspaces", admin, json={"name": "audit-a"}).json()["id"]
    owner = make_user(api, admin, "owner-a@example.com", ws_a, role="owner")
    api.post("/invites", owner, json={"role": "member", "note": "mine"})
    api.post("/invites", admin, json={"role": "member"})  # in the default workspace: not the owner's to see
    own = api.get("/audit", owner).json()
    assert own and {e["workspace_id"] for e in own} == {ws_a}
    assert api.get("/audit", owner, params={"workspace_id": "default"}).json() == []
    assert api.get("/audit", owner, params={"workspace_id": ws_a}).json() == own
