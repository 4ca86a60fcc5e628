"""Routing and resilience through HTTP: retries, failover, fallback models, circuits, strategies — on every surface.

Two fake OpenAI upstreams (A and B) count the attempts they receive; every request is checked for its status and
error shape, how many attempts it took, which deployment answered, and that it was billed exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sluice.store.models import UsageRecord
from tests.fakes import FakeOpenAI, Fault, Reply
from tests.support.server import SluiceServer, make_settings


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b:
        yield a, b


def _dep(provider: str, **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "model": "gpt-fake", **extra}


@pytest.fixture(scope="module")
def gateway(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SluiceServer]:
    a, b = upstreams
    timeouts = {"connect": 1, "first_byte": 1, "idle": 1, "total": 10}
    config = {
        "providers": [
            {"name": "a", "kind": "openai", "base_url": a.base_url, "timeouts": timeouts},
            {"name": "b", "kind": "openai", "base_url": b.base_url, "timeouts": timeouts},
        ],
        "routing": {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05},
        "breaker": {"consecutive_failures": 5, "open_seconds": 1.0, "minimum_calls": 1000},
        "models": [
            {"name": "single", "deployments": [_dep("a")]},
            {"name": "failover", "deployments": [_dep("a", order=0), _dep("b", order=1)]},
            {
                "name": "weighted",
                "routing": {"strategy": "weighted"},
                "deployments": [_dep("a", weight=1), _dep("b", weight=3)],
            },
            {"name": "latency", "routing": {"strategy": "lowest_latency"}, "deployments": [_dep("a"), _dep("b")]},
            {"name": "busy", "routing": {"strategy": "least_busy"}, "deployments": [_dep("a"), _dep("b")]},
            {
                "name": "primary",
                "fallbacks": [{"model": "backup", "on": ["upstream_error"]}],
                "deployments": [_dep("a")],
            },
            {"name": "backup", "deployments": [_dep("b")]},
            {"name": "circuit", "routing": {"max_attempts": 1}, "deployments": [_dep("a")]},
            # one model (so one circuit breaker) per surface for the test that exhausts its attempts
            *({"name": f"exhaust-{s}", "deployments": [_dep("a")]} for s in ("openai", "anthropic", "ollama")),
        ],
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    for fake in upstreams:
        fake.reset()
        fake.reply = Reply()


SURFACES = {
    "openai": ("/v1/chat/completions", lambda m: {"model": m, "messages": [{"role": "user", "content": "hi"}]}),
    "anthropic": (
        "/v1/messages",
        lambda m: {"model": m, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "ollama": ("/api/chat", lambda m: {"model": m, "stream": False, "messages": [{"role": "user", "content": "hi"}]}),
}


def call(gateway: SluiceServer, surface: str, model: str, request_id: str) -> httpx.Response:
    path, body = SURFACES[surface]
    with gateway.client() as http:
        return http.post(path, json=body(model), headers={"X-Request-ID": request_id})


def records(gateway: SluiceServer, request_id: str) -> list[UsageRecord]:
    async def fetch() -> list[UsageRecord]:
        while await gateway.services.accounting.shipper.ship_once():
            pass
        async with gateway.services.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.request_id == request_id)
            return list((await session.execute(query)).scalars())

    result: list[UsageRecord] = gateway.call(fetch())
    return result


def error_text(surface: str, resp: httpx.Response) -> str:
    body = resp.json()
    if surface == "openai":
        return str(body["error"]["message"])
    if surface == "anthropic":
        assert body["type"] == "error"
        return str(body["error"]["message"])
    return str(body["error"])


@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("status", status=503),
        Fault("status", status=429, retry_after=0),
        Fault("refuse"),
        Fault("hang", seconds=5),
    ],
    ids=["500", "503", "429", "refuse", "hang"],
)
def test_a_failure_before_the_first_byte_is_retried_and_billed_once(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI], surface: str, fault: Fault
) -> None:
    a, _ = upstreams
    a.enqueue(fault)
    rid = f"retry-{surface}-{fault.kind}-{fault.status}"
    resp = call(gateway, surface, "single", rid)
    assert resp.status_code == 200, resp.text
    assert a.attempts == 2
    [record] = records(gateway, rid)
    assert record.status == 200 and record.completion_tokens == 6


@pytest.mark.parametrize("surface", list(SURFACES))
def test_persistent_failure_stops_after_max_attempts_with_the_surfaces_error(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI], surface: str
) -> None:
    a, _ = upstreams
    a.enqueue(*[Fault("status", status=500, message="broken")] * 3)
    rid = f"exhaust-{surface}"
    resp = call(gateway, surface, f"exhaust-{surface}", rid)
    assert resp.status_code == 502
    assert "500" in error_text(surface, resp)
    assert a.attempts == 3
    [record] = records(gateway, rid)
    assert record.status == 502 and record.cost_nanos == 0


@pytest.mark.parametrize("surface", list(SURFACES))
def test_failover_moves_to_the_next_tier(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI], surface: str
) -> None:
    a, b = upstreams
    a.enqueue(Fault("status", status=500))
    rid = f"failover-{surface}"
    resp = call(gateway, surface, "failover", rid)
    assert resp.status_code == 200
    assert (a.attempts, b.attempts) == (1, 1)
    [record] = records(gateway, rid)
    assert record.deployment is not None and ":b/" in record.deployment


def test_fallback_model_takes_over_on_listed_errors(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = upstreams
    a.enqueue(*[Fault("status", status=500)] * 3)
    resp = call(gateway, "openai", "primary", "fallback-1")
    assert resp.status_code == 200 and b.attempts == 1
    [record] = records(gateway, "fallback-1")
    assert record.model == "primary" and record.deployment is not None and record.deployment.startswith("backup")


def test_rejections_are_not_retried(gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    a.enqueue(Fault("status", status=400, message="bad request"))
    resp = call(gateway, "openai", "failover", "rejected-1")
    assert resp.status_code == 400 and (a.attempts, b.attempts) == (1, 0)


def test_an_open_circuit_gets_no_traffic_until_its_probe(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, _ = upstreams
    a.enqueue(*[Fault("status", status=500)] * 5)
    for i in range(5):
        assert call(gateway, "openai", "circuit", f"trip-{i}").status_code == 502
    attempts = a.attempts
    refused = call(gateway, "openai", "circuit", "while-open")
    assert refused.status_code == 503 and a.attempts == attempts
    assert "retry-after" in refused.headers
    time.sleep(1.1)
    assert call(gateway, "openai", "circuit", "probe").status_code == 200
    assert a.attempts == attempts + 1
    assert call(gateway, "openai", "circuit", "closed-again").status_code == 200


def test_weighted_split(gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    for i in range(200):
        assert call(gateway, "openai", "weighted", f"w-{i}").status_code == 200
    assert b.attempts / 200 == pytest.approx(0.75, abs=0.1)
    assert a.attempts + b.attempts == 200


def test_lowest_latency_prefers_the_faster_upstream(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = upstreams
    a.reply = Reply(delay=0.05)
    for i in range(60):
        assert call(gateway, "openai", "latency", f"lat-{i}").status_code == 200
    assert b.attempts > 2 * a.attempts


def test_least_busy_prefers_the_idle_upstream(gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    """A slow upstream keeps its requests longer, so arrivals spread over time go mostly to the quick one."""
    a, b = upstreams
    a.reply = Reply(delay=0.3)
    b.reply = Reply(delay=0.01)

    async def trickle() -> Counter[str]:
        async with httpx.AsyncClient(
            base_url=gateway.url, timeout=10, headers={"Authorization": f"Bearer {gateway.master_key}"}
        ) as http:
            path, body = SURFACES["openai"]
            tasks = []
            for _ in range(40):
                tasks.append(asyncio.create_task(http.post(path, json=body("busy"))))
                await asyncio.sleep(0.01)
            results = await asyncio.gather(*tasks)
            return Counter(r.headers["x-sluice-deployment"].split(":")[1][0] for r in results)

    served = asyncio.run(trickle())
    assert served["b"] > 2 * served["a"], served


def test_in_flight_returns_to_zero(gateway: SluiceServer) -> None:
    states = gateway.services.gateway.router.states()
    assert all(state.in_flight == 0 for state in states.values())
