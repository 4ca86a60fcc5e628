"""SECURITY.md case 42 (issue 16 items 7 and 8): login throttling cannot lock someone else out; sign-up is throttled
per client address and does not reveal which emails have accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings
from tests.support.server import SluiceServer

ATTACKER = {"x-forwarded-for": "203.0.113.7"}
OWNER = {"x-forwarded-for": "198.51.100.1"}


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[SluiceServer]:
    """Behind a trusted reverse proxy (X-Forwarded-For from loopback is believed); three sign-ups per address."""
    settings = identity_settings(tmp_path, server={"trusted_proxies": ["127.0.0.1/32"]}, auth={"signup_attempts": 3})
    with SluiceServer(settings) as running:
        yield running


def login(api: Api, email: str, password: str, headers: dict[str, str]) -> httpx.Response:
    return api.post("/auth/login", json={"email": email, "password": password}, headers=headers)


def register(api: Api, email: str, headers: dict[str, str], **extra: Any) -> httpx.Response:
    return api.post("/auth/register", json={"email": email, "password": "a-Password-1234", **extra}, headers=headers)


def test_an_attacker_guessing_cannot_lock_the_owner_out(proxied: SluiceServer) -> None:
    api = Api(proxied.url)
    statuses = [login(api, ADMIN_EMAIL, f"guess-{i}", ATTACKER).status_code for i in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429  # the attacker waits, longer each time
    refused = login(api, ADMIN_EMAIL, ADMIN_PASSWORD, ATTACKER)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "login_throttled"
    assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, OWNER).status_code == 200  # the owner, from elsewhere
    api.close()


def test_sign_ups_are_throttled_per_client_address(proxied: SluiceServer) -> None:
    api = Api(proxied.url)
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    assert api.call("PUT", "/settings", admin, json={"registration": "approval"}).status_code == 200
    assert [register(api, f"bulk{i}@example.com", ATTACKER).status_code for i in range(3)] == [201] * 3
    refused = register(api, "bulk3@example.com", ATTACKER)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "signup_throttled"
    assert int(refused.headers["retry-after"]) >= 1
    assert register(api, "someone@example.com", OWNER).status_code == 201  # another address is not affected
    api.close()


def test_sign_up_answers_alike_whether_the_email_has_an_account(server: SluiceServer, api: Api) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    assert api.call("PUT", "/settings", admin, json={"registration": "approval"}).status_code == 200

    fresh = register(api, "fresh@example.com", {})
    taken = register(api, ADMIN_EMAIL, {})
    assert fresh.status_code == taken.status_code == 201, taken.text

    def shape(response: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        user = {k: v for k, v in body["user"].items() if k not in ("id", "email", "created_at")}
        return {"pending": body["pending"], "user": user, "keys": sorted(body["user"])}

    assert shape(fresh) == shape(taken)
    assert taken.json()["user"]["id"] != api.get("/me", admin).json()["user_id"]  # nothing about the real account
    # Nothing changed for the real account; its admins can see the attempt in the audit log.
    assert login(api, ADMIN_EMAIL, "a-Password-1234", {}).status_code == 401
    assert login(api, ADMIN_EMAIL, ADMIN_PASSWORD, {}).status_code == 200
    actions = [e["action"] for e in api.get("/audit", admin).json()]
    assert "user.register_existing" in actions

    # With an invitation: used up alike, so a second use cannot tell either.
    for email in ("invited@example.com", ADMIN_EMAIL):
        invite = api.post("/invites", admin, json={"role": "member"}).json()["token"]
        first = register(api, email, {}, invite_token=invite)
        assert first.status_code == 201 and first.json()["pending"] is False, first.text
        again = register(api, "other-" + email, {}, invite_token=invite)
        assert again.status_code == 403 and again.json()["error"]["code"] == "invalid_invite"
