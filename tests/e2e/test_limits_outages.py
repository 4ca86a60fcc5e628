"""Budgets through outages: Redis going away and coming back (with or without its data), the database down, and
the usage spool failing — the budget refuses what it must afterwards, and no reservation is left behind.

Every outage is of a PRIVATE instance started by the test (``redis-server`` on a free port, an ``initdb``
cluster); the shared services are never stopped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.accounting.spool import connect as connect_spool
from sluice.store.db import Database
from tests.support.keys import NewKey, create_key
from tests.support.processes import PrivatePostgres, PrivateRedis
from tests.support.server import SluiceServer, make_settings

PRICE = {"input": 1.0, "output": 1.0}  # 1000 nanos per token
WAIT_SECONDS = 15.0


def chat(model: str = "priced", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16, **extra}


def metric(gateway: SluiceServer, name: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_SECONDS} s")
        time.sleep(0.05)


def cost(response: httpx.Response) -> int:
    usage = response.json()["usage"]
    return (usage["prompt_tokens"] + usage["completion_tokens"]) * 1000


def set_budget(gateway: SluiceServer, key: NewKey, budget_nanos: int, **extra: Any) -> None:
    body = {"budget": budget_nanos / 1e9, "period": "day", **extra}
    with gateway.client() as admin:
        resp = admin.put(f"/admin/v1/limits/key/{key.key.id}", json=body)
    assert resp.status_code == 200, resp.text


def redis_gateway(tmp_path: Path, redis: PrivateRedis, behaviour: str, **models: Any) -> SluiceServer:
    settings = make_settings(
        tmp_path / "gw",
        {
            "redis_url": redis.url,
            "providers": [{"name": "slow", "kind": "mock", "mock": {"tokens_per_second": 20, "reply_tokens": 8}}],
            "models": [
                {"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]},
                {"name": "slow-priced", "price": PRICE, "deployments": [{"provider": "slow", "model": "slow-1"}]},
            ],
            "limits": {"backend": "redis", "on_redis_error": behaviour},
        },
    )
    return SluiceServer(settings)


@contextmanager
def private_redis(tmp_path: Path, persistent: bool) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis", persistent=persistent).start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.mark.parametrize("restart", ["keeps-data", "loses-data"])
def test_a_budget_holds_across_a_redis_outage_served_by_the_fallback(tmp_path: Path, restart: str) -> None:
    with (
        private_redis(tmp_path, persistent=restart == "keeps-data") as redis,
        redis_gateway(tmp_path, redis, "local_fallback") as gateway,
    ):
        key: NewKey = gateway.call(create_key(gateway.services.db, "budgeted"))
        with gateway.client() as master:
            c = cost(master.post("/v1/chat/completions", json=chat()))  # what one call costs (the master is free)
        worst = (9 + 16) * 1000  # the raw-body prompt estimate for this body, plus max_tokens
        set_budget(gateway, key, 3 * c + worst)  # exactly four calls fit: the fourth starts at 3c spent
        with gateway.client(key.secret) as http:
            assert http.post("/v1/chat/completions", json=chat()).status_code == 200  # through Redis
            errors_before = metric(gateway, "sluice_limit_store_errors_total")
            redis.stop()
            during = [http.post("/v1/chat/completions", json=chat()) for _ in range(2)]  # the fallback admits
            assert [r.status_code for r in during] == [200, 200]
            assert metric(gateway, "sluice_limit_store_errors_total") > errors_before
            assert metric(gateway, "sluice_limit_settlements_deferred") == 2
            redis.start()
            wait_until(lambda: metric(gateway, "sluice_limit_settlements_deferred") == 0, "replayed to Redis")
            fourth = http.post("/v1/chat/completions", json=chat())
            fifth = http.post("/v1/chat/completions", json=chat())
        assert fourth.status_code == 200, fourth.text
        assert fifth.status_code == 429 and fifth.json()["error"]["code"] == "budget_exceeded"


def test_a_settlement_that_found_redis_down_is_replayed_when_it_is_back(tmp_path: Path) -> None:
    with (
        private_redis(tmp_path, persistent=True) as redis,
        redis_gateway(tmp_path, redis, "fail_closed") as gateway,
    ):
        key: NewKey = gateway.call(create_key(gateway.services.db, "budgeted"))
        body = chat("slow-priced", max_tokens=100, stream=True)
        worst = (9 + 100) * 1000
        with gateway.client() as master:
            c = cost(master.post("/v1/chat/completions", json=chat("slow-priced", max_tokens=100)))
        # After the first call: room for one more worst case, not for two more calls.
        set_budget(gateway, key, worst + c + c // 2)
        with gateway.client(key.secret) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as streamed:
                lines = streamed.iter_lines()
                assert next(lines).startswith("data:")  # admitted through Redis and answering
                redis.stop()  # the settlement at the end of this stream finds Redis down
                rest = [line for line in lines if line]
            assert streamed.status_code == 200 and rest[-1] == "data: [DONE]"
            refused = http.post("/v1/chat/completions", json=chat("slow-priced", max_tokens=100))
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "limits_unavailable"
            assert refused.headers["retry-after"] == "1"
            assert metric(gateway, "sluice_limit_settlements_deferred") == 1
            redis.start()
            wait_until(lambda: metric(gateway, "sluice_limit_settlements_deferred") == 0, "replayed to Redis")
            # Its reservation was released and its cost counted: one more call fits, a third does not.
            second = http.post("/v1/chat/completions", json=chat("slow-priced", max_tokens=100))
            third = http.post("/v1/chat/completions", json=chat("slow-priced", max_tokens=100))
        assert second.status_code == 200, second.text
        assert third.status_code == 429 and third.json()["error"]["code"] == "budget_exceeded"


# --- the database down ---------------------------------------------------------------------------------------


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.close()


def test_a_budgeted_key_is_refused_with_503_while_its_spend_cannot_be_read(tmp_path: Path) -> None:
    pg = PrivatePostgres().init()
    try:
        asyncio.run(_migrate(pg.url))
        settings = make_settings(
            tmp_path / "gw",
            {
                "database_url": pg.url,
                "models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock"}]}],
            },
        )
        with SluiceServer(settings) as gateway:
            seen: NewKey = gateway.call(create_key(gateway.services.db, "seen"))
            unseen: NewKey = gateway.call(create_key(gateway.services.db, "unseen"))
            set_budget(gateway, seen, 10**9)
            with gateway.client(seen.secret) as a, gateway.client(unseen.secret) as b:
                assert a.post("/v1/chat/completions", json=chat()).status_code == 200  # loads this period's spend
                assert b.post("/v1/chat/completions", json=chat()).status_code == 200  # no budget yet: cached key
                set_budget(gateway, unseen, 10**9)
                pg.stop()
                kept = a.post("/v1/chat/completions", json=chat())
                refused = b.post("/v1/chat/completions", json=chat())
                anthropic = b.post(
                    "/v1/messages",
                    json={"model": "priced", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]},
                    headers={"anthropic-version": "2023-06-01"},
                )
                pg.start()
                wait_until(lambda: b.post("/v1/chat/completions", json=chat()).status_code == 200, "admitted again")
        assert kept.status_code == 200  # its spend was known before the outage and is kept current in memory
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        error = refused.json()["error"]
        assert error["code"] == "limits_unavailable" and "usage records are unreachable" in error["message"]
        assert anthropic.status_code == 529 and anthropic.json()["error"]["type"] == "overloaded_error"
    finally:
        pg.destroy()


# --- the usage spool failing -----------------------------------------------------------------------------------


def test_a_failed_usage_write_still_releases_the_reservation(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "gw",
        {"models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]}]},
    )
    with SluiceServer(settings) as gateway:
        key: NewKey = gateway.call(create_key(gateway.services.db, "budgeted"))
        worst = (9 + 100) * 1000  # each call costs far less (16 tokens of answer), so two worst cases fit...
        set_budget(gateway, key, 2 * worst, concurrent=1)  # ...but not three: a leaked reservation leaves no room
        spool_path = gateway.services.accounting.spool.path
        body = chat(max_tokens=100)
        with gateway.client(key.secret) as http:
            assert http.post("/v1/chat/completions", json=body).status_code == 200  # this period's spend loaded
            with sqlite3.connect(spool_path) as conn:
                conn.execute("DROP TABLE spool")  # every spool write fails from now on
            failed = http.post("/v1/chat/completions", json=body)
            connect_spool(spool_path).close()  # the table is back
            after = http.post("/v1/chat/completions", json=body)
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "usage_unavailable"
    assert after.status_code == 200, after.text  # the concurrency slot and the reserved budget came back
