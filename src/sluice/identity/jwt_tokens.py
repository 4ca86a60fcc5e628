"""JWT access and refresh tokens: HS256 pinned server-side; ``exp``, ``nbf``, ``iat``, ``iss``, ``aud`` and the token
type all checked, so a refresh token can never act as an access token and ``alg: none`` or algorithm confusion fail.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from sluice.config import AuthConfig
from sluice.store.private import write_private

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
SECRET_FILE = "jwt_secret"
KNOWN_DEFAULTS = frozenset(
    {"secret", "changeme", "change-me", "change_me", "jwt-secret", "jwt_secret", "sluice", "default", "password"}
)

TokenType = Literal["access", "refresh"]


class TokenInvalid(Exception):
    """The token did not verify (signature, algorithm, times, issuer, audience or type)."""


class WeakSecret(Exception):
    """The configured signing secret is missing, a known default or too short."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    token_id: str
    token_type: TokenType
    workspace_id: str | None
    expires_at: float
    family: str | None = None


def secret_problem(secret: str | None) -> str | None:
    if not secret:
        return "auth.jwt_secret is not set"
    if secret.strip().lower() in KNOWN_DEFAULTS or len(secret.encode()) < MIN_SECRET_BYTES:
        return f"auth.jwt_secret is a default or shorter than {MIN_SECRET_BYTES} bytes"
    return None


def resolve_secret(config: AuthConfig, data_dir: Path, dev_mode: bool) -> str:
    """The signing secret; outside dev mode a missing or weak one refuses start-up (:class:`WeakSecret`).

    In dev mode (the embedded single-node default) a missing secret is generated once and kept in the data
    directory with owner-only permissions, like the master key.
    """
    configured = config.jwt_secret.get_secret_value() if config.jwt_secret else None
    problem = secret_problem(configured)
    if problem is None and configured is not None:
        return configured
    if not dev_mode:
        raise WeakSecret(f"{problem}: set SLUICE_JWT_SECRET to at least {MIN_SECRET_BYTES} random bytes")
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    write_private(path, secret + "\n")
    return secret


class TokenCodec:
    def __init__(self, secret: str, config: AuthConfig, clock: Any = time.time) -> None:
        self._secret = secret
        self.secret = secret  # also keys other signatures derived from it (the UI's session cookie)
        self._config = config
        self._clock = clock

    def issue(
        self, user_id: str, token_type: TokenType, workspace_id: str | None, family: str | None = None
    ) -> tuple[str, TokenClaims]:
        now = int(self._clock())
        ttl = self._config.access_ttl_seconds if token_type == "access" else self._config.refresh_ttl_seconds
        claims = TokenClaims(user_id, secrets.token_hex(16), token_type, workspace_id, now + ttl, family)
        payload: dict[str, Any] = {
            "iss": self._config.jwt_issuer,
            "aud": self._config.jwt_audience,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": claims.expires_at,
            "jti": claims.token_id,
            "typ": token_type,
        }
        if workspace_id is not None:
            payload["ws"] = workspace_id
        if family is not None:
            payload["fam"] = family
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def verify(self, token: str, expected: TokenType) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._config.jwt_audience,
                issuer=self._config.jwt_issuer,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "typ"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(type(exc).__name__) from None
        if payload.get("typ") != expected:
            raise TokenInvalid("wrong token type")
        workspace = payload.get("ws")
        family = payload.get("fam")
        return TokenClaims(
            user_id=str(payload["sub"]),
            token_id=str(payload["jti"]),
            token_type=expected,
            workspace_id=str(workspace) if workspace is not None else None,
            expires_at=float(payload["exp"]),
            family=str(family) if family is not None else None,
        )


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2
