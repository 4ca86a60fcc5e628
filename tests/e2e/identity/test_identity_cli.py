"""`sluice admin …`, `sluice invites …` and `sluice keys …` as operators run them, then used over HTTP.

The commands run in this process through typer's runner against the same data directory a server then opens.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.identity.conftest import JWT_SECRET, Api
from tests.support.cli import Ran, run_cli
from tests.support.server import SluiceServer, make_settings


def cli(args: list[str]) -> Ran:
    return run_cli(args)


def test_identity_commands_then_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    base = ["--data-dir", str(data)]
    created = cli(["admin", "create", "--email", "Root@Example.com", "--password", "root-password-1", *base])
    assert created.returncode == 0, created.stderr
    early = cli(["invites", "create", *base])
    assert early.returncode == 0 and "Registration is closed" in early.stderr  # closed: invitations wait
    assert cli(["admin", "registration", "invite", *base]).returncode == 0
    invite = cli(["invites", "create", "--role", "viewer", "--note", "for dana", *base])
    assert invite.returncode == 0, invite.stderr
    token = re.search(r"sl-inv-[A-Za-z0-9_-]{20,}", invite.stdout)
    assert token is not None
    listed = cli(["invites", "list", *base])
    assert "open" in listed.stdout and token.group(0) not in listed.stdout
    key = cli(["keys", "create", "--name", "root key", "--user", "root@example.com", "--role", "admin", *base])
    assert key.returncode == 0, key.stderr
    secret = re.search(r"sk-sl-[A-Za-z0-9_-]{40,}", key.stdout)
    assert secret is not None
    assert cli(["keys", "create", "--name", "x", "--user", "nobody@example.com", *base]).returncode == 1
    assert cli(["keys", "create", "--name", "x", "--priority", "urgent", *base]).returncode == 2

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

    assert cli(["admin", "workspace-create", "lab", *base]).returncode == 0
    rule = cli(["admin", "ip-rule-add", "10.9.0.0/16", "--note", "vpn", *base])
    assert rule.returncode == 0, rule.stderr
    assert "10.9.0.0/16" in cli(["admin", "ip-rules", *base]).stdout
    assert cli(["admin", "ip-rule-add", "not-a-network", *base]).returncode == 2
    assert cli(["admin", "ip-rule-add", "10.0.0.0/8", "--priority", "batch", *base]).returncode == 2  # anonymous only
    rule_id = re.search(r"Added IP rule (\S+)", rule.stdout)
    assert rule_id is not None
    assert cli(["admin", "ip-rule-remove", rule_id.group(1), *base]).returncode == 0
    assert cli(["admin", "member-set", "default", "dana@example.com", "owner", *base]).returncode == 0
    assert cli(["admin", "member-set", "nowhere", "dana@example.com", "owner", *base]).returncode == 1
    assert cli(["admin", "disable", "dana@example.com", *base]).returncode == 0
    users = cli(["admin", "users", "--status", "disabled", *base])
    assert "dana@example.com" in users.stdout
    assert cli(["admin", "member-remove", "default", "dana@example.com", *base]).returncode == 0
    revoked = cli(["keys", "revoke", secret.group(0)[:12], *base])
    assert revoked.returncode == 0, revoked.stderr
    with SluiceServer(settings) as server:
        response = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {secret.group(0)}"})
        assert response.status_code == 401


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_operator_commands_change_what_the_api_changes_and_are_audited_alike(tmp_path: Path) -> None:
    data = tmp_path / "data"
    base = ["--data-dir", str(data)]
    assert (
        cli(["admin", "create", "--email", "root@example.com", "--password", "root-password-1", *base]).returncode == 0
    )
    lab = re.search(r"\(([\w-]+)\)", cli(["admin", "workspace-create", "lab", *base]).stdout)
    assert lab is not None
    lab_id = lab.group(1)
    created = cli(["keys", "create", "--name", "lab key", "--workspace", lab_id, *base])
    key_id = re.search(r"Created key (\S+) \((sk-sl-[\w-]+)…", created.stdout)
    secret = re.search(r"sk-sl-[A-Za-z0-9_-]{40,}", created.stdout)
    assert key_id is not None and secret is not None

    assert cli(["admin", "user-set", "root@example.com", "--priority", "batch", *base]).returncode == 0
    assert cli(["admin", "user-set", "root@example.com", "--priority", "urgent", *base]).returncode == 2
    assert cli(["admin", "user-set", "root@example.com", *base]).returncode == 2  # nothing to change
    off = cli(["admin", "user-set", "root@example.com", "--no-password-login", *base])
    assert off.returncode == 0 and "through single sign-on only" in off.stdout, off.stderr
    on = cli(["admin", "user-set", "root@example.com", "--password-login", *base])
    assert on.returncode == 0 and "with a password or single sign-on" in on.stdout, on.stderr
    changes = ["--name", "lab-2", "--priority", "interactive", "--models", "mock-1"]
    updated = cli(["admin", "workspace-update", lab_id, *changes, *base])
    assert updated.returncode == 0, updated.stderr
    edited = cli(["keys", "edit", key_id.group(2), "--name", "renamed", "--models", "only-this", *base])
    assert edited.returncode == 0, edited.stderr
    assert cli(["keys", "edit", "no-such-key", "--name", "x", *base]).returncode == 1
    assert cli(["keys", "edit", key_id.group(1), *base]).returncode == 2
    bad = cli(["admin", "trusted-proxies", "127.0.0.1", "10.0.0.300", *base])
    assert bad.returncode == 2 and "entry 1: '10.0.0.300' is not a valid IP network" in bad.stderr
    assert "127.0.0.1/32 (set at run time)" in cli(["admin", "trusted-proxies", "127.0.0.1", *base]).stdout
    link = re.search(
        r"/ui/reset\?token=(sl-reset-[\w-]+)", cli(["admin", "reset-link", "root@example.com", *base]).stdout
    )
    assert link is not None
    made = cli(["admin", "user-create", "New@Example.com", "--workspace", lab_id, "--role", "viewer", *base])
    assert made.returncode == 0, made.stderr
    first_password = re.search(r"/ui/reset\?token=(sl-reset-[\w-]+)", made.stdout)
    assert first_password is not None
    assert cli(["admin", "user-create", "new@example.com", *base]).returncode == 1  # taken

    settings = make_settings(data, {"auth": {"jwt_secret": JWT_SECRET}})
    with SluiceServer(settings) as server:
        api = Api(server.url)
        reset = api.post("/auth/reset-password", json={"token": link.group(1), "new_password": "after-reset-1"})
        assert reset.status_code == 204
        root = api.login("root@example.com", "after-reset-1")["access_token"]
        chosen = {"token": first_password.group(1), "new_password": "new-user-password"}
        assert api.post("/auth/reset-password", json=chosen).status_code == 204
        assert api.login("new@example.com", "new-user-password")["workspace_id"] == lab_id
        assert api.get("/me", root).json()["priority"] == "batch"
        workspace = api.get(f"/workspaces/{lab_id}", root).json()
        assert (workspace["name"], workspace["priority"], workspace["allowed_models"]) == (
            "lab-2",
            "interactive",
            ["mock-1"],
        )
        key = api.get(f"/keys/{key_id.group(1)}", root).json()
        assert (key["name"], key["allowed_models"]) == ("renamed", ["only-this"])
        chat = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {secret.group(0)}"}
        assert httpx.post(f"{server.url}/v1/chat/completions", headers=headers, json=chat).status_code == 404
        assert api.get("/settings", root).json()["trusted_proxies"] == ["127.0.0.1/32"]
        api_edit = api.call("PATCH", f"/keys/{key_id.group(1)}", root, json={"name": "by the api"})
        assert api_edit.status_code == 200
        api_events = [e for e in api.get("/audit", root, params={"action": "key.update"}).json() if e["actor"] != "cli"]
        api.close()

    assert cli(["admin", "workspace-disable", lab_id, *base]).returncode == 0
    assert cli(["admin", "workspace-disable", "default", *base]).returncode == 1
    with SluiceServer(settings) as server:
        headers = {"authorization": f"Bearer {secret.group(0)}"}
        assert httpx.get(f"{server.url}/v1/models", headers=headers).status_code == 401  # a disabled workspace's key
    assert cli(["admin", "workspace-enable", lab_id, *base]).returncode == 0
    assert re.search(r"lab-2\s*│\s*active", cli(["admin", "workspaces", *base]).stdout)

    events = _json_lines(
        cli(["admin", "audit", "--actor", "cli", "--since", "1h", "--limit", "50", "--json", *base]).stdout
    )
    actions = [e["action"] for e in events]
    for action in (
        "user.create",
        "user.update",
        "workspace.update",
        "key.update",
        "settings.update",
        "user.password_reset_link",
    ):
        assert action in actions, action
    assert actions.count("workspace.update") == 3  # update, disable, enable
    cli_edit = next(e for e in events if e["action"] == "key.update")
    assert cli_edit["before"]["name"] == "lab key" and cli_edit["after"]["name"] == "renamed"
    assert set(cli_edit["after"]) == set(api_events[0]["after"])  # the same image as the API's
    disable = next(e for e in events if e["action"] == "workspace.update" and e["after"]["disabled"])
    assert disable["before"]["disabled"] is False and disable["workspace_id"] == lab_id
    one = _json_lines(
        cli(["admin", "audit", "--action", "key.update", "--target", key_id.group(1), "--json", *base]).stdout
    )
    assert [e["actor"] for e in one] == [api_events[0]["actor"], "cli"]  # newest first
    assert cli(["admin", "audit", "--since", "yesterday-ish", *base]).returncode == 2
    table = cli(["admin", "audit", "--action", "settings.update", *base]).stdout
    assert "trusted_proxies" in table and "127.0.0.1/32" in table
