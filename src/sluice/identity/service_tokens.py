"""Service tokens: a JWT access token from a configured issuer (client credentials) used instead of a Sluice key.

The token's unverified ``iss`` picks the configured issuer (any other JWT goes on to Sluice's own sessions); then
the signature is checked with that issuer's keys under its pinned algorithms, and ``aud``, ``exp``, ``nbf`` and
``iat`` must hold. Its ``claim`` (``roles`` by default) is mapped to a workspace, role and priority class; the
resulting principal (kind ``service``) meets limits, budgets, the queue and usage records like any other.
Workspaces are read from the database at most once per ``auth.user_cache_ttl_seconds`` and forgotten when an admin
changes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog
from sqlalchemy import select

from sluice.config_sso import ServiceTokenIssuer, SsoConfig
from sluice.errors import AuthenticationFailed, PermissionDenied
from sluice.identity.lookups import OUTAGE_RECHECK_SECONDS, SharedLookups, StoreUnavailable, auth_unavailable
from sluice.identity.oidc_keys import IssuerMetadata, TokenRejected, unverified_parts, verify_jwt
from sluice.identity.principal import DEFAULT_PRIORITY, Principal
from sluice.identity.sso_mapping import claim_values, map_claims
from sluice.store.db import Database
from sluice.store.models import Workspace

log = structlog.get_logger("sluice.sso")

INVALID = "Invalid or expired service token."


@dataclass(frozen=True, slots=True)
class _WorkspaceView:
    id: str
    priority: str | None
    allowed_models: frozenset[str] | None


class ServiceTokens:
    def __init__(
        self, db: Database, config: SsoConfig, cache_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self._issuers: dict[str, tuple[ServiceTokenIssuer, IssuerMetadata]] = {}
        for issuer in config.service_tokens:
            metadata = IssuerMetadata(
                issuer.issuer,
                self.http,
                jwks_uri=issuer.jwks_uri,
                cache_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
            )
            self._issuers[metadata.issuer] = (issuer, metadata)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._workspaces: dict[str, tuple[_WorkspaceView | None, float]] = {}
        # A workspace lookup waits at most the database's request deadline (see identity/lookups.py).
        self._lookups: SharedLookups[str, _WorkspaceView | None] = SharedLookups(db.request_deadline)

    @property
    def configured(self) -> bool:
        return bool(self._issuers)

    def issuer_of(self, token: str) -> str | None:
        """The configured issuer a JWT claims to come from, or None (then it is not a service token)."""
        try:
            _header, claims = unverified_parts(token)
        except TokenRejected:
            return None
        iss = claims.get("iss")
        key = iss.rstrip("/") if isinstance(iss, str) else None
        return key if key in self._issuers else None

    async def authenticate(self, token: str, issuer_key: str) -> Principal:
        config, metadata = self._issuers[issuer_key]
        try:
            claims = await verify_jwt(
                token, metadata, audience=config.audience, algorithms=config.algorithms, leeway=config.leeway_seconds
            )
        except TokenRejected as exc:
            log.info("service token refused", issuer=config.name, reason=str(exc))
            raise AuthenticationFailed(INVALID, code="invalid_token") from None
        subject = claims.get(config.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed(INVALID, code="invalid_token")
        access = map_claims(
            claim_values(claims, config.claim), config.mappings, config.default_workspace, config.default_role
        )
        workspace = None
        role = "member"
        for grant in access.grants:  # the first configured rule whose workspace exists
            workspace = await self._workspace(grant.workspace)
            if workspace is not None:
                role = grant.role
                break
        if workspace is None:
            raise PermissionDenied("This service token's roles give no access to this gateway.", code="no_access")
        return Principal(
            kind="service",
            id=f"{config.name}:{subject}"[:128],
            role=role,
            workspace_id=workspace.id,
            priority=access.priority or workspace.priority or DEFAULT_PRIORITY,
            allowed_models=workspace.allowed_models,
            label=f"service:{config.name}:{subject}"[:128],
            expires_at=float(claims["exp"]),
        )

    async def _workspace(self, ref: str) -> _WorkspaceView | None:
        cached = self._workspaces.get(ref)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        if cached is not None and self._lookups.running(ref):
            return cached[0]  # a refresh is under way: a workspace already trusted does not wait for it
        try:
            return await self._lookups.wait(ref, lambda: self._load_and_remember(ref))
        except StoreUnavailable as exc:
            if cached is not None:  # the database is down or hung: a workspace already trusted keeps working
                self._workspaces[ref] = (cached[0], self._clock() + OUTAGE_RECHECK_SECONDS)
                return cached[0]
            raise auth_unavailable("Cannot verify the service token right now; try again shortly.") from exc

    async def _load_and_remember(self, ref: str) -> _WorkspaceView | None:
        view = await self._load_workspace(ref)
        self._workspaces[ref] = (view, self._clock() + self._cache_seconds)
        return view

    async def _load_workspace(self, ref: str) -> _WorkspaceView | None:
        async with self.db.session() as session:
            workspace = await session.get(Workspace, ref)
            if workspace is None:
                workspace = (await session.execute(select(Workspace).where(Workspace.name == ref))).scalar_one_or_none()
            if workspace is None or workspace.disabled_at is not None:
                return None
            allowed = frozenset(workspace.allowed_models) if workspace.allowed_models is not None else None
            return _WorkspaceView(workspace.id, workspace.priority, allowed)

    def forget(self) -> None:
        self._workspaces.clear()

    async def close(self) -> None:
        await self._lookups.close()
        await self.http.aclose()
