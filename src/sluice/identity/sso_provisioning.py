"""The account behind a single sign-on: found by the provider's issuer and subject, linked by email the first time,
created just in time (or not, by setting), and its access re-mapped from the provider's groups at every sign-in.

Memberships the mapping makes are marked ``sso:<provider>``; the next sign-in takes away those the groups no longer
give (memberships an admin made by hand stay). The gateway-admin flag and the priority class follow the mapping
only when some rule of the provider names them. A provider with neither mappings nor a default workspace only
authenticates: the account's access is what admins gave it in Sluice. One unit of work; the caller announces a
change once committed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.config_sso import OidcProviderConfig
from sluice.errors import PermissionDenied
from sluice.identity.accounts import normalise_email
from sluice.identity.audit import Actor, audit
from sluice.identity.images import user_image
from sluice.identity.passwords import hash_password
from sluice.identity.sso_mapping import MappedAccess, membership_role
from sluice.identity.user_repository import UserRepository
from sluice.store.models import DEFAULT_WORKSPACE_ID, Membership, SsoIdentity, User, Workspace
from sluice.store.types import utcnow

log = structlog.get_logger("sluice.sso")


@dataclass(frozen=True, slots=True)
class SignedInPerson:
    """What the provider vouched for, already verified."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    access: MappedAccess


@dataclass(frozen=True, slots=True)
class Provisioned:
    user: User
    workspace_id: str | None  # the workspace the session opens in; None with ``allowed`` False
    changed: bool  # the user's access changed (announce it: sessions and keys follow)
    allowed: bool  # False: the groups give no access any more (memberships already taken away)


async def provision(session: AsyncSession, provider: OidcProviderConfig, person: SignedInPerson) -> Provisioned:
    users = UserRepository(session)
    actor = Actor(f"sso:{provider.name}")
    user, link = await _linked_user(session, users, provider, person)
    if user is None:
        user = await _first_sign_in(session, users, provider, person, actor)
        link = None
    if user.status == "pending":
        raise PermissionDenied("This account is waiting for an administrator's approval.", code="pending")
    if user.status != "active":
        raise PermissionDenied("This account is disabled.", code="account_disabled")
    if link is None:
        link = SsoIdentity(provider=provider.name, issuer=person.issuer, subject=person.subject, user_id=user.id)
        session.add(link)
    link.last_login_at = utcnow()
    before = {**user_image(user), "memberships": await _memberships_image(users, user.id)}
    workspaces = await _resolve(session, [g.workspace for g in person.access.grants])
    grants = [g for g in person.access.grants if g.workspace in workspaces]
    desired = {workspaces[g.workspace].id: membership_role(g.role) for g in grants}
    # A provider with no mapping and no default only authenticates: access stays as admins set it in Sluice.
    manages = bool(provider.mappings) or provider.default_workspace is not None
    if manages:
        await _remap(users, user.id, desired, f"sso:{provider.name}")
    if any(rule.role == "admin" for rule in provider.mappings):
        user.is_admin = person.access.is_admin
    if any(rule.priority is not None for rule in provider.mappings):
        user.priority = person.access.priority
    await session.flush()
    after = {**user_image(user), "memberships": await _memberships_image(users, user.id)}
    changed = before != after
    if changed:
        audit(session, actor, "user.sso_remap", "user", user.id, before=before, after=after)
    remaining = await users.memberships_of(user.id)
    allowed = bool(desired if manages else remaining) or user.is_admin
    workspace_id = next(iter(desired), None) or (DEFAULT_WORKSPACE_ID if user.is_admin else None)
    if allowed and workspace_id is None and remaining:
        workspace_id = remaining[0].workspace_id
    return Provisioned(user, workspace_id, changed, allowed)


async def _linked_user(
    session: AsyncSession, users: UserRepository, provider: OidcProviderConfig, person: SignedInPerson
) -> tuple[User | None, SsoIdentity | None]:
    """The user this identity was linked to, else the account with its email (linked only if the email is
    vouched for: ``email_verified`` or the provider's ``trust_email``)."""
    query = select(SsoIdentity).where(SsoIdentity.issuer == person.issuer, SsoIdentity.subject == person.subject)
    link = (await session.execute(query)).scalar_one_or_none()
    if link is not None:
        return await users.get(link.user_id), link
    user = await users.by_email(person.email)
    if user is not None and not (person.email_verified or provider.trust_email):
        raise PermissionDenied(
            "An account with this email exists, but the identity provider does not vouch for the email "
            "(email_verified); ask an administrator.",
            code="sso_email_unverified",
        )
    return user, None


async def _first_sign_in(
    session: AsyncSession, users: UserRepository, provider: OidcProviderConfig, person: SignedInPerson, actor: Actor
) -> User:
    if not provider.jit:
        raise PermissionDenied(
            "There is no account for you on this gateway yet; ask an administrator to create it.", code="sso_no_account"
        )
    if person.access.empty:
        raise PermissionDenied("Your groups give you no access to this gateway.", code="sso_no_access")
    # No password: the account signs in through its provider (an admin may hand a reset link later).
    user = await users.add(
        User(
            email=normalise_email(person.email),
            password_hash=hash_password(secrets.token_urlsafe(32)),
            status="active",
            password_login=False,
        )
    )
    audit(session, actor, "user.create", "user", user.id, after={**user_image(user), "provider": provider.name})
    log.info("account created at first sign-in", provider=provider.name, user_id=user.id)
    return user


async def _resolve(session: AsyncSession, refs: list[str]) -> dict[str, Workspace]:
    """Configured workspace references (ids or names) → the workspaces that exist; unknown ones are logged."""
    found: dict[str, Workspace] = {}
    for ref in dict.fromkeys(refs):
        workspace = await session.get(Workspace, ref)
        if workspace is None:
            workspace = (await session.execute(select(Workspace).where(Workspace.name == ref))).scalar_one_or_none()
        if workspace is None or workspace.disabled_at is not None:
            log.warning("a mapped workspace does not exist or is disabled", workspace=ref)
            continue
        found[ref] = workspace
    return found


async def _remap(users: UserRepository, user_id: str, desired: dict[str, str], source: str) -> None:
    """Memberships to ``desired`` (workspace id → role): add, change and take over; drop this source's others."""
    for member in await users.memberships_of(user_id):
        role = desired.get(member.workspace_id)
        if role is None:
            if member.source == source:
                await users.remove_membership(member)
            continue
        member.role, member.source = role, source
    existing = {m.workspace_id for m in await users.memberships_of(user_id)}
    for workspace_id, role in desired.items():
        if workspace_id not in existing:
            users.add_membership(user_id, workspace_id, role).source = source


async def _memberships_image(users: UserRepository, user_id: str) -> dict[str, str]:
    members: list[Membership] = list(await users.memberships_of(user_id))
    return {m.workspace_id: m.role for m in members}
