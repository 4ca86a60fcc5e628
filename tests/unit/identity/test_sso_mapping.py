"""Groups and roles claims → workspaces, roles and priority class (the one place the mapping rules live)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluice.config_sso import ClaimMapping, OidcProviderConfig, SsoConfig
from sluice.identity.sso_mapping import Grant, claim_values, map_claims, membership_role, most_urgent

RULES = [
    ClaimMapping(value="llm-users", workspace="default", role="member"),
    ClaimMapping(value="llm-leads", workspace="default", role="owner", priority="interactive"),
    ClaimMapping(value="research", workspace="research", role="viewer", priority="batch"),
    ClaimMapping(value="sluice-admins", workspace="default", role="admin"),
]


def test_strongest_role_per_workspace_and_most_urgent_priority() -> None:
    access = map_claims(["llm-users", "llm-leads", "research", "unrelated"], RULES)
    assert set(access.grants) == {Grant("default", "owner"), Grant("research", "viewer")}
    assert access.priority == "interactive"
    assert not access.is_admin
    assert access.matched == ("llm-users", "llm-leads", "research")


def test_admin_rule_makes_a_gateway_admin_who_owns_the_workspace() -> None:
    access = map_claims(["sluice-admins"], RULES)
    assert access.is_admin and access.grants == (Grant("default", "admin"),)
    assert membership_role("admin") == "owner"


def test_no_matching_group_gives_nothing_unless_a_default_is_set() -> None:
    assert map_claims(["other"], RULES).empty
    fallback = map_claims(["other"], RULES, default_workspace="guests", default_role="viewer")
    assert fallback.grants == (Grant("guests", "viewer"),)


@pytest.mark.parametrize(
    ("claims", "name", "values"),
    [
        ({"groups": ["a", "b"]}, "groups", ["a", "b"]),
        ({"groups": "a b"}, "groups", ["a b"]),  # one group whose name has a space
        ({"scope": "a b"}, "scope", ["a", "b"]),
        ({"groups": [1, {"x": 1}, "c"]}, "groups", ["1", "c"]),
        ({"groups": None}, "groups", []),
        ({"resource_access": {"sluice": {"roles": ["a"]}}}, "resource_access.sluice.roles", ["a"]),
        ({"resource_access": {"other": {"roles": ["a"]}}}, "resource_access.sluice.roles", []),
        ({"a.b": ["flat"], "a": {"b": ["nested"]}}, "a.b", ["flat"]),  # a claim named with a dot wins
        ({}, "groups", []),
    ],
)
def test_claim_values_shapes(claims: dict[str, object], name: str, values: list[str]) -> None:
    assert claim_values(claims, name) == values


def test_most_urgent_prefers_known_classes() -> None:
    assert most_urgent(["batch", "standard"]) == "standard"
    assert most_urgent([]) is None


def test_config_refuses_unsafe_algorithms_and_duplicates() -> None:
    base = {"name": "kc", "issuer": "https://idp.example.com", "client_id": "sluice"}
    for bad in (["none"], ["HS256"], []):
        with pytest.raises(ValidationError):
            OidcProviderConfig.model_validate({**base, "algorithms": bad})
    with pytest.raises(ValidationError):
        OidcProviderConfig.model_validate({**base, "scopes": ["email"]})
    with pytest.raises(ValidationError, match="unique"):
        SsoConfig.model_validate({"providers": [base, base]})
