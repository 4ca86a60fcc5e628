"""Which limits a scope gets: stored, configured, the role default (stored, else configured), the type default."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from sluice.admin.routes_limits import Role
from sluice.config import LIMIT_ROLES, LimitsConfig
from sluice.config_loading import load_settings
from sluice.errors import ConfigError
from sluice.identity.principal import MASTER, Principal
from sluice.limits.policy import Limits, PolicyTable

CONFIG = LimitsConfig.model_validate(
    {
        "defaults": {"key": {"rpm": 600}, "workspace": {"budget": 50}},
        "role_defaults": {"viewer": {"rpm": 10}, "member": {"rpm": 100}},
        "scopes": [{"scope": "key", "id": "configured", "rpm": 60, "budget": 5, "period": "day"}],
    }
)


def key(key_id: str, role: str = "member") -> Principal:
    return Principal(kind="key", id=key_id, role=role, workspace_id="w1", user_id="u1", key_id=key_id)


def test_each_source_in_order_of_precedence() -> None:
    table = PolicyTable(CONFIG, {("key", "stored"): Limits(rpm=1), ("role", "viewer"): Limits(rpm=2)})
    assert table.resolve("key", "stored", "viewer") == (Limits(rpm=1), "stored")
    assert table.resolve("key", "configured", "viewer") == (
        Limits(rpm=60, budget_nanos=5 * 10**9, period="day"),
        "config",
    )
    assert table.resolve("key", "other", "viewer") == (Limits(rpm=2), "role")  # the stored role default wins
    assert table.resolve("key", "other", "member") == (Limits(rpm=100), "role")  # the configured one otherwise
    assert table.resolve("key", "other", "owner") == (Limits(rpm=600), "default")
    assert table.resolve("key", "other") == (Limits(rpm=600), "default")
    assert table.resolve("user", "u1") == (Limits(), "none")
    assert table.role_default("viewer") == (Limits(rpm=2), "stored")
    assert table.role_default("member") == (Limits(rpm=100), "config")
    assert table.role_default("admin") == (Limits(), "none")


def test_role_defaults_apply_to_the_callers_own_scope_only() -> None:
    table = PolicyTable(CONFIG)
    scopes = {s.name: s.limits for s in table.scopes_for(key("k1", role="viewer"))}
    assert scopes == {"key:k1": Limits(rpm=10), "workspace:w1": Limits(budget_nanos=50 * 10**9)}
    jwt = Principal(kind="user", id="u1", role="viewer", workspace_id="w1", user_id="u1")
    assert {s.name: s.limits for s in table.scopes_for(jwt)}["user:u1"] == Limits(rpm=10)
    assert table.scopes_for(MASTER) == []


def test_a_stored_role_default_applies_once_stored_and_goes_when_removed() -> None:
    table = PolicyTable(CONFIG)
    table.replace_stored({("role", "owner"): Limits(concurrent=3)})
    assert table.limits_for("key", "k1", "owner") == Limits(concurrent=3)
    table.replace_stored({})
    assert table.limits_for("key", "k1", "owner") == Limits(rpm=600)


def test_an_unknown_role_in_the_configuration_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "sluice.yaml"
    path.write_text("limits:\n  role_defaults:\n    memebr: {rpm: 5}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.problems == [
        "limits.role_defaults: 'memebr' is not a role (the roles are admin, owner, member, viewer)"
    ]


def test_the_api_knows_the_same_roles_as_the_configuration() -> None:
    assert set(typing.get_args(Role)) == set(LIMIT_ROLES)
