"""Two real Sluice replicas sharing one deployment of capacity 2, on the Redis and on the RabbitMQ backend.

The fake upstream counts the requests it has in flight, so "never more than 2 at once across both replicas" is
measured where it matters. ``kill -9`` of a replica that holds both slots must give them back within the lease.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import yaml
from redis import Redis

from tests.fakes import FakeOpenAI, Fault, Reply
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY
from tests.support.services import RABBITMQ_URL, REDIS_URL, require_rabbitmq, require_redis

LEASE = 3.0
DEPLOYMENT = "shared#0:up/gpt-fake"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def clean(upstream: FakeOpenAI) -> None:
    upstream.reset()
    upstream.reply = Reply()


@pytest.fixture(params=["redis", "rabbitmq"])
def replicas(request: pytest.FixtureRequest, upstream: FakeOpenAI, tmp_path: Path) -> Iterator[list[SluiceProcess]]:
    kind = request.param
    (require_redis if kind == "redis" else require_rabbitmq)()
    prefix = "sluice-test-replicas-" + secrets.token_hex(4)
    scheduling: dict[str, Any] = {"backend": kind, "lease_seconds": LEASE, "prefix": prefix}
    config: dict[str, Any] = {
        "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
        "models": [{"name": "shared", "deployments": [{"provider": "up", "model": "gpt-fake", "capacity": 2}]}],
        "scheduling": scheduling,
    }
    if kind == "redis":
        config["redis_url"] = REDIS_URL
    else:
        scheduling["rabbitmq_url"] = RABBITMQ_URL
    started: list[SluiceProcess] = []
    try:
        for name in ("first", "second"):
            started.append(SluiceProcess(tmp_path / name, config, name=name).start())
            assert post(started[-1]).status_code == 200  # each replica has seen the deployment (the first dispatches)
        yield started
    finally:
        for replica in started:
            replica.stop()
        if kind == "redis":
            _drop_redis(prefix)
        else:
            asyncio.run(_drop_rabbitmq(prefix))


def _drop_redis(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


async def _drop_rabbitmq(prefix: str) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for part in ("wait.interactive", "wait.standard", "wait.batch", "wait.aged", "control"):
            await channel.queue_delete(f"{prefix}.{DEPLOYMENT}.{part}")
        await channel.exchange_delete(f"{prefix}.census")


def post(replica: SluiceProcess, **extra: Any) -> httpx.Response:
    body = {"model": "shared", "messages": [{"role": "user", "content": "Hi"}], **extra}
    return httpx.post(
        f"{replica.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=60
    )


def waiting_on(replica: SluiceProcess) -> int:
    response = httpx.get(f"{replica.url}/v1/queue", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
    return len(response.json()["data"])


def wait_until(check: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_two_replicas_never_run_more_than_the_capacity_together(
    replicas: list[SluiceProcess], upstream: FakeOpenAI
) -> None:
    upstream.reset()
    upstream.reply = Reply(delay=0.15)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda n: post(replicas[n % 2]), range(16)))
    assert [r.status_code for r in responses] == [200] * 16
    assert upstream.max_in_flight == 2  # both slots used, never a third
    assert max(int(r.headers["x-sluice-queue-position"]) for r in responses) >= 2


@pytest.mark.parametrize("victim", [0, 1], ids=["first-replica", "second-replica"])
def test_kill_9_of_a_replica_holding_the_slots_frees_them_within_the_lease(
    replicas: list[SluiceProcess], upstream: FakeOpenAI, victim: int
) -> None:
    doomed, survivor = replicas[victim], replicas[1 - victim]
    upstream.reset()
    upstream.enqueue(Fault("hang", seconds=60), Fault("hang", seconds=60))
    with ThreadPoolExecutor(4) as pool:
        hanging = [pool.submit(post, doomed) for _ in range(2)]
        assert upstream.wait_for(lambda: upstream.in_flight == 2, timeout=15)
        waiter = pool.submit(post, survivor)
        assert wait_until(lambda: waiting_on(survivor) == 1)
        killed = time.monotonic()
        doomed.kill()
        response = waiter.result(timeout=LEASE + 10)
        for cut in hanging:
            with pytest.raises(httpx.HTTPError):
                cut.result(timeout=10)
    assert response.status_code == 200
    served = upstream.requests[-1].received_at
    assert served - killed <= LEASE + 0.5, f"the dead replica's slots came back after {served - killed:.2f} s"
    assert upstream.max_in_flight == 2
    after = [post(survivor) for _ in range(3)]
    assert [r.status_code for r in after] == [200, 200, 200]
    assert [r.headers["x-sluice-queue-position"] for r in after] == ["0", "0", "0"]  # both slots are free again


def test_a_replica_that_never_served_the_deployment_shows_its_whole_line(
    replicas: list[SluiceProcess], upstream: FakeOpenAI, tmp_path: Path
) -> None:
    first = replicas[0]
    config = yaml.safe_load(first.config_path.read_text(encoding="utf-8"))
    third = SluiceProcess(tmp_path / "third", config, name="third").start()  # has served nothing
    try:
        upstream.reset()
        upstream.reply = Reply(delay=5.0)
        with ThreadPoolExecutor(3) as pool:
            running = [pool.submit(post, first) for _ in range(2)]
            assert upstream.wait_for(lambda: upstream.in_flight == 2, timeout=15)
            waiter = pool.submit(post, first)
            assert wait_until(lambda: waiting_on(third) == 1), "GET /v1/queue on the third replica"
            admin = {"Authorization": f"Bearer {MASTER_KEY}"}
            queues = httpx.get(f"{third.url}/admin/v1/queues", headers=admin, timeout=10).json()
            (deployment,) = queues["deployments"]
            assert (deployment["capacity"], deployment["in_flight"], deployment["waiting"]) == (2, 2, 1)
            assert [f.result(timeout=30).status_code for f in [*running, waiter]] == [200] * 3
    finally:
        third.stop()
