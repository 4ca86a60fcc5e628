"""Finding the caller's credentials in a request and turning them into a Principal.

One path for every surface and the admin API: an API key (``sk-sl-…``, or the master key), a user's JWT access
token, a service token from a configured identity provider (:mod:`sluice.identity.service_tokens`), or
— with no credentials at all — an anonymous IP rule. IP rules are checked against the client address (see
:mod:`sluice.identity.network`); with no rules configured the address is never even computed.
"""

from __future__ import annotations

from sluice.errors import AuthenticationFailed, PermissionDenied
from sluice.identity.jwt_tokens import looks_like_jwt
from sluice.identity.keys import KeyResolver
from sluice.identity.network import BROWSER_HEADER, NetworkRules, TrustedProxies
from sluice.identity.principal import Principal
from sluice.identity.service_tokens import ServiceTokens
from sluice.identity.users import UserResolver
from sluice.server.exchange import Exchange

MISSING = "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."


def token_from_headers(authorization: bytes | None, api_key: bytes | None) -> str | None:
    """A bearer token (OpenAI, Ollama clients) or ``x-api-key`` (Anthropic clients)."""
    if authorization is not None:
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip().decode("latin-1")
    if api_key is not None and api_key.strip():
        return api_key.strip().decode("latin-1")
    return None


def presented_token(ex: Exchange) -> str | None:
    return token_from_headers(ex.header(b"authorization"), ex.header(b"x-api-key") or ex.header(b"api-key"))


class Authenticator:
    def __init__(
        self,
        keys: KeyResolver,
        users: UserResolver | None = None,
        proxies: TrustedProxies | None = None,
        services: ServiceTokens | None = None,
    ) -> None:
        self.keys = keys
        self.users = users
        self.services = services if services is not None and services.configured else None
        # Both replaced as a whole when IP rules or the trusted proxies change (never mutated in place).
        self.proxies = proxies or TrustedProxies([])
        self.rules = NetworkRules()

    async def identify(self, ex: Exchange) -> Principal:
        return await self.identify_token(
            presented_token(ex), ex.client_host, ex.header(b"x-forwarded-for"), ex.header(BROWSER_HEADER)
        )

    async def identify_token(
        self, token: str | None, peer: str | None, forwarded_for: bytes | None, browser: bytes | None = None
    ) -> Principal:
        rules = self.rules
        if token is None:
            if rules.anonymous:
                principal = rules.anonymous_principal(self.proxies.client_address(peer, forwarded_for, browser))
                if principal is not None:
                    return principal
            raise AuthenticationFailed(MISSING, code="missing_api_key")
        if self.services is not None and looks_like_jwt(token) and (issuer := self.services.issuer_of(token)):
            principal = await self.services.authenticate(token, issuer)
        elif self.users is not None and looks_like_jwt(token):
            principal = await self.users.authenticate(token)
        else:
            principal = await self.keys.authenticate(token)
        if not rules.empty and not rules.admits(principal, self.proxies.client_address(peer, forwarded_for, browser)):
            raise PermissionDenied(
                "Requests with these credentials are not allowed from your network.", code="ip_denied"
            )
        return principal
