"""Observability through HTTP: exact metric increments after known traffic, per-request headers, health."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.identity.key_service import NewKey, create_key
from sluice.limits.policy import Limits
from sluice.limits.repository import LimitRepository
from sluice.limits.setup import load_policies
from tests.fakes import FakeOpenAI, Fault, Reply
from tests.support.server import SluiceServer, make_settings

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {
        "providers": [{"name": "up", "kind": "openai", "base_url": fake.base_url}],
        "models": [{"name": "gpt-fake", "price": {"input": 1.0, "output": 2.0}, "deployments": [{"provider": "up"}]}],
        "observability": {"metrics_token": METRICS_TOKEN},
        "routing": {"max_attempts": 1},
        "breaker": {"consecutive_failures": 1000, "minimum_calls": 1000},  # failures on purpose here
        # upstream errors reach the client as they are; retries are tested apart
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


def scrape(gateway: SluiceServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def chat(model: str = "gpt-fake") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def test_metrics_need_the_token(gateway: SluiceServer) -> None:
    assert httpx.get(f"{gateway.url}/metrics").status_code == 401
    assert httpx.get(f"{gateway.url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_known_traffic_moves_each_counter_by_exactly_its_amount(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    key: NewKey = gateway.call(create_key(gateway.services.db, "metered"))

    async def limit() -> None:
        async with gateway.services.db.session() as session:
            await LimitRepository(session).put("key", key.key.id, Limits(rpm=2))
        await load_policies(gateway.services.limiter, gateway.services.db)

    gateway.call(limit())
    before = scrape(gateway)
    with gateway.client(key.secret) as http:
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200
        fake.enqueue(Fault("status", status=500))
        assert http.post("/v1/chat/completions", json=chat()).status_code == 502
        assert http.post("/v1/chat/completions", json=chat()).status_code == 429  # third in the minute
        assert http.post("/v1/chat/completions", json=chat("made-up-model")).status_code == 404
    after = scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"surface": "openai", "model": "gpt-fake", "status_class": "2xx"}
    assert delta("sluice_requests_total", **ok) == 1
    assert delta("sluice_requests_total", status_class="5xx", error_type="upstream_error") == 1
    assert delta("sluice_requests_total", status_class="4xx", error_type="rate_limit") == 1
    assert delta("sluice_requests_total", model="unknown", error_type="not_found") == 1
    assert (
        "made-up-model"
        not in httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    )
    assert delta("sluice_limit_rejections_total", scope="key", limit="rpm") == 1
    assert delta("sluice_upstream_errors_total", kind="upstream_500") == 1
    assert delta("sluice_tokens_total", model="gpt-fake", kind="prompt") == 10  # the fake's default usage
    assert delta("sluice_tokens_total", model="gpt-fake", kind="completion") == 6
    assert delta("sluice_cost_total", model="gpt-fake") == pytest.approx((10 * 1.0 + 6 * 2.0) / 1e6)
    assert delta("sluice_request_duration_seconds_count", model="gpt-fake") == 2  # the success and the 502
    assert delta("sluice_gateway_overhead_seconds_count", surface="openai") == 2
    assert delta("sluice_time_to_first_token_seconds_count", model="gpt-fake") == 1
    assert value(after, "sluice_in_flight_requests") == 0
    assert value(after, "sluice_build_info") == 1


def test_overhead_buckets_resolve_sub_millisecond_values(gateway: SluiceServer) -> None:
    samples = scrape(gateway)
    bounds = {float(dict(ls)["le"]) for (n, ls) in samples if n == "sluice_gateway_overhead_seconds_bucket"}
    assert {0.00005, 0.0001, 0.00025, 0.0005} <= bounds


def test_responses_carry_request_id_overhead_upstream_time_and_deployment(gateway: SluiceServer) -> None:
    with gateway.client() as http:
        plain = http.post("/v1/chat/completions", json=chat())
        streamed = http.post("/v1/chat/completions", json={**chat(), "stream": True})
    for resp in (plain, streamed):
        assert resp.status_code == 200
        assert resp.headers["x-request-id"]
        assert float(resp.headers["x-sluice-overhead-ms"]) >= 0
        assert float(resp.headers["x-sluice-upstream-ms"]) > 0
        assert resp.headers["x-sluice-deployment"].startswith("gpt-fake#0:up/")


def test_health_endpoints(gateway: SluiceServer) -> None:
    assert httpx.get(f"{gateway.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"


def test_cache_hits_and_queued_requests_are_counted(tmp_path: Path) -> None:
    with FakeOpenAI(reply=Reply(delay=0.3)) as upstream:
        config = {
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
            "models": [
                {"name": "cached", "cache": True, "deployments": [{"provider": "up"}]},
                {"name": "narrow", "deployments": [{"provider": "up", "capacity": 1}]},
            ],
            "observability": {"metrics_token": METRICS_TOKEN},
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            before = scrape(server)
            with server.client(server.master_key) as http:
                assert http.post("/v1/chat/completions", json=chat("cached")).status_code == 200
                hit = http.post("/v1/chat/completions", json=chat("cached"))
                assert hit.status_code == 200 and hit.headers["x-sluice-cache"] == "hit"

            def one() -> int:
                with server.client(server.master_key) as client:
                    return client.post("/v1/chat/completions", json=chat("narrow")).status_code

            with ThreadPoolExecutor(2) as pool:
                assert list(pool.map(lambda _: one(), range(2))) == [200, 200]
            after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("sluice_cache_requests_total", result="miss") == 1
    assert delta("sluice_cache_requests_total", result="hit") == 1
    assert delta("sluice_requests_total", model="cached", status_class="2xx") == 2
    assert delta("sluice_requests_total", model="cached", deployment="cache") == 1
    assert upstream.attempts == 3  # the hit never reached the upstream
    waits = delta("sluice_queue_wait_seconds_count")
    assert waits == 2  # both requests to the capacity-1 deployment went through the scheduler
    slow = delta("sluice_queue_wait_seconds_count") - delta("sluice_queue_wait_seconds_bucket", le="0.05")
    assert slow == 1  # one of them waited for the other's slot (about 0.3 s)
