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
        # the master key's class refuses to wait: a deployment whose one slot is taken answers queue_full
        "scheduling": {
            "classes": [
                {"name": "interactive", "weight": 300, "max_queue": 0},
                {"name": "standard", "weight": 200},
                {"name": "batch", "weight": 100},
            ]
        },
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
            {
                "name": "budgeted",
                "routing": {"max_attempts": 2},
                "fallbacks": [{"model": "backup"}],
                "deployments": [_dep("a"), _dep("a", order=1)],
            },
            {"name": "limited", "fallbacks": [{"model": "backup", "on": ["rate_limit"]}], "deployments": [_dep("a")]},
            {"name": "small", "fallbacks": [{"model": "backup", "on": ["context_window"]}], "deployments": [_dep("a")]},
            {"name": "visible", "routing": {"max_attempts": 1}, "deployments": [_dep("a")]},
            {"name": "queued", "deployments": [_dep("a", capacity=1), _dep("b", capacity=1, order=1)]},
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
    """A listed fallback goes before retrying the failed deployment: one attempt on each."""
    a, b = upstreams
    a.enqueue(Fault("status", status=500))
    resp = call(gateway, "openai", "primary", "fallback-1")
    assert resp.status_code == 200 and (a.attempts, b.attempts) == (1, 1)
    [record] = records(gateway, "fallback-1")
    assert record.model == "primary" and record.deployment is not None and record.deployment.startswith("backup")


def test_max_attempts_counts_for_the_whole_request_fallbacks_included(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = upstreams
    a.enqueue(Fault("status", status=500), Fault("status", status=500))
    resp = call(gateway, "openai", "budgeted", "budget-1")
    assert resp.status_code == 502
    assert (a.attempts, b.attempts) == (2, 0)  # both deployments spent the budget of 2; no third for the fallback
    [record] = records(gateway, "budget-1")
    assert record.status == 502 and record.cost_nanos == 0


@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize(
    ("model", "fault"),
    [
        ("limited", Fault("status", status=429, retry_after=0)),
        ("small", Fault("status", status=400, message="This model's maximum context length is 8192 tokens.")),
    ],
    ids=["rate_limit", "context_window"],
)
def test_cross_model_fallback_on_rate_limit_and_context_window(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI], surface: str, model: str, fault: Fault
) -> None:
    a, b = upstreams
    a.enqueue(fault)
    rid = f"cross-{model}-{surface}"
    resp = call(gateway, surface, model, rid)
    assert resp.status_code == 200, resp.text
    assert (a.attempts, b.attempts) == (1, 1)
    assert resp.headers["x-sluice-deployment"].startswith("backup#")
    [record] = records(gateway, rid)
    assert record.model == model and record.deployment is not None and record.deployment.startswith("backup#")
    assert record.completion_tokens == 6


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
    # The previous tests' abandoned and failed calls settle on the server's own loop, possibly after their
    # clients returned: polled with a deadline, not read once.
    deadline = time.monotonic() + 10
    while not all(state.in_flight == 0 for state in gateway.services.gateway.router.states().values()):
        assert time.monotonic() < deadline, "calls still in flight 10 s after the last test"
        time.sleep(0.05)


# --- a full queue fails over to a sibling deployment ------------------------------------------------------------


def _async_client(gateway: SluiceServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway.url, timeout=30, headers={"Authorization": f"Bearer {gateway.master_key}"}
    )


async def test_a_full_queue_fails_over_to_a_sibling_deployment(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    """Two capacity-1 deployments: the second request goes to B while A is busy; with both busy, 429."""
    a, b = upstreams
    path, body = SURFACES["openai"]
    holders: list[asyncio.Task[httpx.Response]] = []
    async with _async_client(gateway) as http:
        try:
            a.enqueue(Reply(delay=30))  # holds A's one slot
            holders.append(asyncio.create_task(http.post(path, json=body("queued"))))
            assert await a.wait_for_async(lambda: a.in_flight == 1)
            served = await http.post(path, json=body("queued"), headers={"X-Request-ID": "queue-over"})
            assert served.status_code == 200, served.text
            assert served.headers["x-sluice-deployment"].startswith("queued#1:b/")
            assert (a.attempts, b.attempts) == (1, 1)
            b.enqueue(Reply(delay=30))  # now B's one slot is held too
            holders.append(asyncio.create_task(http.post(path, json=body("queued"))))
            assert await b.wait_for_async(lambda: b.in_flight == 1)
            refused = await http.post(path, json=body("queued"))
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "queue_full" and int(refused.headers["retry-after"]) >= 1
            assert (a.attempts, b.attempts) == (1, 2)  # the refused request reached no upstream
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
    [record] = records(gateway, "queue-over")
    assert record.status == 200 and record.deployment is not None and record.deployment.startswith("queued#1:b/")
    assert await a.wait_for_async(lambda: a.in_flight == 0 and b.in_flight == 0)


# --- the circuit's state is visible, half-open included -----------------------------------------------------------


def _circuit(gateway: SluiceServer, model: str) -> tuple[str, float]:
    """(state in the admin API, value of sluice_circuit_state) of the model's only deployment."""
    with gateway.client() as http:
        [deployment] = http.get(f"/admin/v1/models/{model}").json()["deployments"]
        metrics = http.get("/metrics").text
    prefix = f'sluice_circuit_state{{deployment="{deployment["id"]}"}} '
    [value] = [line.removeprefix(prefix) for line in metrics.splitlines() if line.startswith(prefix)]
    return deployment["circuit"], float(value)


async def test_the_circuit_state_is_visible_open_half_open_and_closed(
    gateway: SluiceServer, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, _ = upstreams
    a.enqueue(*[Fault("status", status=500)] * 5)
    for i in range(5):
        assert call(gateway, "openai", "visible", f"visible-{i}").status_code == 502
    assert _circuit(gateway, "visible") == ("open", 2.0)
    await asyncio.sleep(1.1)  # breaker.open_seconds
    a.enqueue(Reply(delay=30))
    path, body = SURFACES["openai"]
    async with _async_client(gateway) as http:
        probe = asyncio.create_task(http.post(path, json=body("visible")))
        assert await a.wait_for_async(lambda: a.in_flight == 1)
        assert _circuit(gateway, "visible") == ("half_open", 1.0)  # while the probe is out
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
    assert await a.wait_for_async(lambda: len(a.disconnects) == 1)  # the abandoned probe freed its claim
    assert call(gateway, "openai", "visible", "visible-probe").status_code == 200
    assert _circuit(gateway, "visible") == ("closed", 0.0)
