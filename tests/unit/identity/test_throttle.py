"""The login throttle (issue 16 items 7 and 15, SECURITY.md case 42): per (account, address) with growing waits,
a per-address bound, nobody locked out by someone else's failures, and a bounded table that evicts the idlest.

In-process with a controllable clock, and the shared variant on the real Redis (a prefix of its own).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from sluice.identity.throttle import LoginThrottle, ThrottlePolicy
from tests.support.services import REDIS_URL, require_redis

POLICY = ThrottlePolicy(attempts=3, window=60.0, address_attempts=10, delay_seconds=2.0, max_delay_seconds=16.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def fail(throttle: LoginThrottle, account: str, address: str, times: int) -> None:
    for _ in range(times):
        await throttle.failed(account, address)


def test_waits_grow_and_are_capped() -> None:
    assert [POLICY.pair_wait(n) for n in range(1, 9)] == [0, 0, 2, 4, 8, 16, 16, 16]


async def test_someone_elses_failures_do_not_lock_the_account_out_from_another_address() -> None:
    throttle = LoginThrottle(POLICY, clock=Clock())
    await fail(throttle, "victim@example.com", "203.0.113.7", 9)
    assert await throttle.blocked("victim@example.com", "203.0.113.7") == 16
    assert await throttle.blocked("victim@example.com", "198.51.100.1") is None  # the owner, elsewhere


async def test_a_pair_waits_longer_after_each_failure_and_is_forgotten_after_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock)
    await fail(throttle, "a@example.com", "192.0.2.1", 2)
    assert await throttle.blocked("a@example.com", "192.0.2.1") is None  # free failures
    await fail(throttle, "a@example.com", "192.0.2.1", 1)
    assert await throttle.blocked("a@example.com", "192.0.2.1") == 2
    clock.now += 2.5
    assert await throttle.blocked("a@example.com", "192.0.2.1") is None
    await fail(throttle, "a@example.com", "192.0.2.1", 1)
    assert await throttle.blocked("a@example.com", "192.0.2.1") == 4
    clock.now += 61
    await fail(throttle, "a@example.com", "192.0.2.1", 1)  # the count started again
    assert await throttle.blocked("a@example.com", "192.0.2.1") is None


async def test_a_correct_password_clears_the_pair_but_not_the_address() -> None:
    throttle = LoginThrottle(POLICY, clock=Clock())
    await fail(throttle, "a@example.com", "192.0.2.1", 2)
    await throttle.succeeded("a@example.com", "192.0.2.1")
    await fail(throttle, "a@example.com", "192.0.2.1", 2)
    assert await throttle.blocked("a@example.com", "192.0.2.1") is None
    await fail(throttle, "b@example.com", "192.0.2.1", 6)  # 10 failures from the address in all
    assert await throttle.blocked("c@example.com", "192.0.2.1") is not None


async def test_one_address_spraying_many_accounts_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for i in range(10):
        assert await throttle.blocked(f"user{i}@example.com", "192.0.2.66") is None
        await throttle.failed(f"user{i}@example.com", "192.0.2.66")
    assert await throttle.blocked("user99@example.com", "192.0.2.66") == 60
    assert await throttle.blocked("user99@example.com", "192.0.2.67") is None
    clock.now += 61
    assert await throttle.blocked("user99@example.com", "192.0.2.66") is None


async def test_a_full_table_evicts_the_idlest_subjects_never_all() -> None:
    throttle = LoginThrottle(POLICY, clock=Clock(), max_tracked=50)
    await fail(throttle, "target@example.com", "192.0.2.1", 3)
    for i in range(40):  # a flood of fresh subjects (each failure adds a pair and an address)
        await throttle.failed(f"flood{i}@example.com", f"198.51.100.{i}")
    assert len(throttle._table.counts) == 50
    assert await throttle.blocked("flood39@example.com", "198.51.100.39") is None  # counted, still free
    assert throttle._table.get("pair:flood39@example.com|198.51.100.39", 1000.0) is not None  # newest kept
    assert throttle._table.get("pair:target@example.com|192.0.2.1", 1000.0) is None  # the idlest went first
    await fail(throttle, "target@example.com", "192.0.2.1", 3)
    await throttle.failed("one-more@example.com", "203.0.113.1")
    assert await throttle.blocked("target@example.com", "192.0.2.1") == 2  # recent counts survive eviction


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    require_redis()
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_the_shared_throttle_on_redis_follows_the_same_rules(redis: Redis) -> None:
    prefix = "test-throttle-" + secrets.token_hex(4)
    replica_a = LoginThrottle(POLICY, redis, prefix=prefix)
    replica_b = LoginThrottle(POLICY, redis, prefix=prefix)
    try:
        await fail(replica_a, "victim@example.com", "203.0.113.7", 4)
        wait = await replica_b.blocked("victim@example.com", "203.0.113.7")
        assert wait is not None and 2 < wait <= 4  # the second wait (4 s), seen by another replica
        assert await replica_b.blocked("victim@example.com", "198.51.100.1") is None
        await replica_b.succeeded("victim@example.com", "203.0.113.7")
        assert await replica_a.blocked("victim@example.com", "203.0.113.7") is None
        for i in range(6):
            await replica_a.failed(f"spray{i}@example.com", "203.0.113.7")  # 10 from this address in all
        assert await replica_b.blocked("anyone@example.com", "203.0.113.7") is not None
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
