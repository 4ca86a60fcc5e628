"""Token checks against an issuer's keys: pinned algorithms, issuer, audience, times, and key rotation."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from sluice.identity.oidc_keys import IssuerMetadata, ProviderUnavailable, TokenRejected, verify_jwt

ISSUER = "https://idp.example.com"


class FakeIssuer:
    """Discovery and JWKS answered from memory, with a count of key fetches."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)]
        self.jwks_fetches = 0
        self.up = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                },
            )
        self.jwks_fetches += 1
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})

    def token(self, key: RSAKey | None = None, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "sluice", "sub": "svc", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        key = key or self.keys[0]
        return jwt.encode({"alg": alg, "kid": key.kid}, body, key)


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


def metadata(issuer: FakeIssuer, min_refresh: float = 0.0, cache: float = 3600) -> IssuerMetadata:
    http = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler))
    return IssuerMetadata(ISSUER, http, cache_seconds=cache, min_refresh_seconds=min_refresh)


async def check(meta: IssuerMetadata, token: str) -> dict[str, Any]:
    return await verify_jwt(token, meta, audience="sluice", algorithms=["RS256"])


async def test_a_good_token_verifies(issuer: FakeIssuer) -> None:
    claims = await check(metadata(issuer), issuer.token())
    assert claims["sub"] == "svc"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example.com"}, "wrong issuer"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"exp": None}, "no expiry"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"iat": int(time.time()) + 600}, "issued in the future"),
    ],
)
async def test_claims_that_do_not_hold_are_refused(issuer: FakeIssuer, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        await check(metadata(issuer), issuer.token(**claims))


async def test_tampered_payload_fails_the_signature(issuer: FakeIssuer) -> None:
    header, payload, signature = issuer.token().split(".")
    forged = jwt.encode({"alg": "RS256"}, {"sub": "admin"}, issuer.keys[0]).split(".")[1]
    with pytest.raises(TokenRejected, match="signature"):
        await check(metadata(issuer), f"{header}.{forged}.{signature}")
    assert payload != forged


async def test_alg_none_and_hmac_with_the_public_key_are_refused(issuer: FakeIssuer) -> None:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "sluice", "sub": "svc", "exp": now + 300}
    with pytest.raises(TokenRejected, match="algorithm 'none'"):
        await check(metadata(issuer), f"{b64({'alg': 'none'})}.{b64(claims)}.")
    with pytest.raises(TokenRejected, match="algorithm 'HS256'"):
        await check(metadata(issuer), f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{b64(claims)}.c2ln")


async def test_a_token_from_an_unknown_key_is_refused(issuer: FakeIssuer) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)  # same kid, other key
    with pytest.raises(TokenRejected, match="signature"):
        await check(metadata(issuer), issuer.token(key=stranger))


async def test_rotation_reloads_the_keys_on_an_unknown_kid(issuer: FakeIssuer) -> None:
    meta = metadata(issuer)
    await check(meta, issuer.token())
    assert issuer.jwks_fetches == 1
    issuer.keys = [RSAKey.generate_key(2048, parameters={"kid": "k2"}, private=True)]
    claims = await check(meta, issuer.token())
    assert claims["sub"] == "svc" and issuer.jwks_fetches == 2
    await check(meta, issuer.token())
    assert issuer.jwks_fetches == 2  # the new key is cached


async def test_unknown_kids_refresh_at_most_once_per_interval(issuer: FakeIssuer) -> None:
    meta = metadata(issuer, min_refresh=3600)
    await check(meta, issuer.token())
    stranger = RSAKey.generate_key(2048, parameters={"kid": "made-up"}, private=True)
    for _ in range(5):
        with pytest.raises(TokenRejected):
            await check(meta, issuer.token(key=stranger))
    assert issuer.jwks_fetches == 1


async def test_held_keys_outlive_an_outage_and_none_held_fails_closed(issuer: FakeIssuer) -> None:
    meta = metadata(issuer, cache=0)  # every check re-reads the keys
    await check(meta, issuer.token())
    issuer.up = False
    assert (await check(meta, issuer.token()))["sub"] == "svc"
    assert issuer.jwks_fetches == 1  # the second read failed; the held keys verified
    with pytest.raises(ProviderUnavailable):
        await check(metadata(issuer), issuer.token())
