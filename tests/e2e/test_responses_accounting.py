"""``/v1/responses`` is billed, limited and counted like every other call: a usage record per answer (streamed or
not), rate limits and budgets at admission, and the request metrics under its own endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sluice.limits.policy import Limits
from sluice.limits.repository import LimitRepository
from sluice.limits.setup import load_policies
from sluice.store.models import UsageRecord
from tests.support.keys import NewKey, create_key
from tests.support.server import SluiceServer, make_settings

PRICE = {"input": 1.0, "output": 1.0}  # 1000 nanos per token


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {"models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]}]}
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


def new_key(gateway: SluiceServer, limits: Limits | None = None) -> NewKey:
    async def make() -> NewKey:
        services = gateway.services
        new = await create_key(services.db, "responses", role="member")
        if limits is not None:
            async with services.db.session() as session:
                await LimitRepository(session).put("key", new.key.id, limits)
            await load_policies(services.limiter, services.db)
        return new

    result: NewKey = gateway.call(make())
    return result


def records(gateway: SluiceServer, key_id: str) -> list[UsageRecord]:
    async def fetch() -> list[UsageRecord]:
        services = gateway.services
        while await services.accounting.shipper.ship_once():
            pass
        async with services.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.key_id == key_id).order_by(UsageRecord.created_at)
            return list((await session.execute(query)).scalars().all())

    result: list[UsageRecord] = gateway.call(fetch())
    return result


def create(**extra: Any) -> dict[str, Any]:
    return {"model": "priced", "input": "Hello there", **extra}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_each_response_leaves_one_priced_usage_record(gateway: SluiceServer, stream: bool) -> None:
    key = new_key(gateway)
    with gateway.client(key.secret) as http:
        resp = http.post("/v1/responses", json=create(stream=stream))
    assert resp.status_code == 200
    [record] = records(gateway, key.key.id)
    assert (record.surface, record.endpoint, record.model, record.status) == ("openai", "responses", "priced", 200)
    assert record.stream is stream and record.prompt_tokens > 0 and record.completion_tokens == 16
    assert record.cost_nanos == (record.prompt_tokens + record.completion_tokens) * 1000
    assert not record.estimated


def test_reading_and_deleting_stored_responses_is_not_usage(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    with gateway.client(key.secret) as http:
        created = http.post("/v1/responses", json=create()).json()
        assert http.get(f"/v1/responses/{created['id']}").status_code == 200
        assert http.get(f"/v1/responses/{created['id']}/input_items").status_code == 200
        assert http.delete(f"/v1/responses/{created['id']}").json()["deleted"] is True
    assert [r.endpoint for r in records(gateway, key.key.id)] == ["responses"]


def test_the_rpm_limit_refuses_the_third_response_in_openai_shape(gateway: SluiceServer) -> None:
    key = new_key(gateway, Limits(rpm=2))
    with gateway.client(key.secret) as http:
        ok = [http.post("/v1/responses", json=create()) for _ in range(2)]
        refused = http.post("/v1/responses", json=create())
    assert [r.status_code for r in ok] == [200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["1", "0"]
    assert refused.status_code == 429 and refused.headers["x-sluice-limit"] == "rpm"
    assert refused.json()["error"]["type"] == "rate_limit_error" and int(refused.headers["retry-after"]) >= 1


def test_the_token_limit_reserves_max_output_tokens(gateway: SluiceServer) -> None:
    key = new_key(gateway, Limits(tpm=200))
    with gateway.client(key.secret) as http:
        too_big = http.post("/v1/responses", json=create(max_output_tokens=500))
        fits = http.post("/v1/responses", json=create(max_output_tokens=50))
    assert too_big.status_code == 429 and too_big.headers["x-sluice-limit"] == "tpm"
    assert fits.status_code == 200


def test_requests_are_counted_under_the_responses_endpoint(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    with gateway.client(key.secret) as http:
        assert http.post("/v1/responses", json=create()).status_code == 200
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    lines = [
        line
        for line in metrics.splitlines()
        if line.startswith("sluice_requests_total{") and 'endpoint="responses"' in line
    ]
    assert lines and all('surface="openai"' in line for line in lines)
