"""Exactness across replicas and under faults: three processes sharing Redis and PostgreSQL, Redis going away,
``kill -9`` with requests in flight, and a PostgreSQL outage — no overspend, no lost or doubled usage records."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from sluice.store.db import Database
from sluice.store.models import UsageRecord
from tests.support.keys import NewKey, create_key
from tests.support.processes import PrivatePostgres, PrivateRedis, SluiceProcess
from tests.support.server import MASTER_KEY, SluiceServer, make_settings
from tests.support.services import REDIS_URL, create_postgres_database, drop_postgres_database, require_redis

PRICE = {"input": 1.0, "output": 1.0}  # 1000 nanos per token
OUTAGE_SECONDS = 3  # long enough for requests during it and the spool to take over; seconds, not half a minute


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "priced", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16, **extra}


async def _with_db(url: str, work: Any) -> Any:
    db = Database(url)
    try:
        await db.migrate()
        return await work(db)
    finally:
        await db.close()


def make_key(url: str) -> NewKey:
    result: NewKey = asyncio.run(_with_db(url, lambda db: create_key(db, "replicated")))
    return result


def usage_rows(url: str) -> list[UsageRecord]:
    async def fetch(db: Database) -> list[UsageRecord]:
        async with db.session() as session:
            return list((await session.execute(select(UsageRecord))).scalars().all())

    result: list[UsageRecord] = asyncio.run(_with_db(url, fetch))
    return result


async def _fire(urls: list[str], key: str, bodies: list[dict[str, Any]]) -> list[httpx.Response | Exception]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        tasks = [http.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body) for i, body in enumerate(bodies)]
        return list(await asyncio.gather(*tasks, return_exceptions=True))


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def test_three_replicas_share_one_rpm_limit_and_one_budget(shared_postgres: str, tmp_path: Path) -> None:
    require_redis()
    rpm_key, budget_key = make_key(shared_postgres), make_key(shared_postgres)
    worst_case = (9 + 16) * 1000  # the raw-body prompt estimate for the body above, plus max_tokens, in nanos
    config = {
        "database_url": shared_postgres,
        "redis_url": REDIS_URL,
        "models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]}],
        "limits": {
            "backend": "redis",
            "redis_prefix": "sluice-test-" + secrets.token_hex(4),
            "scopes": [
                {"scope": "key", "id": rpm_key.key.id, "rpm": 60},
                {"scope": "key", "id": budget_key.key.id, "budget": 10 * worst_case / 1e9, "period": "day"},
            ],
        },
    }
    replicas = [SluiceProcess(tmp_path / f"r{i}", config, name=f"r{i}").start() for i in range(3)]
    try:
        urls = [r.url for r in replicas]
        rpm_results = asyncio.run(_fire(urls, rpm_key.secret, [chat() for _ in range(180)]))
        budget_results = asyncio.run(_fire(urls, budget_key.secret, [chat() for _ in range(60)]))
    finally:
        for replica in replicas:
            replica.stop()
    rpm_statuses = [r.status_code if isinstance(r, httpx.Response) else repr(r) for r in rpm_results]
    assert rpm_statuses.count(200) == 60, rpm_statuses
    assert rpm_statuses.count(429) == 120
    budget_ok = [r for r in budget_results if isinstance(r, httpx.Response) and r.status_code == 200]
    assert 1 <= len(budget_ok) <= 10
    spent = sum(r.cost_nanos for r in usage_rows(shared_postgres) if r.key_id == budget_key.key.id)
    assert 0 < spent <= 10 * worst_case


def _store_errors(gateway: SluiceServer) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sluice_limit_store_errors_total"
    )


@pytest.mark.parametrize("behaviour", ["fail_closed", "local_fallback"])
def test_redis_going_away_gets_the_configured_behaviour(behaviour: str, tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    try:
        settings = make_settings(
            tmp_path / "gw",
            {
                "redis_url": redis.url,
                "models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock"}]}],
                "limits": {"backend": "redis", "on_redis_error": behaviour, "defaults": {"key": {"rpm": 1000}}},
            },
        )
        with SluiceServer(settings) as gateway:
            key: NewKey = gateway.call(create_key(gateway.services.db, "k"))
            # A request that waited on the dead Redis would hit this client's timeout and fail the test.
            auth = {"Authorization": f"Bearer {key.secret}"}
            with httpx.Client(base_url=gateway.url, headers=auth, timeout=4) as http:
                assert http.post("/v1/chat/completions", json=chat()).status_code == 200
                assert _store_errors(gateway) == 0
                redis.stop()
                down = [http.post("/v1/chat/completions", json=chat()) for _ in range(5)]
                errors = _store_errors(gateway)
                redis.start()

                def through_redis() -> bool:
                    before = _store_errors(gateway)
                    status = http.post("/v1/chat/completions", json=chat()).status_code
                    return status == 200 and _store_errors(gateway) == before

                deadline = time.monotonic() + 15
                while not (recovered := through_redis()) and time.monotonic() < deadline:
                    time.sleep(0.1)
            if behaviour == "fail_closed":
                assert all(r.status_code == 503 for r in down)
                assert down[0].json()["error"]["code"] == "limits_unavailable"
                assert down[0].headers["retry-after"] == "1"
            else:
                assert all(r.status_code == 200 for r in down)
            assert errors >= len(down)  # every admission that found Redis down is counted
            assert recovered, "requests are admitted through Redis again once it is back"
    finally:
        redis.stop()


def test_kill_9_with_requests_in_flight_loses_and_doubles_no_usage_record(tmp_path: Path) -> None:
    config = {
        "providers": [{"name": "slowmock", "kind": "mock", "mock": {"latency_ms": 50, "tokens_per_second": 100}}],
        "models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "slowmock", "model": "m"}]}],
    }
    gateway = SluiceProcess(tmp_path / "gw", config).start()
    completed: list[str] = []

    async def one(http: httpx.AsyncClient, i: int) -> None:
        rid = f"kill9-{i:03d}"
        try:
            resp = await http.post(f"{gateway.url}/v1/chat/completions", json=chat(), headers={"X-Request-ID": rid})
            if resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]:
                completed.append(rid)
        except httpx.HTTPError:
            pass  # cut off by the kill

    async def run() -> None:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http:
            # Staggered starts (one every 5 ms, each answer ~210 ms), so that requests are in every state
            # (done, streaming, just sent) at the moment of the kill.
            tasks = []
            for i in range(100):
                tasks.append(asyncio.create_task(one(http, i)))
                await asyncio.sleep(0.005)
            deadline = time.monotonic() + 20
            while len(completed) < 30 and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a plain list
                await asyncio.sleep(0.01)
            gateway.kill()
            await asyncio.gather(*tasks)

    asyncio.run(run())
    assert 30 <= len(completed) < 100, len(completed)
    restarted = SluiceProcess(tmp_path / "gw", config)
    restarted.port, restarted.url = gateway.port, gateway.url
    restarted.start()
    try:
        url = f"sqlite+aiosqlite:///{tmp_path / 'gw' / '.sluice' / 'sluice.db'}"
        deadline = time.monotonic() + 20
        rows = usage_rows(url)
        while len({r.request_id for r in rows} & set(completed)) < len(completed) and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = usage_rows(url)
    finally:
        restarted.stop()
    request_ids = [r.request_id for r in rows]
    assert len(request_ids) == len(set(request_ids)), "a usage record was duplicated"
    missing = set(completed) - set(request_ids)
    assert not missing, f"completed requests without a usage record: {sorted(missing)}"


def test_postgres_outage_loses_and_doubles_nothing(tmp_path: Path) -> None:
    pg = PrivatePostgres().init()
    try:
        config = {
            "database_url": pg.url,
            "models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]}],
        }
        key = make_key(pg.url)  # also migrates the private database
        gateway = SluiceProcess(tmp_path / "gw", config).start()
        ok: list[str] = []
        sent = iter(range(10**6))

        def burst(tag: str, count: int, secret: str) -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=10) as http:
                for _ in range(count):
                    rid = f"{tag}-{next(sent)}"
                    resp = http.post(f"{gateway.url}/v1/chat/completions", json=chat(), headers={"X-Request-ID": rid})
                    if resp.status_code == 200:
                        ok.append(rid)

        try:
            burst("before", 10, key.secret)  # also puts the virtual key in the gateway's cache
            pg.stop()
            outage_started = time.monotonic()
            while time.monotonic() - outage_started < OUTAGE_SECONDS:
                burst("during", 5, key.secret)
                burst("master", 5, MASTER_KEY)
                time.sleep(1)
            pg.start()
            burst("after", 10, key.secret)
            deadline = time.monotonic() + 60
            rows = usage_rows(pg.url)
            while len(rows) < len(ok) and time.monotonic() < deadline:
                time.sleep(0.5)
                rows = usage_rows(pg.url)
        finally:
            gateway.stop()
        assert len([r for r in ok if r.startswith("during")]) > 0, "cached keys must keep working during the outage"
        ids = [r.request_id for r in rows]
        assert len(ids) == len(set(ids)), "duplicated usage records"
        assert set(ok) <= set(ids), f"lost usage records: {sorted(set(ok) - set(ids))[:5]}"

        async def count(db: Database) -> int:
            async with db.session() as session:
                return int((await session.execute(select(func.count()).select_from(UsageRecord))).scalar_one())

        assert asyncio.run(_with_db(pg.url, count)) == len(ok)
    finally:
        pg.destroy()
