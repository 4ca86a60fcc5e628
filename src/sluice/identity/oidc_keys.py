"""An issuer's discovery document and signing keys (JWKS), fetched once and cached, re-read when they rotate.

Keys are re-read every ``sso.jwks_cache_seconds``, and at once when a token names a key id (``kid``) the cache
does not hold (the provider rotated its keys), at most every ``sso.jwks_min_refresh_seconds`` so a flood of
tokens with made-up key ids cannot make Sluice hammer the provider. While the provider cannot be reached, the
keys already held keep verifying; with none held, verification fails closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from sluice.errors import Overloaded

log = structlog.get_logger("sluice.sso")

DISCOVERY_PATH = "/.well-known/openid-configuration"


class ProviderUnavailable(Overloaded):
    """The identity provider could not be reached or answered nonsense."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="idp_unavailable")


@dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    userinfo_endpoint: str | None


async def fetch_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("identity provider unreachable", url=url, error=type(exc).__name__)
        raise ProviderUnavailable(f"The identity provider's {what} could not be fetched.") from None
    if response.status_code != 200:
        raise ProviderUnavailable(f"The identity provider's {what} answered {response.status_code}.")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"The identity provider's {what} is not a JSON object.")
    return body


class IssuerMetadata:
    """Discovery and keys of one issuer, shared by every sign-in and token check that names it."""

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        jwks_uri: str | None = None,
        cache_seconds: float = 3600.0,
        min_refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.http = http
        self._jwks_uri = jwks_uri
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._discovery: Discovery | None = None
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def discovery(self) -> Discovery:
        if self._discovery is None:
            doc = await fetch_json(self.http, self.issuer + DISCOVERY_PATH, "discovery document")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise ProviderUnavailable("The identity provider's discovery document names another issuer.")
            try:
                self._discovery = Discovery(
                    issuer=str(doc["issuer"]),
                    authorization_endpoint=str(doc["authorization_endpoint"]),
                    token_endpoint=str(doc["token_endpoint"]),
                    jwks_uri=str(doc["jwks_uri"]),
                    end_session_endpoint=_optional(doc.get("end_session_endpoint")),
                    userinfo_endpoint=_optional(doc.get("userinfo_endpoint")),
                )
            except KeyError as exc:
                raise ProviderUnavailable(f"The identity provider's discovery document lacks {exc.args[0]}.") from None
        return self._discovery

    async def keys(self, kid: str | None = None) -> KeySet:
        """The issuer's keys; re-read if stale, or if ``kid`` is not among them (a rotation)."""
        now = self._clock()
        keys = self._keys
        stale = keys is None or now - self._fetched_at >= self._cache_seconds
        unknown = keys is not None and kid is not None and not _holds(keys, kid)
        if stale or (unknown and now - self._fetched_at >= self._min_refresh):
            async with self._lock:
                if self._keys is keys:  # nobody refreshed while we waited
                    await self._refresh(keys)
        if self._keys is None:
            raise ProviderUnavailable("The identity provider's signing keys are not available.")
        return self._keys

    async def _refresh(self, held: KeySet | None) -> None:
        try:
            uri = self._jwks_uri or (await self.discovery()).jwks_uri
            document = await fetch_json(self.http, uri, "signing keys")
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (ProviderUnavailable, JoseError, ValueError, TypeError, KeyError) as exc:
            self._fetched_at = self._clock()  # back off for min_refresh either way
            if held is None:
                raise ProviderUnavailable("The identity provider's signing keys are not available.") from exc
            log.warning("keeping the signing keys held: refresh failed", issuer=self.issuer)
            return
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("identity provider keys loaded", issuer=self.issuer, keys=len(keys.keys))


def _holds(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _optional(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


class TokenRejected(Exception):
    """A JWT from an issuer did not verify; the message says which check failed (for logs and tests, not callers)."""


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWT, not verified (to pick the issuer and key); TokenRejected if garbled."""
    try:
        compact = extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise TokenRejected("malformed token") from exc
    if not isinstance(claims, dict):
        raise TokenRejected("malformed token")
    return dict(compact.protected), claims


async def verify_jwt(
    token: str,
    metadata: IssuerMetadata,
    *,
    audience: str,
    algorithms: list[str],
    leeway: int = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of ``token`` if its signature verifies with one of the issuer's keys under a pinned algorithm
    and its ``iss``, ``aud``, ``exp`` (required), ``nbf`` and ``iat`` hold; TokenRejected otherwise."""
    header, _claims = unverified_parts(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:  # "none", HS256 with the public key, anything unpinned
        raise TokenRejected(f"algorithm {alg!r} not allowed")
    kid = header.get("kid")
    keys = await metadata.keys(kid if isinstance(kid, str) else None)
    try:
        claims = jwt.decode(token, keys, algorithms=algorithms).claims
    except (JoseError, ValueError) as exc:
        raise TokenRejected(f"signature: {type(exc).__name__}") from None
    check_claims(claims, metadata.issuer, audience, leeway, time.time() if now is None else now)
    return claims


def check_claims(claims: dict[str, Any], issuer: str, audience: str, leeway: int, now: float) -> None:
    if str(claims.get("iss", "")).rstrip("/") != issuer:
        raise TokenRejected("wrong issuer")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise TokenRejected("wrong audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenRejected("no expiry")
    if now >= exp + leeway:
        raise TokenRejected("expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now < nbf - leeway:
        raise TokenRejected("not yet valid")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and iat > now + leeway:
        raise TokenRejected("issued in the future")
