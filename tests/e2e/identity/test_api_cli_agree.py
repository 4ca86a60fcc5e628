"""The admin API and the CLI make each change through the same service, so they obey the same rules.

Where the two used to be separate copies they had drifted; each case below is one of those, made both ways against
one gateway's database (the CLI in this process, on the running gateway's configuration file) and compared.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli import cli as sluice_cli
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings
from tests.support.server import SluiceServer

SECRET_KEY = re.compile(r"sk-sl-[A-Za-z0-9_-]{40,}")


@dataclass
class Both:
    server: SluiceServer
    api: Api
    admin: str  # the admin's access token
    config: Path

    def cli(self, *args: str) -> tuple[int, str]:
        """``sluice …`` against the gateway's own configuration (hence its database); (exit status, output)."""
        unset = {k: None for k in os.environ if k.startswith(("SLUICE_", "OPENAI_", "ANTHROPIC_", "OLLAMA_"))}
        result = CliRunner().invoke(
            sluice_cli, [*args, "--config", str(self.config)], env=unset, catch_exceptions=False
        )
        return result.exit_code, result.stdout + result.stderr

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.api.post(path, self.admin, json=body)

    def audit(self, action: str) -> list[dict[str, Any]]:
        """The action's events, oldest first."""
        events: list[dict[str, Any]] = self.api.get("/audit", self.admin, params={"action": action}).json()
        return events[::-1]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    settings = identity_settings(tmp_path_factory.mktemp("agree"))
    with SluiceServer(settings) as server:
        api = Api(server.url)
        admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        yield Both(server, api, admin, settings.data_dir / "sluice.yaml")
        api.close()


@pytest.fixture(scope="module")
def lab(both: Both) -> str:
    created = both.post("/workspaces", {"name": "lab"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_global_ip_rule_is_filed_under_no_workspace_either_way(both: Both, lab: str) -> None:
    """The CLI used to keep ``--workspace`` on a global rule, which then showed in that workspace's owners' list."""
    made = both.post("/ip-rules", {"cidr": "127.0.0.0/8", "scope": "global", "workspace_id": lab})
    assert made.status_code == 201, made.text
    status, output = both.cli("admin", "ip-rule-add", "127.0.0.1/32", "--workspace", lab)
    assert status == 0, output
    rules = {r["cidr"]: r for r in both.api.get("/ip-rules", both.admin).json()}
    assert rules["127.0.0.0/8"]["workspace_id"] is None and rules["127.0.0.1/32"]["workspace_id"] is None
    api_event, cli_event = both.audit("ip_rule.create")[-2:]
    assert (api_event["actor"], cli_event["actor"]) == (f"user:{_admin_id(both)}", "cli")
    assert api_event["workspace_id"] is None and cli_event["workspace_id"] is None
    assert set(api_event["after"]) == set(cli_event["after"])


def test_an_anonymous_rule_for_a_missing_workspace_is_refused_either_way(both: Both) -> None:
    """The API used to let the database refuse it (a 500); the CLI said 'No workspace'."""
    rule = {"cidr": "10.7.0.0/16", "scope": "global", "anonymous": True, "workspace_id": "no-such-workspace"}
    refused = both.post("/ip-rules", rule)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "workspace_not_found"
    status, output = both.cli("admin", "ip-rule-add", "10.7.0.0/16", "--anonymous", "--workspace", "no-such-workspace")
    assert status == 1 and "No such workspace." in output


def test_a_key_for_someone_outside_its_workspace_is_refused_either_way(both: Both, lab: str) -> None:
    """The CLI used to make a key for any user in any workspace; the API only for the workspace's members."""
    outsider = both.post("/users", {"email": "outsider@example.com", "workspace_id": "default"})
    assert outsider.status_code == 201, outsider.text
    user_id = outsider.json()["user"]["id"]
    refused = both.post("/keys", {"name": "theirs", "user_id": user_id, "workspace_id": lab})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "user_not_found"
    status, output = both.cli("keys", "create", "--name", "theirs", "--user", user_id, "--workspace", lab)
    assert status == 1 and "No such user in this workspace." in output
    assert both.cli("keys", "create", "--name", "theirs", "--user", user_id)[0] == 0  # their own workspace: fine


def test_keys_with_models_and_networks_read_alike(both: Both, lab: str) -> None:
    """The CLI could not give a key the networks it may be used from; both now make the same key and rule."""
    made = both.post(
        "/keys", {"name": "by-api", "workspace_id": lab, "allowed_models": ["mock-1"], "ip_allow": ["127.0.0.1"]}
    )
    assert made.status_code == 201, made.text
    args = ["--name", "by-cli", "--workspace", lab, "--models", "mock-1", "--ip-allow", "127.0.0.1"]
    status, output = both.cli("keys", "create", *args)
    assert status == 0, output
    keys = {k["name"]: k for k in both.api.get("/keys", both.admin, params={"workspace_id": lab}).json()}
    for name in ("by-api", "by-cli"):
        assert (keys[name]["allowed_models"], keys[name]["priority"], keys[name]["role"]) == (
            ["mock-1"],
            "standard",
            "member",
        )
    rules = [r for r in both.api.get("/ip-rules", both.admin).json() if r["scope"] == "key"]
    by_key = {r["key_id"]: r for r in rules}
    for name in ("by-api", "by-cli"):
        rule = by_key[keys[name]["id"]]
        assert (rule["cidr"], rule["workspace_id"]) == ("127.0.0.1/32", lab)
    api_event, cli_event = both.audit("key.create")[-2:]
    assert set(api_event["after"]) == set(cli_event["after"]) and cli_event["actor"] == "cli"
    assert SECRET_KEY.search(output) is not None


def test_a_key_cannot_be_made_already_expired_either_way(both: Both) -> None:
    past = both.post("/keys", {"name": "stale", "expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 400 and past.json()["error"]["param"] == "expires_at"
    assert both.cli("keys", "create", "--name", "stale", "--expires-in-days", "-1")[0] == 2
    assert both.cli("keys", "create", "--name", "stale", "--expires-in-days", "0")[0] == 2  # used to mean "never"


def test_invitations_read_alike(both: Both, lab: str) -> None:
    made = both.post("/invites", {"workspace_id": lab, "role": "viewer", "note": "for dana"})
    assert made.status_code == 201, made.text
    status, output = both.cli("invites", "create", "--workspace", lab, "--role", "viewer", "--note", "for dana")
    assert status == 0, output
    api_event, cli_event = both.audit("invite.create")[-2:]
    assert set(api_event["after"]) == set(cli_event["after"])
    for event in (api_event, cli_event):
        assert (event["workspace_id"], event["after"]["role"], event["after"]["note"]) == (lab, "viewer", "for dana")
    missing = both.post("/invites", {"workspace_id": "no-such-workspace"})
    assert missing.status_code == 404
    status, output = both.cli("invites", "create", "--workspace", "no-such-workspace")
    assert status == 1 and "No such workspace." in output


def test_a_registration_mode_change_is_audited_alike(both: Both) -> None:
    """The CLI used to record the mode before and after even when nothing changed, and always the whole setting."""
    assert both.api.call("PUT", "/settings", both.admin, json={"registration": "invite"}).status_code == 200
    assert both.cli("admin", "registration", "approval")[0] == 0
    assert both.cli("admin", "registration", "approval")[0] == 0  # no change
    assert both.api.call("PUT", "/settings", both.admin, json={"registration": "approval"}).status_code == 200
    events = [e for e in both.audit("settings.update") if e["target_id"] == "registration"][-4:]
    assert [(e["before"], e["after"]) for e in events] == [
        ({"registration": "approval"}, {"registration": "invite"}),
        ({"registration": "invite"}, {"registration": "approval"}),
        ({}, {}),
        ({}, {}),
    ]
    assert [e["actor"] for e in events][1:3] == ["cli", "cli"]


def test_limits_are_set_and_audited_alike(both: Both, lab: str) -> None:
    """The CLI's audit image of a policy lacked its scope and id, and it stored limits for users that do not exist."""
    assert both.api.call("PUT", f"/limits/workspace/{lab}", both.admin, json={"rpm": 5}).status_code == 200
    assert both.cli("limits", "set", "workspace", lab, "--rpm", "6")[0] == 0
    api_event, cli_event = both.audit("limits.put")[-2:]
    assert api_event["after"] == {**cli_event["after"], "rpm": 5}
    assert cli_event["after"] == {
        "scope": "workspace",
        "id": lab,
        "rpm": 6,
        "tpm": None,
        "concurrent": None,
        "budget": None,
        "period": "month",
    }
    missing = both.api.call("PUT", "/limits/user/no-such-user", both.admin, json={"rpm": 1})
    assert missing.status_code == 404
    status, output = both.cli("limits", "set", "user", "no-such-user", "--rpm", "1")
    assert status == 1 and "No such user." in output


def _admin_id(both: Both) -> str:
    return str(both.api.get("/me", both.admin).json()["user_id"])
