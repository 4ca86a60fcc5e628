"""Observability through HTTP: exact metric increments after known traffic, per-request headers, health."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.limits.policy import Limits
from sluice.limits.repository import LimitRepository
from sluice.limits.setup import load_policies
from tests.fakes import FakeOpenAI, Fault, Reply
from tests.support.keys import NewKey, create_key
from tests.support.processes import PrivateRedis
from tests.support.server import SluiceServer, make_settings

METRICS_TOKEN = "metrics-token-for-tests"
# The database refuses usage records (as a full disk or a broken replica would), so they stay in the spool.
REFUSE_USAGE = (
    "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
)


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
    # Refused before routing, but for a configured model: counted under that model's name.
    assert delta("sluice_requests_total", model="gpt-fake", status_class="4xx", error_type="rate_limit") == 1
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
    assert delta("sluice_request_duration_seconds_count", model="gpt-fake") == 3  # the success, the 502, the 429
    assert delta("sluice_gateway_overhead_seconds_count", surface="openai") == 2  # the two that reached upstream
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


def test_retries_fallbacks_and_circuit_state_are_counted(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream:
        config = {
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
            "models": [
                {
                    "name": "flaky",
                    "fallbacks": [{"model": "backup", "on": ["upstream_error"]}],
                    "deployments": [{"provider": "up", "model": "a"}, {"provider": "up", "model": "b"}],
                },
                {"name": "backup", "deployments": [{"provider": "up", "model": "c"}]},
            ],
            "observability": {"metrics_token": METRICS_TOKEN},
            # One budget of attempts per request, fallbacks included: a, b, then backup's c.
            "routing": {"max_attempts": 3, "backoff_base": 0.001},
            "breaker": {"consecutive_failures": 1, "open_seconds": 600},  # one failure opens a circuit
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            before = scrape(server)
            upstream.enqueue(Fault("status", status=500), Fault("status", status=500))
            with server.client() as http:
                answer = http.post("/v1/chat/completions", json=chat("flaky"))
            after = scrape(server)
    assert answer.status_code == 200 and answer.headers["x-sluice-deployment"] == "backup#0:up/c"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Attempts: flaky's first deployment, then its second (a retry), then backup (a retry, after a fallback).
    assert delta("sluice_retries_total") == 2
    assert delta("sluice_retries_total", deployment="backup#0:up/c") == 1
    assert delta("sluice_fallbacks_total", model="flaky") == 1
    assert delta("sluice_upstream_errors_total", kind="upstream_500") == 2
    assert value(after, "sluice_circuit_state", deployment="flaky#0:up/a") == 2  # open
    assert value(after, "sluice_circuit_state", deployment="flaky#1:up/b") == 2
    assert ("sluice_circuit_state", (("deployment", "backup#0:up/c"),)) not in after  # never left closed


def test_outbox_backlog_and_failures_follow_a_database_that_refuses_usage(tmp_path: Path) -> None:
    config = {"observability": {"metrics_token": METRICS_TOKEN}}
    with SluiceServer(make_settings(tmp_path, config)) as server:
        shipper = server.services.accounting.shipper
        registry = server.services.metrics.registry

        async def failures() -> tuple[float, int]:
            """The failure counter and the shipper's own count of failed attempts, read at the same moment."""
            return registry.get_sample_value("sluice_usage_outbox_failures_total"), shipper.failures

        database = sqlite3.connect(tmp_path / "sluice.db")
        database.execute(REFUSE_USAGE)
        database.commit()
        try:
            counted_before, _ = server.call(failures())
            with server.client() as http:
                for _ in range(3):
                    assert http.post("/v1/chat/completions", json=chat("mock-1")).status_code == 200
            assert value(scrape(server), "sluice_usage_outbox_backlog") == 3  # answered, spooled, not shipped
            deadline = time.monotonic() + 30
            while server.call(failures())[1] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            counted, attempts = server.call(failures())
            assert attempts >= 1 and counted - counted_before == attempts  # one per failed attempt, exactly
        finally:
            database.execute("DROP TRIGGER refuse_usage")
            database.commit()
        deadline = time.monotonic() + 60
        while value(scrape(server), "sluice_usage_outbox_backlog") != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert value(scrape(server), "sluice_usage_outbox_backlog") == 0
        assert database.execute("SELECT count(*) FROM usage_records").fetchone()[0] == 3
        database.close()


def test_limit_store_errors_are_counted_once_per_admission_that_found_redis_down(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    try:
        config = {
            "redis_url": redis.url,
            "limits": {"backend": "redis", "on_redis_error": "local_fallback", "defaults": {"key": {"rpm": 1000}}},
            "observability": {"metrics_token": METRICS_TOKEN},
        }
        with SluiceServer(make_settings(tmp_path / "gw", config)) as server:
            key: NewKey = server.call(create_key(server.services.db, "limited"))
            with server.client(key.secret) as http:
                assert http.post("/v1/chat/completions", json=chat("mock-1")).status_code == 200
                before = scrape(server)
                redis.stop()
                for _ in range(2):
                    assert http.post("/v1/chat/completions", json=chat("mock-1")).status_code == 200
            after = scrape(server)
    finally:
        redis.stop()
    # Each admission fails over to the per-replica counters; their settlement goes there too (no second error).
    assert value(after, "sluice_limit_store_errors_total") - value(before, "sluice_limit_store_errors_total") == 2


def test_response_headers_off_removes_every_timing_header_but_keeps_the_request_id(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream:
        config = {
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
            "models": [{"name": "queued", "deployments": [{"provider": "up", "capacity": 2}]}],
            "observability": {"response_headers": False},
        }
        with SluiceServer(make_settings(tmp_path, config)) as server, server.client() as http:
            plain = http.post("/v1/chat/completions", json=chat("queued"), headers={"x-request-id": "plain-1"})
            streamed = http.post("/v1/chat/completions", json={**chat("queued"), "stream": True})
            refused = http.post("/v1/chat/completions", json=chat("no-such-model"))
    for resp in (plain, streamed, refused):
        assert [name for name in resp.headers if name.startswith("x-sluice-")] == []
        assert resp.headers["x-request-id"]
    assert plain.status_code == 200 and streamed.status_code == 200 and refused.status_code == 404
    assert plain.headers["x-request-id"] == "plain-1"


def test_metrics_off_closes_the_endpoint_and_records_nothing_per_request(tmp_path: Path) -> None:
    with SluiceServer(make_settings(tmp_path, {"observability": {"metrics": False}})) as server:
        with server.client() as http:
            for _ in range(3):
                assert http.post("/v1/chat/completions", json=chat("mock-1")).status_code == 200
            missing = http.post("/v1/chat/completions", json=chat("no-such-model"))
            closed = httpx.get(f"{server.url}/metrics")
        registry = server.services.metrics.registry
        recorded = {sample.name for family in registry.collect() for sample in family.samples}
    assert missing.status_code == 404
    assert closed.status_code == 404 and closed.json()["error"]["message"] == "Metrics are disabled."
    per_request = {
        "sluice_requests_total",
        "sluice_request_duration_seconds_count",
        "sluice_gateway_overhead_seconds_count",
        "sluice_tokens_total",
        "sluice_in_flight_requests",
    }
    assert not per_request & recorded, sorted(per_request & recorded)


def test_admin_changes_are_audited_under_the_request_id_their_response_carries(gateway: SluiceServer) -> None:
    with gateway.client() as http:
        workspace = http.post("/admin/v1/workspaces", json={"name": "audited"})
        generated = workspace.headers["x-request-id"]
        key = http.post(
            "/admin/v1/keys",
            json={"name": "audited", "workspace_id": workspace.json()["id"]},
            headers={"x-request-id": "admin-change-1"},
        )
        unsafe = {"x-request-id": "no spaces, please"}
        insane = http.post("/admin/v1/workspaces", json={"name": "other"}, headers=unsafe)
        audit = http.get("/admin/v1/audit").json()
        unauthenticated = httpx.get(f"{gateway.url}/admin/v1/keys", headers={"x-request-id": "refused-1"})
        health = httpx.get(f"{gateway.url}/health/live")
    assert workspace.status_code == 201 and key.status_code == 201 and insane.status_code == 201
    assert re.fullmatch(r"[0-9a-f]{24}", generated)  # none sent: one is made
    assert key.headers["x-request-id"] == "admin-change-1"  # a sane one is honoured
    assert re.fullmatch(r"[0-9a-f]{24}", insane.headers["x-request-id"])  # an unsafe one is replaced
    audited = {row["target_id"]: row["request_id"] for row in audit}
    assert audited[workspace.json()["id"]] == generated
    assert audited[key.json()["id"]] == "admin-change-1"
    assert audited[insane.json()["id"]] == insane.headers["x-request-id"]
    assert unauthenticated.status_code == 401 and unauthenticated.headers["x-request-id"] == "refused-1"
    assert re.fullmatch(r"[0-9a-f]{24}", health.headers["x-request-id"])
