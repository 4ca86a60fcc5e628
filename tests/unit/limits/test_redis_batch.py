"""The script batcher against the real Redis on 127.0.0.1:6379: shared round trips, one answer per caller."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from sluice.limits.redis_batch import LuaScript, ScriptBatcher
from tests.support.services import REDIS_URL, require_redis

# A script of its own per run, so that loading it is this test's business alone.
INCR = LuaScript.of(f"-- {secrets.token_hex(6)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
FAIL = LuaScript.of("return redis.error_reply('refused: ' .. ARGV[1])")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    require_redis()
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def key() -> str:
    return "sluice-test:batch:" + secrets.token_hex(4)


async def test_concurrent_calls_share_round_trips_and_each_gets_its_own_answer(redis: Redis, key: str) -> None:
    batcher = ScriptBatcher(redis)
    replies = await asyncio.gather(*(batcher.call(INCR, [key], [1]) for _ in range(200)))
    assert sorted(replies) == list(range(1, 201))  # every call ran once, atomically
    # The script was unknown to Redis: the first batch went out, was refused with NOSCRIPT and was sent again.
    assert batcher.batches <= 3
    assert int(await redis.get(key)) == 200
    await redis.delete(key)


async def test_a_batch_never_grows_past_its_limit(redis: Redis, key: str) -> None:
    batcher = ScriptBatcher(redis, max_batch=16)
    await batcher.call(INCR, [key], [0])  # loads the script
    sent = batcher.batches
    await asyncio.gather(*(batcher.call(INCR, [key], [1]) for _ in range(64)))
    assert batcher.batches - sent == 4
    await redis.delete(key)


async def test_a_script_flushed_from_redis_is_loaded_again(redis: Redis, key: str) -> None:
    batcher = ScriptBatcher(redis)
    assert await batcher.call(INCR, [key], [5]) == 5
    await redis.script_flush()  # as after a Redis restart
    assert await batcher.call(INCR, [key], [5]) == 10
    await redis.delete(key)


async def test_a_refusal_reaches_only_its_own_caller(redis: Redis, key: str) -> None:
    batcher = ScriptBatcher(redis)
    results = await asyncio.gather(
        batcher.call(INCR, [key], [1]),
        batcher.call(FAIL, [], ["this one"]),
        batcher.call(INCR, [key], [1]),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ResponseError) and "refused: this one" in str(results[1])
    await redis.delete(key)


async def test_an_unreachable_redis_fails_every_call_of_the_batch_at_once(key: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    batcher = ScriptBatcher(client)
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(batcher.call(INCR, [key], [1]) for _ in range(5)), return_exceptions=True)
    # Refused at once, or (redis-py retrying the connection) past the batcher's deadline: an error either way.
    assert all(isinstance(r, (RedisError, OSError)) for r in results)
    await client.aclose()


async def test_a_hung_redis_fails_each_call_at_its_own_deadline_and_frees_the_next() -> None:
    """A server that accepts and never answers (a stopped Redis): calls fail after the deadline, each on its own."""
    sockets: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sockets.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis(host="127.0.0.1", port=port, socket_timeout=30)
    batcher = ScriptBatcher(client, deadline=0.2)
    try:
        # Both rounds end at their own deadlines, long before the 30 s socket timeout they would otherwise wait.
        async with asyncio.timeout(10):
            first = await asyncio.gather(*(batcher.call(INCR, ["k"], [1]) for _ in range(3)), return_exceptions=True)
            late = await asyncio.gather(batcher.call(INCR, ["k"], [1]), return_exceptions=True)
        assert all(isinstance(r, RedisTimeout) for r in [*first, *late])
    finally:
        await client.aclose()
        for writer in sockets:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_caller_that_gives_up_leaves_the_others_their_answers(redis: Redis, key: str) -> None:
    batcher = ScriptBatcher(redis)
    await batcher.call(INCR, [key], [0])
    impatient = asyncio.ensure_future(batcher.call(INCR, [key], [1]))
    patient = asyncio.ensure_future(batcher.call(INCR, [key], [1]))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == 2  # sent after the impatient call's, in the same batch
    with pytest.raises(asyncio.CancelledError):
        await impatient
    # The script of the call that gave up was already on its way; it ran (as a call cut off mid-reply would).
    assert await batcher.call(INCR, [key], [0]) == 2
    await redis.delete(key)
