"""The response cache's bounds and billing through HTTP: LRU eviction, the entry size bound, ``bill_hits: true``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sluice.store.models import UsageRecord
from tests.fakes import FakeOpenAI, Reply
from tests.support.server import SluiceServer, make_settings


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {
        "providers": [{"name": "up", "kind": "openai", "base_url": fake.base_url}],
        "models": [
            {
                "name": "gpt",
                "cache": True,
                "price": {"input": 1, "output": 1},
                "deployments": [{"provider": "up", "model": "gpt-fake"}],
            }
        ],
        "cache": {"max_entries": 2, "max_entry_bytes": 2000, "bill_hits": True},
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(fake: FakeOpenAI) -> None:
    fake.reset()
    fake.reply = Reply()


def ask(http: httpx.Client, question: str, request_id: str | None = None) -> httpx.Response:
    body = {"model": "gpt", "messages": [{"role": "user", "content": question}]}
    headers = {"X-Request-ID": request_id} if request_id else {}
    resp = http.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


def test_the_least_recently_used_answer_is_evicted_first(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    with gateway.client() as http:
        ask(http, "lru one")
        ask(http, "lru two")
        assert ask(http, "lru one").headers["x-sluice-cache"] == "hit"  # one is now the most recently used
        ask(http, "lru three")  # the third entry pushes out two
        states = [ask(http, q).headers["x-sluice-cache"] for q in ("lru one", "lru three", "lru two")]
    assert states == ["hit", "hit", "miss"]
    assert fake.attempts == 4  # one, two, three, and two again


def test_an_answer_over_max_entry_bytes_is_not_stored(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.reply = Reply(text="x" * 3000)
    with gateway.client() as http:
        states = [ask(http, "too big to keep").headers["x-sluice-cache"] for _ in range(2)]
    assert states == ["miss", "miss"] and fake.attempts == 2


def test_with_bill_hits_a_hit_costs_what_the_answer_cost(gateway: SluiceServer) -> None:
    with gateway.client() as http:
        ask(http, "billed twice", "billed-miss")
        assert ask(http, "billed twice", "billed-hit").headers["x-sluice-cache"] == "hit"

    async def rows() -> dict[str, UsageRecord]:
        while await gateway.services.accounting.shipper.ship_once():
            pass
        async with gateway.services.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.request_id.in_(["billed-miss", "billed-hit"]))
            return {r.request_id: r for r in (await session.execute(query)).scalars()}

    found = gateway.call(rows())
    miss, hit = found["billed-miss"], found["billed-hit"]
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    assert miss.cost_nanos > 0 and hit.cost_nanos == miss.cost_nanos
    assert (hit.prompt_tokens, hit.completion_tokens) == (miss.prompt_tokens, miss.completion_tokens)
