"""Service tokens from the provider (client credentials) instead of Sluice keys: a real token is mapped to its
workspace, role and priority class and recorded like any caller; tampered, expired, wrong-audience, wrong-issuer
and ``alg: none`` tokens are refused; after the provider rotates its keys, new tokens verify and the old key's do
not."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.e2e.sso.conftest import SsoRig
from tests.e2e.sso.idp import STRANGER_CLIENT, STRANGER_SECRET

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def chat(rig: SsoRig, token: str) -> httpx.Response:
    return httpx.post(
        f"{rig.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {token}"}, timeout=30
    )


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_real_client_credentials_token_is_a_principal_like_any_other(rig: SsoRig) -> None:
    token = rig.idp.service_token()
    me = rig.me(token).json()
    assert me["kind"] == "service" and me["id"] == "ci:ci-bot"
    assert (me["role"], me["workspace_id"], me["priority"]) == ("member", "default", "batch")
    answered = chat(rig, token)
    assert answered.status_code == 200, answered.text
    request_id = answered.headers["x-request-id"]
    deadline = time.monotonic() + 30
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline and not records:
        records = rig.admin.get("/requests", params={"request_id": request_id}).json()["data"]
        if not records:
            time.sleep(0.2)
    assert records, "the usage record was not shipped within 30 s"
    assert records[0]["workspace_id"] == "default"
    # A member's token cannot act as an admin.
    assert httpx.get(f"{rig.url}/admin/v1/users", headers={"authorization": f"Bearer {token}"}).status_code == 403


def test_a_workspace_limit_applies_to_service_tokens(rig: SsoRig) -> None:
    research = next(w["id"] for w in rig.admin.get("/workspaces").json() if w["name"] == "research")
    put = rig.admin.put(f"/limits/workspace/{research}", json={"rpm": 1})
    assert put.status_code == 200, put.text
    token = rig.idp.mint(roles=["research-bot"])
    assert rig.me(token).json()["workspace_id"] == research
    assert chat(rig, token).status_code == 200
    limited = chat(rig, token)
    assert limited.status_code == 429, limited.text


def test_a_service_whose_roles_map_to_nothing_is_refused(rig: SsoRig) -> None:
    token = rig.idp.service_token(STRANGER_CLIENT, STRANGER_SECRET)
    refused = chat(rig, token)
    assert refused.status_code == 403, refused.text


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 5}, "expired"),
        ({"aud": "another-api"}, "wrong audience"),
        ({"iss": "http://127.0.0.1:1/elsewhere"}, "wrong issuer"),
        ({"exp": None}, "no expiry"),
    ],
)
def test_tokens_whose_claims_do_not_hold_are_refused(rig: SsoRig, claims: dict[str, object], why: str) -> None:
    refused = chat(rig, rig.idp.mint(**claims))
    assert refused.status_code == 401, (why, refused.text)
    assert refused.json()["error"]["code"] in ("invalid_token", "invalid_api_key"), why


def test_tampered_and_unsigned_tokens_are_refused(rig: SsoRig) -> None:
    header, _payload, signature = rig.idp.mint().split(".")
    promoted = rig.idp.mint(roles=["sluice-batch", "sluice-admins"]).split(".")[1]
    assert chat(rig, f"{header}.{promoted}.{signature[::-1]}").status_code == 401
    assert chat(rig, f"{header}.{b64({'iss': rig.idp.issuer, 'aud': 'sluice'})}.{signature}").status_code == 401
    claims = {"iss": rig.idp.issuer, "aud": "sluice", "client_id": "ci-bot", "roles": ["sluice-batch"]}
    claims["exp"] = int(time.time()) + 300
    assert chat(rig, f"{b64({'alg': 'none'})}.{b64(claims)}.").status_code == 401
    assert chat(rig, f"{b64({'alg': 'HS256', 'kid': rig.idp.keys[0].kid})}.{b64(claims)}.c2ln").status_code == 401
    stranger = RSAKey.generate_key(2048, parameters={"kid": rig.idp.keys[0].kid}, private=True)
    assert chat(rig, rig.idp.mint(key=stranger)).status_code == 401  # right kid, wrong key


def test_key_rotation(rig: SsoRig) -> None:
    before = rig.idp.service_token()
    old_key = rig.idp.keys[0]
    assert chat(rig, before).status_code == 200
    rig.idp.rotate_keys()
    after = rig.idp.service_token()
    assert after.split(".")[0] != before.split(".")[0]  # another kid
    answered = chat(rig, after)  # an unknown kid: Sluice re-reads the provider's keys
    assert answered.status_code == 200, answered.text
    # The retired key's tokens stop, even unexpired.
    assert chat(rig, rig.idp.mint(key=old_key)).status_code == 401


def test_disabling_the_workspace_stops_its_service_tokens_at_once(rig: SsoRig) -> None:
    research = next(w["id"] for w in rig.admin.get("/workspaces").json() if w["name"] == "research")
    token = rig.idp.mint(roles=["research-bot"])
    assert rig.me(token).status_code == 200  # the workspace is now cached (for auth.user_cache_ttl_seconds)
    assert rig.admin.patch(f"/workspaces/{research}", json={"disabled": True}).status_code == 200
    try:
        refused = rig.me(token)
        assert refused.status_code == 403, refused.text
    finally:
        assert rig.admin.patch(f"/workspaces/{research}", json={"disabled": False}).status_code == 200
    assert rig.me(token).status_code == 200
