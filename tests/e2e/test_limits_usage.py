"""Limits, budgets and usage records through the HTTP surface (in-process limit store)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from sluice.limits.policy import Limits
from sluice.limits.repository import LimitRepository
from sluice.limits.setup import load_policies
from sluice.store.models import UsageRecord
from tests.support.keys import NewKey, create_key
from tests.support.server import SluiceServer, make_settings

# 1 per million tokens in and out: every token costs 1000 nanos.
PRICE = {"input": 1.0, "output": 1.0}


@pytest.fixture(scope="module")
def gateway(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {
        "database_url": database_url,
        "providers": [{"name": "slow", "kind": "mock", "mock": {"tokens_per_second": 200, "reply_tokens": 400}}],
        "models": [
            {"name": "priced", "price": PRICE, "deployments": [{"provider": "mock", "model": "mock-1"}]},
            {"name": "slow-priced", "price": PRICE, "deployments": [{"provider": "slow", "model": "mock-slow"}]},
        ],
        "limits": {"role_defaults": {"owner": {"budget": 7, "period": "week"}}},
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


def new_key(gateway: SluiceServer, limits: Limits | None = None, role: str = "member") -> NewKey:
    async def make() -> NewKey:
        services = gateway.services
        new = await create_key(services.db, "limited", role=role)
        if limits is not None:
            async with services.db.session() as session:
                await LimitRepository(session).put("key", new.key.id, limits)
            await load_policies(services.limiter, services.db)
        return new

    result: NewKey = gateway.call(make())
    return result


def records(gateway: SluiceServer, **where: Any) -> list[UsageRecord]:
    async def fetch() -> list[UsageRecord]:
        services = gateway.services
        while await services.accounting.shipper.ship_once():
            pass
        async with services.db.session() as session:
            query = select(UsageRecord).order_by(UsageRecord.created_at)
            for column, value in where.items():
                query = query.where(getattr(UsageRecord, column) == value)
            return list((await session.execute(query)).scalars().all())

    result: list[UsageRecord] = gateway.call(fetch())
    return result


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "priced", "messages": [{"role": "user", "content": "Hello there"}], **extra}


def test_rpm_limit_refuses_the_fourth_request_with_retry_after(gateway: SluiceServer) -> None:
    key = new_key(gateway, Limits(rpm=3))
    with gateway.client(key.secret) as http:
        ok = [http.post("/v1/chat/completions", json=chat()) for _ in range(3)]
        refused = http.post("/v1/chat/completions", json=chat())
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-sluice-limit-scope"] == "key" and refused.headers["x-sluice-limit"] == "rpm"
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and "3 requests per minute" in error["message"]


def test_token_limit_counts_the_worst_case(gateway: SluiceServer) -> None:
    key = new_key(gateway, Limits(tpm=100))
    with gateway.client(key.secret) as http:
        too_big = http.post("/v1/chat/completions", json=chat(max_tokens=500))
        fits = http.post("/v1/chat/completions", json=chat(max_tokens=50))
    assert too_big.status_code == 429 and too_big.headers["x-sluice-limit"] == "tpm"
    assert fits.status_code == 200 and fits.headers["x-ratelimit-limit-tokens"] == "100"


def test_fifty_concurrent_requests_against_a_budget_for_one(gateway: SluiceServer) -> None:
    key = new_key(gateway, Limits(budget_nanos=60_000))  # one worst case (9 + 30 tokens) fits, two do not

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {key.secret}"}, timeout=20
        ) as http:
            return await asyncio.gather(
                *(http.post("/v1/chat/completions", json=chat(max_tokens=30)) for _ in range(50))
            )

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    spent = sum(r.cost_nanos for r in records(gateway, key_id=key.key.id))
    assert 0 < spent <= 60_000


def test_master_key_is_never_limited(gateway: SluiceServer) -> None:
    with gateway.client() as http:
        resp = http.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 200 and "x-ratelimit-limit-requests" not in resp.headers


def test_every_request_gets_one_usage_record_with_tokens_and_cost(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    with gateway.client(key.secret) as http:
        body = http.post("/v1/chat/completions", json=chat(), headers={"X-Request-ID": "usage-test-1"}).json()
        http.post("/v1/chat/completions", json=chat(model="no-such-model"))
    [ok, missing] = records(gateway, key_id=key.key.id)
    assert ok.request_id == "usage-test-1" and ok.status == 200 and ok.error_type is None
    assert (ok.prompt_tokens, ok.completion_tokens) == (body["usage"]["prompt_tokens"], 16)
    assert ok.cost_nanos == (ok.prompt_tokens + ok.completion_tokens) * 1000
    assert ok.model == "priced" and ok.upstream_model == "mock-1" and ok.surface == "openai"
    assert ok.workspace_id == "default" and ok.latency_ms > 0 and ok.overhead_ms is not None
    assert missing.status == 404 and missing.error_type == "not_found" and missing.cost_nanos == 0


def test_streamed_and_non_streamed_calls_are_billed_the_same(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key.secret, max_retries=0) as client:
        client.chat.completions.create(**chat(max_tokens=10))
        list(client.chat.completions.create(**chat(max_tokens=10), stream=True))
    plain, streamed = records(gateway, key_id=key.key.id)
    assert (plain.stream, streamed.stream) == (False, True)
    assert (plain.prompt_tokens, plain.completion_tokens) == (streamed.prompt_tokens, streamed.completion_tokens)
    assert plain.cost_nanos == streamed.cost_nanos > 0
    assert not plain.estimated and not streamed.estimated


def test_an_abandoned_stream_is_billed_for_what_was_generated(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    body = chat(model="slow-priced", stream=True)
    with (
        httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key.secret}"}, timeout=10) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        lines = resp.iter_lines()
        for _ in range(20):
            next(lines)
    deadline = time.monotonic() + 5
    found: list[UsageRecord] = []
    while not found and time.monotonic() < deadline:
        found = records(gateway, key_id=key.key.id)
        time.sleep(0.05)
    [record] = found
    assert record.status == 499 and record.error_type == "cancelled"
    assert record.estimated and 5 <= record.completion_tokens < 400
    assert record.cost_nanos > 0


# --- role defaults and stored policies --------------------------------------------------------------------------


def test_a_role_default_put_through_the_api_limits_keys_of_that_role(gateway: SluiceServer) -> None:
    viewer, member = new_key(gateway, role="viewer"), new_key(gateway)
    with gateway.client() as admin:
        put = admin.put("/admin/v1/limits/roles/viewer", json={"rpm": 1})
        try:
            assert put.status_code == 200 and put.json()["source"] == "stored"
            with gateway.client(viewer.secret) as v, gateway.client(member.secret) as m:
                assert [v.post("/v1/chat/completions", json=chat()).status_code for _ in range(2)] == [200, 429]
                assert [m.post("/v1/chat/completions", json=chat()).status_code for _ in range(2)] == [200, 200]
            shown = admin.get(f"/admin/v1/limits/key/{viewer.key.id}").json()
            assert (shown["rpm"], shown["source"], shown["role"]) == (1, "role", "viewer")
            roles = {r["id"]: r for r in admin.get("/admin/v1/limits/roles").json()}
            assert roles["viewer"]["source"] == "stored" and roles["owner"]["source"] == "config"
            assert roles["owner"]["budget"] == 7 and roles["admin"]["source"] == "none"
            audit = admin.get("/admin/v1/audit", params={"action": "limits.put"}).json()
            assert any(e["target_type"] == "role" and e["target_id"] == "viewer" for e in audit)
        finally:
            deleted = admin.delete("/admin/v1/limits/roles/viewer")
        assert deleted.status_code == 204
        assert admin.delete("/admin/v1/limits/roles/viewer").status_code == 404
        assert admin.get("/admin/v1/limits/roles/viewer").json()["source"] == "none"
        wrong = admin.put("/admin/v1/limits/roles/memebr", json={"rpm": 1})
        assert wrong.status_code == 422
    with gateway.client(viewer.secret) as v:
        assert v.post("/v1/chat/completions", json=chat()).status_code == 200  # the window still holds one...
        assert v.post("/v1/chat/completions", json=chat()).status_code == 200  # ...but no limit applies now


def test_limits_and_spend_views_resolve_like_admission(gateway: SluiceServer) -> None:
    owner_key, plain = new_key(gateway, role="owner"), new_key(gateway)
    with gateway.client(owner_key.secret) as http:
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200
    [record] = records(gateway, key_id=owner_key.key.id)
    with gateway.client() as admin:
        limits = admin.get(f"/admin/v1/limits/key/{owner_key.key.id}").json()
        spend = admin.get(f"/admin/v1/limits/key/{owner_key.key.id}/spend").json()
        none = admin.get(f"/admin/v1/limits/key/{plain.key.id}").json()
    assert (limits["budget"], limits["period"], limits["source"], limits["role"]) == (7, "week", "role", "owner")
    assert (spend["budget"], spend["period"], spend["source"]) == (7, "week", "role")
    assert spend["spent"] == record.cost_nanos / 1e9 and spend["remaining"] == 7 - spend["spent"]
    assert none["source"] == "none" and none["budget"] is None


def test_limits_put_through_the_api_apply_to_the_next_admission(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    with gateway.client(key.secret) as http, gateway.client() as admin:
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200
        assert admin.put(f"/admin/v1/limits/key/{key.key.id}", json={"rpm": 1}).status_code == 200
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200  # the first in its window
        refused = http.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 429 and refused.headers["x-sluice-limit"] == "rpm"
        assert admin.delete(f"/admin/v1/limits/key/{key.key.id}").status_code == 204
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200


def test_limits_stored_elsewhere_apply_at_the_next_refresh(gateway: SluiceServer) -> None:
    """Another replica (or the CLI) writes a policy; this gateway applies it at its stored-settings refresh."""
    key = new_key(gateway)
    services = gateway.services

    async def store_elsewhere() -> None:
        async with services.db.session() as session:
            await LimitRepository(session).put("key", key.key.id, Limits(rpm=2))

    gateway.call(store_elsewhere())
    with gateway.client(key.secret) as http:
        before = [http.post("/v1/chat/completions", json=chat()).status_code for _ in range(3)]
        gateway.call(services._refresh_stored())
        after = [http.post("/v1/chat/completions", json=chat()).status_code for _ in range(3)]
    assert before == [200, 200, 200]  # not yet known here
    assert after == [200, 200, 429]  # counted from the refresh on


# --- CSV export -------------------------------------------------------------------------------------------------


def test_csv_export_never_hands_a_spreadsheet_a_formula(gateway: SluiceServer) -> None:
    key = new_key(gateway)
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    with gateway.client(key.secret) as http:
        for i, text in enumerate(hostile):
            # Request ids are [A-Za-z0-9._:-]: of the formula starts only "-" gets through.
            http.post("/v1/chat/completions", json=chat(model=text), headers={"X-Request-ID": f"-{i}-1"})
    records(gateway, key_id=key.key.id)  # shipped to the database
    with gateway.client() as admin:
        resp = admin.get("/admin/v1/usage/export.csv", params={"key_id": key.key.id})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    assert sorted(r["model"] for r in rows) == sorted("'" + t for t in hostile)
    assert sorted(r["request_id"] for r in rows) == [f"'-{i}-1" for i in range(len(hostile))]
    assert {r["status"] for r in rows} == {"404"} and {r["prompt_tokens"] for r in rows} == {"0"}


# --- refusals and quota headers in every surface's own shape -----------------------------------------------------

ANTHROPIC_BODY = {"model": "priced", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello there"}]}
OLLAMA_BODY = {"model": "priced", "messages": [{"role": "user", "content": "Hello there"}], "stream": False}
SURFACE_CALLS = {
    "openai": ("/v1/chat/completions", chat(max_tokens=16)),
    "anthropic": ("/v1/messages", ANTHROPIC_BODY),
    "ollama": ("/api/chat", {**OLLAMA_BODY, "options": {"num_predict": 16}}),
}


@pytest.mark.parametrize("surface", sorted(SURFACE_CALLS))
def test_admitted_answers_carry_the_quota_headers(gateway: SluiceServer, surface: str) -> None:
    key = new_key(gateway, Limits(rpm=5, tpm=10_000))
    path, body = SURFACE_CALLS[surface]
    with gateway.client(key.secret) as http:
        first = http.post(path, json=body, headers={"anthropic-version": "2023-06-01"})
        second = http.post(path, json=body, headers={"anthropic-version": "2023-06-01"})
    assert first.status_code == second.status_code == 200, first.text
    h = second.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("5", "3")
    assert h["x-ratelimit-reset-requests"] == h["x-ratelimit-reset-tokens"] == "60s"  # the first left at 60 s
    assert h["x-ratelimit-limit-tokens"] == "10000"
    spent_by_first = 10_000 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert 16 < spent_by_first < 10_000  # the prompt estimate plus max_tokens, before settlement
    assert int(h["x-ratelimit-remaining-tokens"]) < int(first.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.parametrize(
    ("surface", "status", "shape"),
    [
        ("openai", 429, lambda b: (b["error"]["type"], b["error"]["code"])),
        ("anthropic", 429, lambda b: (b["type"], b["error"]["type"])),
        ("ollama", 429, lambda b: tuple(b)),
    ],
)
def test_a_rate_limit_refusal_in_each_surfaces_shape(
    gateway: SluiceServer, surface: str, status: int, shape: Callable[[dict[str, Any]], tuple[str, ...]]
) -> None:
    key = new_key(gateway, Limits(rpm=1))
    path, body = SURFACE_CALLS[surface]
    with gateway.client(key.secret) as http:
        assert http.post(path, json=body, headers={"anthropic-version": "2023-06-01"}).status_code == 200
        refused = http.post(path, json=body, headers={"anthropic-version": "2023-06-01"})
    assert refused.status_code == status
    assert refused.headers["x-sluice-limit"] == "rpm" and refused.headers["x-sluice-limit-scope"] == "key"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    expected = {
        "openai": ("rate_limit_error", "rpm_limit"),
        "anthropic": ("error", "rate_limit_error"),
        "ollama": ("error",),
    }[surface]
    assert shape(refused.json()) == expected
    assert "1 requests per minute" in refused.text


@pytest.mark.parametrize(("surface", "status"), [("openai", 429), ("anthropic", 403), ("ollama", 403)])
def test_an_exhausted_budget_is_refused_by_each_surfaces_convention(
    gateway: SluiceServer, surface: str, status: int
) -> None:
    key = new_key(gateway, Limits(budget_nanos=0, period="day"))
    path, body = SURFACE_CALLS[surface]
    with gateway.client(key.secret) as http:
        refused = http.post(path, json=body, headers={"anthropic-version": "2023-06-01"})
    assert refused.status_code == status
    assert refused.headers["x-sluice-limit"] == "budget" and int(refused.headers["retry-after"]) >= 1
    error = refused.json()
    if surface == "openai":
        assert (error["error"]["type"], error["error"]["code"]) == ("insufficient_quota", "budget_exceeded")
    elif surface == "anthropic":
        assert (error["type"], error["error"]["type"]) == ("error", "permission_error")
        assert "Budget exhausted" in error["error"]["message"]
    else:
        assert list(error) == ["error"] and "Budget exhausted" in error["error"]
