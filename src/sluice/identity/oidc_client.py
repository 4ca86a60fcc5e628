"""The relying party's side of the authorization code flow with PKCE, for one provider (Authlib's OAuth 2 client).

:meth:`OidcClient.authorization_url` sends the browser to the provider with a fresh ``state``, ``nonce`` and PKCE
challenge (S256); :meth:`OidcClient.redeem` trades the code that comes back for tokens and verifies the ID token:
signature by the provider's keys under a pinned algorithm, ``iss``, ``aud`` (this client), ``azp``, ``exp``,
``iat`` and the ``nonce`` the sign-in started with. The one-time use of ``state`` is the store's (sso_service).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2 import OAuth2Error

from sluice.config_sso import OidcProviderConfig
from sluice.errors import AuthenticationFailed
from sluice.identity.oidc_keys import IssuerMetadata, ProviderUnavailable, TokenRejected, verify_jwt

log = structlog.get_logger("sluice.sso")

ID_TOKEN_LEEWAY = 60  # seconds of clock difference tolerated between Sluice and the provider


@dataclass(frozen=True, slots=True)
class StartedLogin:
    url: str  # where to send the browser
    state: str
    nonce: str
    code_verifier: str


def new_login_secrets() -> tuple[str, str, str]:
    """``state``, ``nonce`` and a PKCE ``code_verifier`` (RFC 7636: 43-128 characters)."""
    return secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)


class OidcClient:
    def __init__(self, config: OidcProviderConfig, metadata: IssuerMetadata) -> None:
        self.config = config
        self.metadata = metadata

    def _oauth(self, redirect_uri: str) -> AsyncOAuth2Client:
        secret = self.config.client_secret.get_secret_value() if self.config.client_secret else None
        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=" ".join(self.config.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.config.timeout_seconds,
        )

    async def authorization_url(self, redirect_uri: str) -> StartedLogin:
        discovery = await self.metadata.discovery()
        state, nonce, verifier = new_login_secrets()
        async with self._oauth(redirect_uri) as oauth:
            url, _ = oauth.create_authorization_url(
                discovery.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
            )
        return StartedLogin(str(url), state, nonce, verifier)

    async def redeem(self, code: str, code_verifier: str, nonce: str, redirect_uri: str) -> dict[str, Any]:
        """The verified ID token's claims (with the userinfo's when the ID token lacks the user or groups claim)."""
        discovery = await self.metadata.discovery()
        async with self._oauth(redirect_uri) as oauth:
            try:
                tokens = await oauth.fetch_token(
                    discovery.token_endpoint, code=code, code_verifier=code_verifier, grant_type="authorization_code"
                )
            except (OAuth2Error, OAuthError) as exc:
                log.info("code exchange refused", provider=self.config.name, error=str(exc.error))
                raise AuthenticationFailed(
                    "The identity provider refused the sign-in; start again.", code="sso_code_refused"
                ) from None
            except httpx.HTTPError as exc:
                raise ProviderUnavailable("The identity provider's token endpoint could not be reached.") from exc
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise AuthenticationFailed("The identity provider sent no ID token.", code="sso_no_id_token")
        claims = await self.verify_id_token(id_token, nonce)
        if self._lacks_claims(claims) and discovery.userinfo_endpoint and isinstance(tokens.get("access_token"), str):
            claims = {**await self._userinfo(discovery.userinfo_endpoint, tokens["access_token"], claims), **claims}
        return claims

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            claims = await verify_jwt(
                id_token,
                self.metadata,
                audience=self.config.client_id,
                algorithms=self.config.algorithms,
                leeway=ID_TOKEN_LEEWAY,
            )
            several = isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1
            if several and claims.get("azp") != self.config.client_id:
                raise TokenRejected("azp is not this client")
            if not isinstance(claims.get("sub"), str) or not claims["sub"]:
                raise TokenRejected("no subject")
            if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
                raise TokenRejected("nonce mismatch (a replayed or foreign ID token)")
        except TokenRejected as exc:
            log.warning("ID token refused", provider=self.config.name, reason=str(exc))
            raise AuthenticationFailed(
                "The identity provider's ID token did not verify.", code="sso_invalid_id_token"
            ) from None
        return claims

    def _lacks_claims(self, claims: dict[str, Any]) -> bool:
        return self.config.user_claim not in claims or (
            bool(self.config.mappings) and self.config.groups_claim not in claims
        )

    async def _userinfo(self, endpoint: str, access_token: str, id_claims: dict[str, Any]) -> dict[str, Any]:
        http = self.metadata.http
        try:
            response = await http.get(endpoint, headers={"authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable("The identity provider's userinfo endpoint could not be reached.") from exc
        if response.status_code != 200:
            return {}
        try:
            info = response.json()
        except ValueError:
            return {}
        # The userinfo answer is only about the ID token's subject (OpenID Connect Core 5.3.2).
        return info if isinstance(info, dict) and info.get("sub") == id_claims.get("sub") else {}


async def end_session_url(metadata: IssuerMetadata, client_id: str, after_logout: str | None) -> str | None:
    """The provider's RP-initiated logout URL for this client, if it has an end-session endpoint."""
    discovery = await metadata.discovery()
    if discovery.end_session_endpoint is None:
        return None
    params = {"client_id": client_id}
    if after_logout:
        params["post_logout_redirect_uri"] = after_logout
    return str(httpx.URL(discovery.end_session_endpoint, params=params))
