"""Finding the caller's credentials in a request and turning them into a Principal."""

from __future__ import annotations

from sluice.errors import AuthenticationFailed
from sluice.identity.keys import KeyResolver
from sluice.identity.principal import Principal
from sluice.server.exchange import Exchange


def presented_token(ex: Exchange) -> str | None:
    """A bearer token (OpenAI, Ollama clients) or ``x-api-key`` (Anthropic clients)."""
    auth = ex.header(b"authorization")
    if auth is not None:
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip().decode("latin-1")
    key = ex.header(b"x-api-key") or ex.header(b"api-key")
    if key is not None and key.strip():
        return key.strip().decode("latin-1")
    return None


class Authenticator:
    def __init__(self, keys: KeyResolver) -> None:
        self.keys = keys

    async def identify(self, ex: Exchange) -> Principal:
        token = presented_token(ex)
        if token is None:
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                code="missing_api_key",
            )
        return await self.keys.authenticate(token)
