"""Issue 23 items 6 and 9: a hung Redis (SIGSTOP) is bounded on a request's path, and logged once per interval.

A `sluice serve` process keeps its limits, queue and cache in a private Redis, which is paused under it. Requests
must be refused (503 with Retry-After, never 500) within the Redis deadline (0.5 s per call), not the socket
timeout; with ``limits.on_redis_error: local_fallback`` they are served, streams included, without waiting on
Redis for their last byte. Refusals are counted per request but logged once per interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import PrivateRedis, SluiceProcess
from tests.support.server import MASTER_KEY

pytestmark = pytest.mark.services

# Admission, queue and cache each wait at most 0.5 s on a hung Redis; an answer later than this waited for more.
ANSWER_WITHIN = 2.5
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
REFUSING = "limit store unavailable; refusing (limits.on_redis_error=fail_closed)"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def _gateway(tmp_path: Path, redis: PrivateRedis, on_error: str, scheduling: str) -> SluiceProcess:
    config: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "logging": {"level": "info", "access_log": False, "format": "json"},
        "redis_url": redis.url,
        "limits": {
            "backend": "redis",
            "redis_prefix": "faults.lim",
            "on_redis_error": on_error,
            "defaults": {"key": {"rpm": 1000}},
        },
        "scheduling": {"backend": scheduling, "prefix": "faults.q"},
        "cache": {"backend": "redis", "redis_prefix": "faults.cache"},
    }
    return SluiceProcess(tmp_path, config).start()


def _key(gateway: SluiceProcess) -> str:
    with httpx.Client(base_url=gateway.url, headers=MASTER, timeout=10) as admin:
        key: str = admin.post("/admin/v1/keys", json={"name": "faults", "workspace_id": "default"}).json()["key"]
    return key


def _chat(gateway: SluiceProcess, key: str, stream: bool = False) -> tuple[int, float, httpx.Headers, str]:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": stream}
    started = time.monotonic()
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=ANSWER_WITHIN * 4,
    )
    return response.status_code, time.monotonic() - started, response.headers, response.text


def _events(gateway: SluiceProcess, event: str) -> int:
    return sum(1 for line in gateway.log().splitlines() if line.strip() and json.loads(line)["event"] == event)


def _metric(gateway: SluiceProcess, name: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def test_a_hung_redis_refuses_within_its_deadline_and_logs_once(tmp_path: Path, redis: PrivateRedis) -> None:
    gateway = _gateway(tmp_path, redis, "fail_closed", "redis")
    try:
        key = _key(gateway)
        assert _chat(gateway, key)[0] == 200
        redis.pause()
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: _chat(gateway, key), range(16)))
        finally:
            redis.resume()
        for status, took, headers, text in answers:
            assert status == 503, text
            assert int(headers["retry-after"]) >= 1
            assert took < ANSWER_WITHIN, f"refused after {took:.1f} s"
        assert _metric(gateway, "sluice_limit_store_errors_total") >= 1
        assert _events(gateway, REFUSING) <= 1  # one line for the outage, not one per refused request
        deadline = time.monotonic() + 20
        while _chat(gateway, key)[0] != 200:
            assert time.monotonic() < deadline, "requests did not succeed again after Redis came back"
            time.sleep(0.2)
    finally:
        redis.resume()
        gateway.stop()


def test_with_local_fallback_streams_end_without_waiting_on_a_hung_redis(tmp_path: Path, redis: PrivateRedis) -> None:
    gateway = _gateway(tmp_path, redis, "local_fallback", "local")
    try:
        key = _key(gateway)
        assert _chat(gateway, key, stream=True)[0] == 200
        redis.pause()
        try:
            for stream in (True, False, True, True):
                status, took, _headers, text = _chat(gateway, key, stream=stream)
                assert status == 200, text
                assert took < ANSWER_WITHIN, f"answered after {took:.1f} s"
                if stream:
                    assert text.rstrip().endswith("data: [DONE]")
        finally:
            redis.resume()
    finally:
        redis.resume()
        gateway.stop()


def test_a_login_does_not_wait_on_a_hung_redis(tmp_path: Path, redis: PrivateRedis) -> None:
    config: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "redis_url": redis.url,
        "auth": {"admin_email": "admin@example.com", "admin_password": "admin-Password-0001"},
    }
    gateway = SluiceProcess(tmp_path, config).start()
    try:
        redis.pause()
        try:
            for password, status in (("wrong-password-1", 401), ("admin-Password-0001", 200)):
                started = time.monotonic()
                response = httpx.post(
                    f"{gateway.url}/admin/v1/auth/login",
                    json={"email": "admin@example.com", "password": password},
                    timeout=ANSWER_WITHIN * 4,
                )
                took = time.monotonic() - started
                assert response.status_code == status, response.text
                assert took < ANSWER_WITHIN, f"answered after {took:.1f} s"  # the throttle fell back to this replica
        finally:
            redis.resume()
    finally:
        redis.resume()
        gateway.stop()
