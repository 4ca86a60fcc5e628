"""A key's effective role, models and priority follow its owner's standing now (issue 16 items 1, 3, 10).

Real SQLite; the resolver's cache is dropped the way an announcement drops it on every replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, event, update

from sluice.config import KeyCacheConfig
from sluice.errors import AuthenticationFailed
from sluice.identity.keys import KeyResolver
from sluice.identity.principal import Principal
from sluice.identity.standing import intersect_models, lower_priority, lower_role
from sluice.identity.subjects import Subjects
from sluice.store.db import Database
from sluice.store.models import Membership, User, Workspace
from tests.support.keys import create_key, revoke_key


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    await database.migrate()
    async with database.session() as session:
        session.add(Workspace(id="ws", name="ws"))
        session.add(User(id="owner", email="o@example.com", password_hash="x", status="active"))
        await session.flush()
        session.add(Membership(user_id="owner", workspace_id="ws", role="owner"))
    yield database
    await database.close()


async def resolve(resolver: KeyResolver, secret: str) -> Principal:
    resolver.forget()  # what ("user", id) / ("workspace", id) announcements do on every replica
    return await resolver.authenticate(secret)


def test_the_lower_of_two_grants_wins() -> None:
    assert lower_role("owner", "member") == "member"
    assert lower_role("admin", "owner") == "owner"
    assert lower_priority("interactive", "batch") == "batch"
    assert lower_priority("standard", "interactive") == "standard"
    assert intersect_models(None, frozenset({"a"})) == {"a"}
    assert intersect_models(frozenset({"a", "b"}), frozenset({"b", "c"})) == {"b"}
    assert intersect_models(None, None) is None


async def test_a_demoted_owners_key_drops_to_the_new_role(db: Database) -> None:
    key = await create_key(db, "k", workspace_id="ws", user_id="owner", role="owner", priority="interactive")
    resolver = KeyResolver(db, None, KeyCacheConfig())
    assert (await resolve(resolver, key.secret)).role == "owner"

    async with db.session() as session:
        await session.execute(update(Membership).where(Membership.user_id == "owner").values(role="member"))
    demoted = await resolve(resolver, key.secret)
    assert demoted.role == "member"
    assert demoted.priority == "standard"  # the owner's class now (user's, else workspace's, else standard)

    async with db.session() as session:
        await session.execute(update(User).where(User.id == "owner").values(priority="batch"))
    assert (await resolve(resolver, key.secret)).priority == "batch"


async def test_a_removed_or_disabled_owners_key_stops(db: Database) -> None:
    key = await create_key(db, "k", workspace_id="ws", user_id="owner", role="owner")
    resolver = KeyResolver(db, None, KeyCacheConfig())
    async with db.session() as session:
        await session.execute(update(User).where(User.id == "owner").values(status="disabled"))
    with pytest.raises(AuthenticationFailed):
        await resolve(resolver, key.secret)
    async with db.session() as session:
        await session.execute(update(User).where(User.id == "owner").values(status="active"))
    assert (await resolve(resolver, key.secret)).role == "owner"
    async with db.session() as session:
        await session.execute(delete(Membership).where(Membership.user_id == "owner"))
    with pytest.raises(AuthenticationFailed):
        await resolve(resolver, key.secret)
    assert await Subjects(db).role_of("key", key.key.id) is None  # limits see the same standing


async def test_a_gateway_admin_owner_keeps_the_keys_own_role_without_membership(db: Database) -> None:
    key = await create_key(db, "k", workspace_id="ws", user_id="owner", role="admin", priority="interactive")
    async with db.session() as session:
        await session.execute(delete(Membership).where(Membership.user_id == "owner"))
        await session.execute(update(User).where(User.id == "owner").values(is_admin=True))
    resolver = KeyResolver(db, None, KeyCacheConfig())
    principal = await resolve(resolver, key.secret)
    assert (principal.role, principal.priority) == ("admin", "interactive")
    async with db.session() as session:
        await session.execute(update(User).where(User.id == "owner").values(is_admin=False))
    with pytest.raises(AuthenticationFailed):  # no longer an admin, not a member
        await resolve(resolver, key.secret)


async def test_workspace_model_restrictions_reach_existing_keys(db: Database) -> None:
    everything = await create_key(db, "all", workspace_id="ws")
    some = await create_key(db, "some", workspace_id="ws", allowed_models=["a", "b"])
    resolver = KeyResolver(db, None, KeyCacheConfig())
    assert (await resolve(resolver, everything.secret)).allowed_models is None
    async with db.session() as session:
        await session.execute(update(Workspace).where(Workspace.id == "ws").values(allowed_models=["b", "c"]))
    assert (await resolve(resolver, everything.secret)).allowed_models == {"b", "c"}
    assert (await resolve(resolver, some.secret)).allowed_models == {"b"}


async def test_revoked_and_unknown_keys_run_the_same_single_query(db: Database) -> None:
    revoked = await create_key(db, "r", workspace_id="ws", user_id="owner")
    await revoke_key(db, revoked.key.id)
    resolver = KeyResolver(db, None, KeyCacheConfig())
    statements: list[tuple[str, object]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: object, *_rest: object) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    for secret in (revoked.secret, "sk-sl-" + "x" * 43):
        with pytest.raises(AuthenticationFailed):
            await resolver.authenticate(secret)
    event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    selects = [s for s, _ in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2 and selects[0] == selects[1]
