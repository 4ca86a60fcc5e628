"""Single sign-on for people: start a sign-in at a provider, finish it when the browser comes back, hand the UI its
session, and offer the provider's logout.

A started sign-in is stored by the hash of its ``state`` with its nonce and PKCE verifier; the callback claims it
once (a conditional UPDATE), so a replayed or forged ``state`` is refused, and an ID token from another sign-in
fails its nonce check. The session that follows is Sluice's own token pair, exactly as after a password login. For
the web UI the callback hands over a single-use ticket instead of tokens in a URL; the UI redeems it server-side.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from sluice.config_sso import OidcProviderConfig, SsoConfig
from sluice.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from sluice.identity.accounts import Accounts, TokenPair, normalise_email
from sluice.identity.invalidation import Announce
from sluice.identity.oidc_client import OidcClient, end_session_url
from sluice.identity.oidc_keys import IssuerMetadata
from sluice.identity.sso_mapping import claim_values, map_claims
from sluice.identity.sso_provisioning import Provisioned, SignedInPerson, provision
from sluice.store.db import Database
from sluice.store.models import SsoIdentity, SsoLogin
from sluice.store.types import utcnow

log = structlog.get_logger("sluice.sso")

TICKET_TTL = timedelta(minutes=2)
STALE_AFTER = timedelta(hours=1)  # expired sign-ins are kept this long (a replayed state still reads "used")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished sign-in: tokens (an API client) or a single-use ticket for the web UI."""

    tokens: TokenPair | None = None
    ticket: str | None = None


class SsoService:
    def __init__(self, db: Database, config: SsoConfig, accounts: Accounts, announce: Announce) -> None:
        self.db = db
        self.config = config
        self.accounts = accounts
        self.announce = announce
        self.http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self.clients: dict[str, OidcClient] = {}
        for provider in config.providers:
            metadata = IssuerMetadata(
                provider.issuer,
                self.http,
                cache_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
            )
            self.clients[provider.name] = OidcClient(provider, metadata)

    async def close(self) -> None:
        await self.http.aclose()

    def providers(self) -> list[OidcProviderConfig]:
        return list(self.config.providers)

    def client(self, name: str) -> OidcClient:
        client = self.clients.get(name)
        if client is None:
            raise NotFound(f"No single sign-on provider named {name!r}.", code="sso_provider_not_found")
        return client

    async def start(self, name: str, redirect_uri: str, for_ui: bool) -> str:
        """Where to send the browser to sign in at provider ``name``."""
        client = self.client(name)
        started = await client.authorization_url(redirect_uri)
        now = utcnow()
        async with self.db.session() as session:
            # Sign-ins that were never finished (or whose ticket was spent) go as new ones start: one indexed delete.
            await session.execute(
                delete(SsoLogin)
                .where(SsoLogin.expires_at < now - STALE_AFTER)
                .execution_options(synchronize_session=False)
            )
            session.add(
                SsoLogin(
                    state_hash=_digest(started.state),
                    provider=name,
                    nonce=started.nonce,
                    code_verifier=started.code_verifier,
                    for_ui=for_ui,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.config.login_ttl_seconds),
                )
            )
        return started.url

    async def finish(self, name: str, code: str, state: str, redirect_uri: str) -> Finished:
        """Claim the started sign-in (once), redeem the code, provision the account, open its session."""
        client = self.client(name)
        login = await self._claim_state(name, state)
        claims = await client.redeem(code, login.code_verifier, login.nonce, redirect_uri)
        person = self._person(client.config, claims)
        result = await self._provision(client.config, person)
        if result.changed:
            await self.announce("user", result.user.id)  # sessions and keys follow the new access at once
        if not result.allowed:
            raise PermissionDenied("Your groups no longer give you access to this gateway.", code="sso_no_access")
        log.info("signed in through single sign-on", provider=name, user_id=result.user.id)
        if not login.for_ui:
            return Finished(tokens=await self.accounts.open_session(result.user.id, result.workspace_id))
        ticket = "sl-sso-" + secrets.token_urlsafe(32)
        async with self.db.session() as session:
            row = await session.get(SsoLogin, login.state_hash)
            assert row is not None
            row.ticket_hash, row.user_id, row.workspace_id = _digest(ticket), result.user.id, result.workspace_id
            row.expires_at = utcnow() + TICKET_TTL
        return Finished(ticket=ticket)

    async def _provision(self, config: OidcProviderConfig, person: SignedInPerson) -> Provisioned:
        """Provision in one unit of work; a first sign-in racing another for the same person (two tabs) loses on
        the unique email or identity and is provisioned again, now finding what the other made."""
        for attempt in range(2):
            try:
                async with self.db.session() as session:
                    return await provision(session, config, person)
            except IntegrityError:
                if attempt == 1:
                    raise
                log.info("first sign-in raced another for the same person; provisioning again", provider=config.name)
        raise AssertionError("unreachable")

    async def redeem_ticket(self, ticket: str) -> TokenPair:
        """The session a UI ticket stands for (once, within two minutes of the callback)."""
        now = utcnow()
        async with self.db.session() as session:
            claimed = await session.execute(
                update(SsoLogin)
                .where(
                    SsoLogin.ticket_hash == _digest(ticket),
                    SsoLogin.ticket_used_at.is_(None),
                    SsoLogin.expires_at > now,
                )
                .values(ticket_used_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                raise AuthenticationFailed(
                    "The sign-in ticket is invalid, expired or already used.", code="invalid_ticket"
                )
            row = (await session.execute(select(SsoLogin).where(SsoLogin.ticket_hash == _digest(ticket)))).scalar_one()
            user_id, workspace_id = row.user_id, row.workspace_id
        assert user_id is not None
        return await self.accounts.open_session(user_id, workspace_id)

    async def logout_url(self, user_id: str, after_logout: str | None) -> str | None:
        """The end-session URL of the provider this user last signed in with (None if none, or it has none)."""
        async with self.db.session() as session:
            query = (
                select(SsoIdentity.provider)
                .where(SsoIdentity.user_id == user_id, SsoIdentity.last_login_at.is_not(None))
                .order_by(SsoIdentity.last_login_at.desc())
                .limit(1)
            )
            name = (await session.execute(query)).scalar_one_or_none()
        client = self.clients.get(name or "")
        if client is None or not client.config.end_session:
            return None
        return await end_session_url(client.metadata, client.config.client_id, after_logout)

    async def _claim_state(self, name: str, state: str) -> SsoLogin:
        now = utcnow()
        async with self.db.session() as session:
            claimed = await session.execute(
                update(SsoLogin)
                .where(
                    SsoLogin.state_hash == _digest(state),
                    SsoLogin.provider == name,
                    SsoLogin.used_at.is_(None),
                    SsoLogin.expires_at > now,
                )
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                log.warning("single sign-on callback with an unknown, used or expired state", provider=name)
                raise AuthenticationFailed(
                    "This sign-in link is invalid, expired or already used; start again.", code="sso_invalid_state"
                )
            return (await session.execute(select(SsoLogin).where(SsoLogin.state_hash == _digest(state)))).scalar_one()

    @staticmethod
    def _person(config: OidcProviderConfig, claims: dict[str, object]) -> SignedInPerson:
        raw_email = claims.get(config.user_claim)
        if not isinstance(raw_email, str):
            raise AuthenticationFailed(
                f"The identity provider did not send the claim {config.user_claim!r} naming you.", code="sso_no_user"
            )
        try:
            email = normalise_email(raw_email)
        except InvalidRequest:
            raise AuthenticationFailed(
                f"The claim {config.user_claim!r} is not an email address.", code="sso_no_user"
            ) from None
        access = map_claims(
            claim_values(dict(claims), config.groups_claim),
            config.mappings,
            config.default_workspace,
            config.default_role,
        )
        return SignedInPerson(
            issuer=str(claims["iss"]).rstrip("/"),
            subject=str(claims["sub"]),
            email=email,
            email_verified=claims.get("email_verified") is True,
            access=access,
        )
