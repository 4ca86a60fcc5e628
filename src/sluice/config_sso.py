"""Single sign-on settings: OpenID Connect providers people sign in with, and issuers of service tokens.

See docs/identity.md (Single sign-on). Secrets are written as environment references (``${KEYCLOAK_SECRET}``) like
every other secret in the file; issuers are discovered from ``<issuer>/.well-known/openid-configuration``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

SsoRole = Literal["admin", "owner", "member", "viewer"]
ROLE_RANK: dict[str, int] = {"viewer": 1, "member": 2, "owner": 3, "admin": 4}
# Asymmetric algorithms only: an HMAC algorithm would make the issuer's public key a shared secret (key confusion),
# and "none" is never accepted.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimMapping(_Strict):
    """Callers whose ``claim`` holds ``value`` get ``role`` in ``workspace`` (an id or a name), and ``priority``."""

    value: str = Field(min_length=1)
    workspace: str = "default"
    role: SsoRole = "member"
    priority: str | None = None


def _algorithms(value: list[str]) -> list[str]:
    bad = sorted(set(value) - SIGNING_ALGORITHMS)
    if bad:
        allowed = ", ".join(sorted(SIGNING_ALGORITHMS))
        raise ValueError(f"not an allowed signing algorithm: {', '.join(bad)} (allowed: {allowed})")
    if not value:
        raise ValueError("at least one algorithm is needed")
    return value


class OidcProviderConfig(_Strict):
    """One identity provider people sign in with (authorization code flow with PKCE, state and nonce)."""

    name: str  # in URLs: /admin/v1/auth/sso/<name>/start
    display_name: str | None = None  # the button's text: "Sign in with <display_name>"
    issuer: str  # discovery at <issuer>/.well-known/openid-configuration; the ID token's iss must equal it
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None  # None: a public client (PKCE only)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    user_claim: str = "email"  # the claim holding the user's email (Sluice names users by email)
    groups_claim: str = "groups"  # the claim (or dotted path) listing the groups or roles ``mappings`` match
    mappings: list[ClaimMapping] = Field(default_factory=list)
    default_workspace: str | None = None  # for a user in no mapped group; None: such a user may not sign in
    default_role: SsoRole = "member"
    jit: bool = True  # create the account on first sign-in; False: only accounts an admin created beforehand
    trust_email: bool = False  # link to an existing account by email even without email_verified: true
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    end_session: bool = True  # offer the provider's end_session_endpoint at logout when it has one
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("lower-case letters, digits, '-' and '_' only (at most 40)")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("an http(s) URL is needed")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        return value

    @field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, value: list[str]) -> list[str]:
        return _algorithms(value)

    @property
    def label(self) -> str:
        return self.display_name or self.name


class ServiceTokenIssuer(_Strict):
    """An issuer whose JWT access tokens (client credentials) are accepted instead of a Sluice key."""

    name: str
    issuer: str  # the token's iss must equal it
    audience: str = Field(min_length=1)  # the token's aud must contain it
    algorithms: list[str] = Field(default_factory=lambda: ["RS256"])
    jwks_uri: str | None = None  # None: from the issuer's discovery document
    subject_claim: str = "sub"  # names the calling service (in usage records: "service:<name>:<value>")
    claim: str = "roles"  # the claim or dotted path (a string or list) matched by ``mappings``
    mappings: list[ClaimMapping] = Field(default_factory=list)
    default_workspace: str | None = None  # for a token matching no mapping; None: refused
    default_role: SsoRole = "member"
    leeway_seconds: int = Field(30, ge=0, le=300)
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("lower-case letters, digits, '-' and '_' only (at most 40)")
        return value

    @field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, value: list[str]) -> list[str]:
        return _algorithms(value)


class SsoConfig(_Strict):
    password_login: bool = True  # False: nobody signs in with a password (SSO only; the master key still works)
    # How browsers reach Sluice, for the callback URL registered at the providers (https://llm.example.com);
    # None: the URL the sign-in request came to.
    public_url: str | None = None
    providers: list[OidcProviderConfig] = Field(default_factory=list)
    service_tokens: list[ServiceTokenIssuer] = Field(default_factory=list)
    login_ttl_seconds: int = Field(600, ge=30, le=3600)  # how long a started sign-in may take at the provider
    jwks_cache_seconds: float = Field(3600.0, ge=0)  # a provider's keys are re-read this often (and on a new kid)
    jwks_min_refresh_seconds: float = Field(10.0, ge=0)  # an unknown kid re-reads the keys at most this often

    @model_validator(mode="after")
    def _unique(self) -> SsoConfig:
        for what, names in (
            ("providers", [p.name for p in self.providers]),
            ("service_tokens", [s.name for s in self.service_tokens]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"sso.{what}: names must be unique: {', '.join(dup)}")
        return self

    def provider(self, name: str) -> OidcProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)
