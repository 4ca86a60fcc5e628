"""API keys: format, hashing, and resolution through the cache (real SQLite, a controllable clock)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, update

from sluice.config import KeyCacheConfig
from sluice.errors import AuthenticationFailed, Overloaded
from sluice.identity.keys import KEY_PREFIX, KeyResolver, generate_key, hash_key
from sluice.identity.principal import MASTER
from sluice.store.db import Database
from sluice.store.models import ApiKey
from tests.support.keys import create_key, list_keys, revoke_key

MASTER_KEY = "sk-sl-master-test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    await database.migrate()
    yield database
    await database.close()


def count_queries(db: Database) -> list[str]:
    seen: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_generated_keys_have_prefix_and_256_bits() -> None:
    key = generate_key()
    assert key.startswith(KEY_PREFIX)
    assert len(key) - len(KEY_PREFIX) == 43  # 32 random bytes, base64url
    assert generate_key() != key


def test_hash_is_sha256_hex() -> None:
    assert len(hash_key("x")) == 64
    assert hash_key("x") != hash_key("y")


async def test_only_the_hash_is_stored(db: Database) -> None:
    new = await create_key(db, "k1")
    async with db.session() as session:
        row = (await session.execute(select(ApiKey))).scalar_one()
    assert row.key_hash == hash_key(new.secret)
    assert new.secret not in (row.key_hash, row.prefix, row.name)
    assert new.secret.startswith(row.prefix)


async def test_master_key_resolves_without_the_database(db: Database) -> None:
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig())
    queries = count_queries(db)
    assert await resolver.authenticate(MASTER_KEY) is MASTER
    assert queries == []


async def test_virtual_key_is_cached_after_the_first_lookup(db: Database) -> None:
    new = await create_key(db, "k1", allowed_models=["mock-1"], priority="batch")
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig())
    queries = count_queries(db)
    principal = await resolver.authenticate(new.secret)
    first = len(queries)
    assert first > 0
    for _ in range(5):
        assert await resolver.authenticate(new.secret) == principal
    assert len(queries) == first
    assert principal.kind == "key" and principal.key_id == new.key.id
    assert principal.allowed_models == frozenset({"mock-1"}) and principal.priority == "batch"
    assert principal.label == new.key.prefix


async def test_concurrent_misses_share_one_query(db: Database) -> None:
    new = await create_key(db, "k1")
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig())
    queries = count_queries(db)
    await asyncio.gather(*(resolver.authenticate(new.secret) for _ in range(20)))
    assert len([q for q in queries if "api_keys" in q]) == 1


async def test_unknown_key_is_refused_and_negatively_cached(db: Database) -> None:
    clock = Clock()
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig(negative_ttl_seconds=5), clock=clock)
    queries = count_queries(db)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await resolver.authenticate("sk-sl-not-a-key")
    assert len([q for q in queries if "api_keys" in q]) == 1
    clock.now += 6
    with pytest.raises(AuthenticationFailed):
        await resolver.authenticate("sk-sl-not-a-key")
    assert len([q for q in queries if "api_keys" in q]) == 2


async def test_revoked_key_stops_working_after_the_cache_lifetime(db: Database) -> None:
    clock = Clock()
    new = await create_key(db, "k1")
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig(ttl_seconds=30), clock=clock)
    await resolver.authenticate(new.secret)
    await revoke_key(db, new.key.prefix)
    await resolver.authenticate(new.secret)  # still within the documented cache lifetime
    clock.now += 31
    with pytest.raises(AuthenticationFailed):
        await resolver.authenticate(new.secret)


async def test_forget_makes_revocation_immediate(db: Database) -> None:
    new = await create_key(db, "k1")
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig())
    await resolver.authenticate(new.secret)
    await revoke_key(db, new.key.id)
    resolver.forget(new.key.key_hash)
    with pytest.raises(AuthenticationFailed):
        await resolver.authenticate(new.secret)


async def test_expired_key_is_refused(db: Database) -> None:
    # A key cannot be made already expired (the key service refuses a past expiry): this one expired since.
    new = await create_key(db, "k1", expires_at=datetime.now(UTC) + timedelta(days=1))
    async with db.session() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await session.execute(update(ApiKey).where(ApiKey.id == new.key.id).values(expires_at=past))
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig())
    with pytest.raises(AuthenticationFailed):
        await resolver.authenticate(new.secret)


async def test_database_down_keeps_known_keys_and_fails_unknown_closed(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    await db.migrate()
    new = await create_key(db, "k1")
    clock = Clock()
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig(ttl_seconds=1), clock=clock)
    principal = await resolver.authenticate(new.secret)
    await db.close()
    (tmp_path / "k.db").unlink()
    (tmp_path / "k.db").mkdir()  # a directory where the file was: every connection attempt now fails
    clock.now += 5
    threads_before = set(threading.enumerate())
    try:
        assert await resolver.authenticate(new.secret) == principal
        with pytest.raises(Overloaded):
            await resolver.authenticate("sk-sl-unknown-while-down")
    finally:
        await db.close()
        # A failed connection attempt stops its aiosqlite worker thread without waiting for it; the thread then
        # answers into this test's loop. Left running past the end of the test it would answer into a closed loop
        # and fail a later test, so the loop keeps turning until every worker this test started has finished.
        await _wait_for_threads_started_since(threads_before)


async def _wait_for_threads_started_since(before: set[threading.Thread]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t not in before and t.is_alive()]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("aiosqlite worker threads still running after the test")


async def test_last_used_times_are_flushed_in_one_batch(db: Database) -> None:
    new = await create_key(db, "k1")
    resolver = KeyResolver(db, MASTER_KEY, KeyCacheConfig())
    await resolver.authenticate(new.secret)
    await resolver.flush_last_used()
    [row] = await list_keys(db)
    assert row.last_used_at is not None
