"""`sluice admin …`, `sluice invites …` and `sluice keys …` as operators run them, then used over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.identity.conftest import JWT_SECRET, Api
from tests.e2e.test_cli import run
from tests.support.server import SluiceServer, make_settings


def test_identity_commands_then_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    base = ["--data-dir", str(data)]
    created = run(["admin", "create", "--email", "Root@Example.com", "--password", "root-password-1", *base])
    assert created.returncode == 0, created.stderr
    assert run(["admin", "registration", "invite", *base]).returncode == 0
    invite = run(["invites", "create", "--role", "viewer", "--note", "for dana", *base])
    assert invite.returncode == 0, invite.stderr
    token = re.search(r"sl-inv-[A-Za-z0-9_-]{20,}", invite.stdout)
    assert token is not None
    listed = run(["invites", "list", *base])
    assert "open" in listed.stdout and token.group(0) not in listed.stdout
    key = run(["keys", "create", "--name", "root key", "--user", "root@example.com", "--role", "admin", *base])
    assert key.returncode == 0, key.stderr
    secret = re.search(r"sk-sl-[A-Za-z0-9_-]{40,}", key.stdout)
    assert secret is not None
    assert run(["keys", "create", "--name", "x", "--user", "nobody@example.com", *base]).returncode == 1
    assert run(["keys", "create", "--name", "x", "--priority", "urgent", *base]).returncode == 2

    settings = make_settings(data, {"auth": {"jwt_secret": JWT_SECRET}})
    with SluiceServer(settings) as server:
        api = Api(server.url)
        root = api.login("root@example.com", "root-password-1")["access_token"]
        assert api.get("/me", root).json()["role"] == "admin"
        assert api.get("/me", secret.group(0)).json()["role"] == "admin"
        registered = api.post(
            "/auth/register",
            json={"email": "dana@example.com", "password": "dana-password", "invite_token": token.group(0)},
        )
        assert registered.status_code == 201, registered.text
        assert (
            api.post("/auth/register", json={"email": "e@example.com", "password": "e-password-1"}).status_code == 403
        )
        actions = {e["action"] for e in api.get("/audit", root).json()}
        assert {"user.create_admin", "settings.update", "invite.create", "key.create", "user.register"} <= actions
        assert {e["actor"] for e in api.get("/audit", root).json() if e["action"] == "key.create"} == {"cli"}
        api.close()

    assert run(["admin", "workspace-create", "lab", *base]).returncode == 0
    rule = run(["admin", "ip-rule-add", "10.9.0.0/16", "--note", "vpn", *base])
    assert rule.returncode == 0, rule.stderr
    assert "10.9.0.0/16" in run(["admin", "ip-rules", *base]).stdout
    assert run(["admin", "ip-rule-add", "not-a-network", *base]).returncode == 2
    rule_id = re.search(r"Added IP rule (\S+)", rule.stdout)
    assert rule_id is not None
    assert run(["admin", "ip-rule-remove", rule_id.group(1), *base]).returncode == 0
    assert run(["admin", "member-set", "default", "dana@example.com", "owner", *base]).returncode == 0
    assert run(["admin", "member-set", "nowhere", "dana@example.com", "owner", *base]).returncode == 1
    assert run(["admin", "disable", "dana@example.com", *base]).returncode == 0
    users = run(["admin", "users", "--status", "disabled", *base])
    assert "dana@example.com" in users.stdout
    assert run(["admin", "member-remove", "default", "dana@example.com", *base]).returncode == 0
    revoked = run(["keys", "revoke", secret.group(0)[:12], *base])
    assert revoked.returncode == 0, revoked.stderr
    with SluiceServer(settings) as server:
        response = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {secret.group(0)}"})
        assert response.status_code == 401
