"""Readiness: each dependency that fails is named in the body, a hung one within the check's bound.

Outages are real: a private PostgreSQL that is frozen (SIGSTOP) and then stopped, a private redis-server that is
stopped, a RabbitMQ URL nothing listens on, and an upstream whose health checks fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from sluice.observability.health import CHECK_TIMEOUT
from sluice.store.db import Database
from tests.support.processes import PrivatePostgres, PrivateRedis
from tests.support.server import SluiceServer, free_port, make_settings
from tests.support.services import RABBITMQ_URL, require_rabbitmq

# Generous next to CHECK_TIMEOUT: a probe that waited on a hung dependency would hit it; one that bounds its
# checks answers long before.
PROBE_TIMEOUT = 30.0


def ready(server: SluiceServer) -> httpx.Response:
    return httpx.get(f"{server.url}/health/ready", timeout=PROBE_TIMEOUT)


def test_healthy_gateway_is_ready_and_names_nothing(tmp_path: Path) -> None:
    with SluiceServer(make_settings(tmp_path)) as server:
        answer = ready(server)
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "failing": [],
        "checks": {
            "database": "ok",
            "loops": {
                "refresh-stored": {"status": "ok", "every_seconds": 15.0, "runs": 0, "failures": 0},
                "key-last-used": {"status": "ok", "every_seconds": 15.0, "runs": 0, "failures": 0},
            },
            "models": 1,
            "deployments": {"total": 1, "healthy": 1},
        },
    }


def test_a_hung_then_stopped_database_is_named_without_stalling_the_probe(tmp_path: Path) -> None:
    postgres = PrivatePostgres().init()
    try:
        asyncio.run(_migrate(postgres.url))
        with SluiceServer(make_settings(tmp_path, {"database_url": postgres.url})) as server:
            assert ready(server).status_code == 200
            with frozen(postgres):
                hung = ready(server)
            postgres.stop()
            down = ready(server)
    finally:
        postgres.destroy()
    assert hung.status_code == 503
    assert hung.json()["failing"] == ["database"]
    assert hung.json()["checks"]["database"] == f"unavailable (no answer within {CHECK_TIMEOUT:g} s)"
    assert down.status_code == 503
    assert down.json()["failing"] == ["database"]
    assert down.json()["checks"]["database"].startswith("unavailable (")
    assert down.json()["checks"]["deployments"] == {"total": 1, "healthy": 1}  # the rest is still reported


def test_a_stopped_redis_is_named(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    try:
        with SluiceServer(make_settings(tmp_path / "gw", {"redis_url": redis.url})) as server:
            before = ready(server)
            redis.stop()
            after = ready(server)
    finally:
        redis.stop()
    assert before.status_code == 200 and before.json()["checks"]["redis"] == "ok"
    assert after.status_code == 503
    assert after.json()["failing"] == ["redis"]
    assert after.json()["checks"]["redis"].startswith("unavailable (")
    assert after.json()["checks"]["database"] == "ok"


def test_rabbitmq_is_checked_when_it_schedules(tmp_path: Path) -> None:
    require_rabbitmq()
    prefix = "sluice-test-health-" + secrets.token_hex(4)
    reachable = {"scheduling": {"backend": "rabbitmq", "rabbitmq_url": RABBITMQ_URL, "prefix": prefix}}
    try:
        with SluiceServer(make_settings(tmp_path / "up", reachable)) as server:
            up = ready(server)
    finally:
        asyncio.run(_drop_census(prefix))
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    unreachable = {"scheduling": {"backend": "rabbitmq", "rabbitmq_url": nowhere, "prefix": prefix}}
    with SluiceServer(make_settings(tmp_path / "down", unreachable)) as server:
        down = ready(server)
    assert up.status_code == 200 and up.json()["checks"]["rabbitmq"] == "ok"
    assert down.status_code == 503
    assert down.json()["failing"] == ["rabbitmq"]
    assert down.json()["checks"]["rabbitmq"] == "unavailable (ConnectionError)"


def test_no_healthy_deployment_is_named(tmp_path: Path) -> None:
    config = {
        "providers": [{"name": "gone", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"}],
        "models": [{"name": "m", "deployments": [{"provider": "gone"}]}],
        "health": {"interval_seconds": 0.1, "timeout_seconds": 1, "failures_to_unhealthy": 1},
        "builtin_mock": False,
    }
    with SluiceServer(make_settings(tmp_path, config)) as server:
        deadline = time.monotonic() + 30
        answer = ready(server)
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            answer = ready(server)
    assert answer.status_code == 503, answer.text
    assert answer.json()["failing"] == ["deployments"]
    assert answer.json()["checks"]["deployments"] == {"total": 1, "healthy": 0, "problem": "no healthy deployment"}
    assert answer.json()["checks"]["database"] == "ok"


@contextmanager
def frozen(postgres: PrivatePostgres) -> Iterator[None]:
    """Every process of the cluster stopped (SIGSTOP): connections are accepted by the kernel, never answered."""
    postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster, *_children(postmaster)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry))
    return found


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.close()


async def _drop_census(prefix: str) -> None:
    connection: Any = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(f"{prefix}.census")
