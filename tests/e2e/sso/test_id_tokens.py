"""ID tokens from the real provider through Sluice's relying party: a good one verifies; one replayed into another
sign-in (its nonce), tampered, for another client, from another issuer, expired or unsigned is refused."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sluice.config_sso import OidcProviderConfig
from sluice.errors import AuthenticationFailed
from sluice.identity.oidc_client import OidcClient
from sluice.identity.oidc_keys import IssuerMetadata
from tests.e2e.sso.conftest import PROVIDER, SsoRig, callback_url
from tests.e2e.sso.idp import CLIENT_ID, CLIENT_SECRET


@dataclass
class SignedIn:
    client: OidcClient
    id_token: str
    nonce: str


def relying_party(rig: SsoRig, http: httpx.AsyncClient, client_id: str = CLIENT_ID) -> OidcClient:
    config = OidcProviderConfig(
        name=PROVIDER,
        issuer=rig.idp.issuer,
        client_id=client_id,
        client_secret=SecretStr(CLIENT_SECRET),
        scopes=["openid", "email", "profile", "groups"],
    )
    return OidcClient(config, IssuerMetadata(rig.idp.issuer, http, min_refresh_seconds=0))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def sign_in(rig: SsoRig, http: httpx.AsyncClient, login: str) -> SignedIn:
    """A whole code flow at the provider, the tokens fetched by hand to keep the raw ID token."""
    client = relying_party(rig, http)
    redirect = callback_url(rig.url)
    started = await client.authorization_url(redirect)
    with rig.browser_client() as browser:
        location = httpx.URL(rig.idp.walk(browser, started.url, login, stop_at=redirect))
    assert location.params["state"] == started.state
    tokens = await http.post(
        f"{rig.idp.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": location.params["code"],
            "redirect_uri": redirect,
            "code_verifier": started.code_verifier,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert tokens.status_code == 200, tokens.text
    return SignedIn(client, str(tokens.json()["id_token"]), started.nonce)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def refused(client: OidcClient, token: str, nonce: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        await client.verify_id_token(token, nonce)
    assert caught.value.code == "sso_invalid_id_token"


async def test_a_good_id_token_verifies_with_its_claims(rig: SsoRig, http: httpx.AsyncClient) -> None:
    rig.idp.set_account("ivan", ["llm-users", "research"])
    signed = await sign_in(rig, http, "ivan")
    claims = await signed.client.verify_id_token(signed.id_token, signed.nonce)
    assert claims["sub"] == "ivan" and claims["email"] == "ivan@example.com"
    assert claims["groups"] == ["llm-users", "research"] and claims["aud"] == CLIENT_ID


async def test_an_id_token_replayed_into_another_sign_in_fails_its_nonce(rig: SsoRig, http: httpx.AsyncClient) -> None:
    rig.idp.set_account("judy", ["llm-users"])
    first = await sign_in(rig, http, "judy")
    second = await sign_in(rig, http, "judy")
    await refused(second.client, first.id_token, second.nonce)


async def test_tampered_foreign_expired_and_unsigned_id_tokens_are_refused(
    rig: SsoRig, http: httpx.AsyncClient
) -> None:
    rig.idp.set_account("kim", ["llm-users"])
    signed = await sign_in(rig, http, "kim")
    header, payload, signature = signed.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    await refused(signed.client, f"{header}.{b64({**claims, 'sub': 'admin'})}.{signature}", signed.nonce)
    # Another client's relying party: the audience is not it.
    await refused(relying_party(rig, http, "another-client"), signed.id_token, signed.nonce)
    now = int(time.time())
    good = {**claims, "iat": now, "exp": now + 300}
    assert await signed.client.verify_id_token(rig.idp.mint(**good), signed.nonce)  # the minting itself is sound
    await refused(signed.client, rig.idp.mint(**{**good, "iss": "http://127.0.0.1:1"}), signed.nonce)
    await refused(signed.client, rig.idp.mint(**{**good, "exp": now - 120}), signed.nonce)  # past the leeway
    await refused(signed.client, f"{b64({'alg': 'none'})}.{b64(good)}.", signed.nonce)


async def test_a_code_is_redeemed_once(rig: SsoRig, http: httpx.AsyncClient) -> None:
    rig.idp.set_account("leo", ["llm-users"])
    client = relying_party(rig, http)
    redirect = callback_url(rig.url)
    started = await client.authorization_url(redirect)
    with rig.browser_client() as browser:
        code = httpx.URL(rig.idp.walk(browser, started.url, "leo", stop_at=redirect)).params["code"]
    claims = await client.redeem(code, started.code_verifier, started.nonce, redirect)
    assert claims["sub"] == "leo"
    with pytest.raises(AuthenticationFailed) as caught:
        await client.redeem(code, started.code_verifier, started.nonce, redirect)
    assert caught.value.code == "sso_code_refused"
