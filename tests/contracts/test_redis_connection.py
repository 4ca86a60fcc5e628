"""Contract: redis-py's asyncio connection, which ``limits/redis_batch.py`` drives by hand (pyproject: redis <9).

``ScriptBatcher`` takes a connection from the client's pool (``pool.get_connection()`` with no arguments), writes
one packed buffer (``send_packed_command(..., check_health=False)``), reads one reply per call
(``read_response()``, which raises ``ResponseError``, ``NoScriptError`` for an unknown script, for an error reply),
and gives it back (``pool.release``) or drops it (``disconnect``). A release that changes any of these fails here,
by name, before raising the bound in pyproject.toml.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import NoScriptError, ResponseError

from sluice.limits.redis_batch import LuaScript, _evalsha
from tests.support.services import REDIS_URL, require_redis


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    require_redis()
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def test_the_pool_and_connection_methods_the_batcher_calls_exist() -> None:
    get = inspect.signature(ConnectionPool.get_connection)
    assert all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in get.parameters.values()
        if p.name != "self"
    ), "get_connection() must be callable with no arguments"
    assert "check_health" in inspect.signature(AbstractConnection.send_packed_command).parameters
    for name in ("read_response", "disconnect"):
        assert callable(getattr(AbstractConnection, name)), name
    assert callable(ConnectionPool.release)
    assert issubclass(NoScriptError, ResponseError)


async def test_a_packed_batch_is_answered_in_order_with_error_replies_raised(redis: Redis) -> None:
    key = "sluice-test:contract:" + secrets.token_hex(4)
    known = LuaScript.of("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    unknown = LuaScript.of(f"-- never loaded {secrets.token_hex(8)}\nreturn 1")
    await redis.script_load(known.source)
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(
            _evalsha(known, [key], [2]) + _evalsha(unknown, [], []) + _evalsha(known, [key], [3]), check_health=False
        )
        assert await connection.read_response() == 2
        with pytest.raises(NoScriptError):
            await connection.read_response()
        assert await connection.read_response() == 5  # the error reply left the connection in step
    finally:
        await pool.release(connection)
        await redis.delete(key)


async def test_a_dropped_connection_is_replaced_by_the_pool(redis: Redis) -> None:
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    await connection.disconnect()
    await pool.release(connection)
    assert await redis.ping() is True
