"""Usage and cost are the same whichever way a call is made: every surface (OpenAI, Anthropic, Ollama) against
every upstream kind (fake OpenAI, fake Anthropic, fake Ollama, the built-in mock), streamed or not; a stream the
client abandons is billed for what was generated; an upstream that reports no usage is billed an estimate marked
``estimated``; a failed call gives its reservation back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sluice.limits.policy import Limits
from sluice.limits.repository import LimitRepository
from sluice.limits.setup import load_policies
from sluice.store.models import UsageRecord
from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, Fault, Reply
from tests.support.keys import NewKey, create_key
from tests.support.server import SluiceServer, make_settings

PRICE = {"input": 2.0, "output": 8.0, "cached_input": 1.0}
ANSWER = Reply(text="The quick answer is forty-two.", prompt_tokens=21, completion_tokens=9, cached_tokens=4)
UPSTREAMS = ["openai", "anthropic", "ollama", "mock"]
SURFACES = ["openai", "anthropic", "ollama"]
FAKES = ["openai", "anthropic", "ollama"]
LONG = Reply(text="word " * 120, prompt_tokens=30, completion_tokens=120, chunk_delay=0.02)


@dataclass
class Rig:
    gateway: SluiceServer
    fakes: dict[str, Any]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with FakeOpenAI() as fo, FakeAnthropic() as fa, FakeOllama() as fl:
        single = {"max_attempts": 1}  # a failure is the caller's at once, not retried
        oa = {"provider": "oa", "model": "gpt-fake"}
        an = {"provider": "an", "model": "claude-fake"}
        ol = {"provider": "ol", "model": "llama-fake:latest"}
        config = {
            "providers": [
                {"name": "oa", "kind": "openai", "base_url": fo.base_url},
                {"name": "an", "kind": "anthropic", "base_url": fa.url},
                {"name": "ol", "kind": "ollama", "base_url": fl.url},
                {"name": "slowmock", "kind": "mock", "mock": {"tokens_per_second": 50, "reply_tokens": 120}},
            ],
            "models": [
                {"name": "up-openai", "price": PRICE, "routing": single, "deployments": [oa]},
                {"name": "up-anthropic", "price": PRICE, "routing": single, "deployments": [an]},
                {"name": "up-ollama", "price": PRICE, "routing": single, "deployments": [ol]},
                {"name": "up-mock", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]},
                {"name": "up-slowmock", "price": PRICE, "deployments": [{"provider": "slowmock", "model": "m"}]},
            ],
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("usage")), config)) as gateway:
            yield Rig(gateway, {"openai": fo, "anthropic": fa, "ollama": fl})


@pytest.fixture
def fresh(rig: Rig) -> Iterator[Rig]:
    for fake in rig.fakes.values():
        fake.reset()
        fake.reply = ANSWER
    yield rig


def new_key(gateway: SluiceServer, limits: Limits | None = None) -> NewKey:
    async def make() -> NewKey:
        new = await create_key(gateway.services.db, "usage")
        if limits is not None:
            async with gateway.services.db.session() as session:
                await LimitRepository(session).put("key", new.key.id, limits)
            await load_policies(gateway.services.limiter, gateway.services.db)
        return new

    result: NewKey = gateway.call(make())
    return result


def records(gateway: SluiceServer, key: NewKey) -> list[UsageRecord]:
    async def fetch() -> list[UsageRecord]:
        services = gateway.services
        while await services.accounting.shipper.ship_once():
            pass
        async with services.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.key_id == key.key.id).order_by(UsageRecord.created_at)
            return list((await session.execute(query)).scalars().all())

    result: list[UsageRecord] = gateway.call(fetch())
    return result


def request(surface: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": "What is the answer?"}]
    if surface == "openai":
        return "/v1/chat/completions", {"model": model, "messages": messages, "max_tokens": 200, "stream": stream}
    if surface == "anthropic":
        return "/v1/messages", {"model": model, "messages": messages, "max_tokens": 200, "stream": stream}
    return "/api/chat", {"model": model, "messages": messages, "stream": stream, "options": {"num_predict": 200}}


def call(http: httpx.Client, surface: str, model: str, stream: bool) -> httpx.Response:
    path, body = request(surface, model, stream)
    with http.stream("POST", path, json=body, headers={"anthropic-version": "2023-06-01"}) as resp:
        resp.read()  # a stream is read to its end, as a client that wants the whole answer does
    return resp


def billed(record: UsageRecord) -> tuple[int, int, int, int, bool]:
    return record.prompt_tokens, record.completion_tokens, record.cached_tokens, record.cost_nanos, record.estimated


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("surface", SURFACES)
def test_streamed_and_plain_calls_are_billed_alike(fresh: Rig, surface: str, upstream: str) -> None:
    key = new_key(fresh.gateway)
    with fresh.gateway.client(key.secret) as http:
        plain = call(http, surface, f"up-{upstream}", stream=False)
        streamed = call(http, surface, f"up-{upstream}", stream=True)
    assert plain.status_code == streamed.status_code == 200, (plain.text, streamed.text)
    first, second = records(fresh.gateway, key)
    assert (first.stream, second.stream) == (False, True)
    assert billed(first) == billed(second)
    assert first.cost_nanos > 0 and not first.estimated
    if upstream != "mock":  # the fakes report the scripted usage; the gateway bills exactly that
        prompt = ANSWER.prompt_tokens
        cached = ANSWER.cached_tokens if upstream != "ollama" else 0  # Ollama has no cached-token count
        assert (first.prompt_tokens, first.completion_tokens, first.cached_tokens) == (prompt, 9, cached)


@pytest.mark.parametrize("upstream", FAKES)
@pytest.mark.parametrize("surface", SURFACES)
def test_an_upstream_without_usage_is_billed_an_estimate(fresh: Rig, surface: str, upstream: str) -> None:
    fresh.fakes[upstream].reply = Reply(text=ANSWER.text, usage=False)
    key = new_key(fresh.gateway)
    with fresh.gateway.client(key.secret) as http:
        answers = [call(http, surface, f"up-{upstream}", stream) for stream in (False, True)]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    for record in records(fresh.gateway, key):
        assert record.estimated, (record.stream, billed(record))
        assert record.prompt_tokens > 0 and record.completion_tokens > 0 and record.cost_nanos > 0


@pytest.mark.parametrize("upstream", [*FAKES, "slowmock"])
@pytest.mark.parametrize("surface", SURFACES)
def test_an_abandoned_stream_is_billed_for_what_was_generated(fresh: Rig, surface: str, upstream: str) -> None:
    if upstream in fresh.fakes:
        fresh.fakes[upstream].reply = LONG
    key = new_key(fresh.gateway)
    path, body = request(surface, f"up-{upstream}", stream=True)
    with (
        fresh.gateway.client(key.secret) as http,
        http.stream("POST", path, json=body, headers={"anthropic-version": "2023-06-01"}) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        for _ in range(12):  # a few frames of the answer, then the client goes away
            next(lines)
    found: list[UsageRecord] = []
    for _ in range(100):  # the gateway settles the abandoned call as soon as it notices
        found = records(fresh.gateway, key)
        if found:
            break
        time.sleep(0.05)
    [record] = found
    assert record.status == 499 and record.error_type == "cancelled" and record.estimated
    assert 1 <= record.completion_tokens < 120  # what was generated before the client left, not the whole answer
    assert record.cost_nanos > 0


@pytest.mark.parametrize("surface", SURFACES)
def test_a_failed_call_gives_its_budget_and_slot_back(fresh: Rig, surface: str) -> None:
    # Room for one worst case (the prompt estimate plus 200 tokens, at 8 per million for output) and one slot.
    key = new_key(fresh.gateway, Limits(budget_nanos=(20 + 200) * 8_000, concurrent=1, period="day"))
    fresh.fakes["openai"].enqueue(Fault("status", status=500))
    with fresh.gateway.client(key.secret) as http:
        failed = call(http, surface, "up-openai", stream=False)
        after = call(http, surface, "up-openai", stream=False)
    with fresh.gateway.client() as admin:
        spend = admin.get(f"/admin/v1/limits/key/{key.key.id}/spend").json()
    assert failed.status_code == 502, failed.text
    assert after.status_code == 200, after.text  # the failed call's reservation and slot were released
    failed_record, ok_record = records(fresh.gateway, key)
    assert failed_record.status == 502 and failed_record.cost_nanos == 0
    assert spend["spent"] * 1e9 == pytest.approx(ok_record.cost_nanos)
