"""Start-up work for identity: the first admin from the environment, and loading the IP rules and trusted proxies."""

from __future__ import annotations

import structlog
from sqlalchemy import select

from sluice.config import AuthConfig, Settings
from sluice.identity.accounts import normalise_email, user_image
from sluice.identity.audit import Actor, audit
from sluice.identity.network import NetworkRules
from sluice.identity.passwords import hash_password, password_problem
from sluice.identity.runtime_settings import trusted_proxies
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, IpRule, Membership, User

log = structlog.get_logger("sluice.identity")


async def create_admin(db: Database, email: str, password: str, actor: Actor) -> User:
    """Create a gateway admin (or promote an existing account with that email and set its password)."""
    email = normalise_email(email)
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
        before = user_image(user) if user else None
        if user is None:
            user = User(email=email, password_hash=hash_password(password), status="active", is_admin=True)
            session.add(user)
            await session.flush()
            session.add(Membership(user_id=user.id, workspace_id=DEFAULT_WORKSPACE_ID, role="owner"))
        else:
            user.is_admin, user.status, user.password_hash = True, "active", hash_password(password)
        audit(session, actor, "user.create_admin", "user", user.id, before=before, after=user_image(user))
    return user


async def ensure_first_admin(db: Database, config: AuthConfig) -> None:
    """``auth.admin_email`` + ``auth.admin_password``: create that admin on first start if there is no admin."""
    if not config.admin_email or config.admin_password is None:
        return
    async with db.session() as session:
        exists = (await session.execute(select(User.id).where(User.is_admin.is_(True)).limit(1))).first()
    if exists is not None:
        return
    await create_admin(db, config.admin_email, config.admin_password.get_secret_value(), Actor("bootstrap"))
    log.info("created the first admin from the environment")


async def load_network_rules(db: Database, settings: Settings) -> tuple[NetworkRules, list[str]]:
    """The compiled IP rules and the trusted proxies in force (the stored list, else the configuration's)."""
    async with db.session() as session:
        rows = (await session.execute(select(IpRule))).scalars().all()
        proxies = await trusted_proxies(session, settings)
    return NetworkRules.compile(rows), proxies
