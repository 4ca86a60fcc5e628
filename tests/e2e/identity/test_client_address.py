"""Every client-address decision (login throttle, IP rules) follows the one trusted-proxies rule, which an admin
can change at run time; workspace IP rules confine that workspace's credentials."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.identity.network import BROWSER_HEADER
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings, make_user
from tests.support.server import SluiceServer

BROWSER = BROWSER_HEADER.decode()
# Five failures from one address (any accounts) lock that address here: what each test checks is whose address it is.
ADDRESS_BOUND = {"login_address_attempts": 5}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SluiceServer]:
    with SluiceServer(identity_settings(tmp_path, auth=ADDRESS_BOUND)) as running:
        yield running


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[SluiceServer]:
    """A gateway behind a reverse proxy on loopback: X-Forwarded-For from 127.0.0.1 is believed."""
    settings = identity_settings(tmp_path, server={"trusted_proxies": ["127.0.0.1/32"]}, auth=ADDRESS_BOUND)
    with SluiceServer(settings) as running:
        yield running


def login(api: Api, email: str, password: str, **headers: str) -> httpx.Response:
    return api.post("/auth/login", json={"email": email, "password": password}, headers=headers)


def fail_five_times(api: Api, **headers: str) -> None:
    """Five failed logins, each with another email: only the address is common to them."""
    for i in range(5):
        assert login(api, f"stranger{i}@example.com", "wrong-password", **headers).status_code == 401


def test_one_clients_failed_logins_do_not_lock_out_another_behind_the_same_proxy(proxied: SluiceServer) -> None:
    api = Api(proxied.url)
    fail_five_times(api, **{"x-forwarded-for": "192.0.2.10"})
    locked = login(api, ADMIN_EMAIL, ADMIN_PASSWORD, **{"x-forwarded-for": "192.0.2.10"})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "login_throttled"
    assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, **{"x-forwarded-for": "198.51.100.20"}).status_code == 200
    api.close()


def test_forwarded_for_from_an_untrusted_peer_cannot_dodge_the_throttle(tmp_path: Path) -> None:
    with SluiceServer(identity_settings(tmp_path, auth=ADDRESS_BOUND)) as server:
        api = Api(server.url)
        for i in range(5):
            forged = {"x-forwarded-for": f"203.0.113.{i}"}
            assert login(api, f"s{i}@example.com", "wrong-password", **forged).status_code == 401
        fresh = {"x-forwarded-for": "203.0.113.99"}
        assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, **fresh).status_code == 429  # the peer is the client
        api.close()


def test_the_uis_signed_browser_address_is_the_throttled_subject(server: SluiceServer, api: Api) -> None:
    """What the UI sends for each browser: one browser's failures leave the others alone."""
    proxies = server.services.gateway.authenticator.proxies
    first = {BROWSER: proxies.vouch(ipaddress.ip_address("192.0.2.10"))}
    second = {BROWSER: proxies.vouch(ipaddress.ip_address("198.51.100.20"))}
    fail_five_times(api, **first)
    assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, **first).status_code == 429
    assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, **second).status_code == 200


def test_a_forged_browser_header_is_ignored(server: SluiceServer, api: Api) -> None:
    for i in range(5):
        forged = {BROWSER: f"192.0.2.{i} {'0' * 64}"}
        assert login(api, f"s{i}@example.com", "wrong-password", **forged).status_code == 401
    assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, **{BROWSER: f"192.0.2.99 {'1' * 64}"}).status_code == 429


def _models(server: SluiceServer, token: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {token}", **headers}, timeout=10)


def test_trusted_proxies_are_changed_at_run_time_validated_and_audited(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    key = api.post("/keys", admin, json={"name": "office", "ip_allow": ["10.0.0.0/8"]}).json()["key"]
    office = {"x-forwarded-for": "10.1.2.3"}
    assert _models(server, key, **office).status_code == 403  # the header is not believed yet
    assert api.get("/settings", admin).json()["trusted_proxies"] == []

    bad = api.call("PUT", "/settings", admin, json={"trusted_proxies": ["127.0.0.1/32", "10.0.0.300/8"]})
    assert bad.status_code == 422
    detail = bad.json()["detail"][0]
    assert (
        detail["loc"] == ["body", "trusted_proxies", 1] and "'10.0.0.300/8' is not a valid IP network" in detail["msg"]
    )
    assert api.call("PUT", "/settings", admin, json={}).status_code == 422
    assert api.call("PUT", "/settings", admin, json={"registration": None}).status_code == 422

    changed = api.call("PUT", "/settings", admin, json={"trusted_proxies": ["127.0.0.1"]})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "registration": "approval",
        "trusted_proxies": ["127.0.0.1/32"],
        "trusted_proxies_stored": True,
    }
    assert _models(server, key, **office).status_code == 200  # applied at once
    assert _models(server, key, **{"x-forwarded-for": "192.0.2.1"}).status_code == 403

    back = api.call("PUT", "/settings", admin, json={"trusted_proxies": None})
    assert back.json()["trusted_proxies"] == [] and back.json()["trusted_proxies_stored"] is False
    assert _models(server, key, **office).status_code == 403

    events = api.get("/audit", admin, params={"action": "settings.update"}).json()
    assert events[1]["target_id"] == "trusted_proxies"
    assert events[1]["before"] == {"trusted_proxies": [], "trusted_proxies_stored": False}
    assert events[1]["after"] == {"trusted_proxies": ["127.0.0.1/32"], "trusted_proxies_stored": True}
    assert events[0]["after"] == {"trusted_proxies": [], "trusted_proxies_stored": False}

    owner = make_user(api, admin, "owner@example.com", role="owner")
    assert api.call("PUT", "/settings", owner, json={"trusted_proxies": ["0.0.0.0/0"]}).status_code == 403
    assert api.get("/settings", admin).json()["trusted_proxies"] == []


def test_workspace_ip_rules_confine_that_workspaces_keys_and_users(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    fenced = api.post("/workspaces", admin, json={"name": "fenced"}).json()["id"]
    open_ws = api.post("/workspaces", admin, json={"name": "open"}).json()["id"]
    fenced_owner = make_user(api, admin, "fenced@example.com", fenced, "owner")
    fenced_key = api.post("/keys", fenced_owner, json={"name": "f"}).json()["key"]
    open_key = api.post("/keys", admin, json={"name": "o", "workspace_id": open_ws}).json()["key"]
    assert _models(server, fenced_key).status_code == 200

    rule = api.post("/ip-rules", fenced_owner, json={"cidr": "10.0.0.0/8", "scope": "workspace"})
    assert rule.status_code == 201, rule.text

    refused: dict[str, Any] = {
        "key on a proxy surface": _models(server, fenced_key),
        "user on a proxy surface": _models(server, fenced_owner),
        "key on the admin API": api.get("/me", fenced_key),
        "user on the admin API": api.get("/keys", fenced_owner),
    }
    for name, response in refused.items():
        assert response.status_code == 403, name
        assert response.json()["error"]["code"] == "ip_denied", name
    assert _models(server, open_key).status_code == 200  # other workspaces are not confined
    assert api.get("/me", admin).status_code == 200

    # From inside the network (through a proxy the admin now trusts) the workspace's credentials work again.
    api.call("PUT", "/settings", admin, json={"trusted_proxies": ["127.0.0.1/32"]})
    inside = {"x-forwarded-for": "10.20.30.40"}
    assert _models(server, fenced_key, **inside).status_code == 200
    assert _models(server, fenced_owner, **inside).status_code == 200
    assert _models(server, fenced_key, **{"x-forwarded-for": "192.0.2.1"}).status_code == 403
