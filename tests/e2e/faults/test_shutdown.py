"""Issue 23 item 7: `sluice serve` never hangs: a failed start exits non-zero with the reason, and SIGTERM or SIGINT
end it within a bounded time even with its database and Redis hung (SIGSTOP).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.store.db import Database
from tests.support.processes import PrivatePostgres, PrivateRedis, SluiceProcess

pytestmark = pytest.mark.services

# Every shutdown step is bounded (services.SHUTDOWN_STEP_SECONDS) and nothing is in flight: well inside this.
EXIT_WITHIN = 25.0


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await db.close()


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init()
    try:
        asyncio.run(_migrate(pg.url))
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def _config(redis: PrivateRedis, database_url: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "redis_url": redis.url,
        "limits": {"backend": "redis", "redis_prefix": "shutdown.lim"},
        "scheduling": {"backend": "redis", "prefix": "shutdown.q"},
        "cache": {"backend": "redis", "redis_prefix": "shutdown.cache"},
    }
    if database_url is not None:
        config["database_url"] = database_url
    return config


def _exit_time(process: SluiceProcess, sig: int) -> float:
    assert process.proc is not None
    started = time.monotonic()
    process.proc.send_signal(sig)
    try:
        process.proc.wait(timeout=EXIT_WITHIN)
    except Exception:
        process.kill()
        raise AssertionError(f"sluice did not exit {EXIT_WITHIN} s after signal {sig}:\n{process.log()}") from None
    return time.monotonic() - started


def test_a_port_in_use_exits_non_zero_with_the_reason_with_redis_configured(
    tmp_path: Path, redis: PrivateRedis
) -> None:
    process = SluiceProcess(tmp_path, {"data_dir": str(tmp_path / "data"), **_config(redis)})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", process.port))
        taken.listen()
        with pytest.raises(RuntimeError, match="exited during start-up"):
            process.start()
    assert process.proc is not None and process.proc.returncode not in (0, None)
    assert "address already in use" in process.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_server_while_its_database_and_redis_hang(
    tmp_path: Path, postgres: PrivatePostgres, redis: PrivateRedis, sig: int
) -> None:
    process = SluiceProcess(tmp_path, _config(redis, postgres.url)).start()
    try:
        key = httpx.post(
            f"{process.url}/admin/v1/keys",
            headers={"authorization": "Bearer sk-sl-test-master-key-0123456789abcdef"},
            json={"name": "k", "workspace_id": "default"},
            timeout=10,
        ).json()["key"]
        body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        chat = httpx.post(
            f"{process.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10
        )
        assert chat.status_code == 200  # so there is usage to ship and a key use to record at shutdown
        postgres.pause()
        redis.pause()
        took = _exit_time(process, sig)
    finally:
        postgres.resume()
        redis.resume()
        process.kill()
    print(f"exit {took:.1f} s after the signal:\n{process.log()}")
    assert "Traceback" not in process.log()
