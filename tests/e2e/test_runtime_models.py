"""Models and providers managed at run time through the admin API, across replicas; active health checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.store.db import Database
from tests.fakes import FakeOpenAI
from tests.support.server import MASTER_KEY, SluiceServer, make_settings
from tests.support.services import create_postgres_database, drop_postgres_database, require_redis

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


def chat(server: SluiceServer, model: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers=ADMIN,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def admin(server: SluiceServer, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/admin/v1{path}", headers=ADMIN, timeout=30, **kw)


def _until(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_models_and_providers_at_run_time(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream, SluiceServer(make_settings(tmp_path)) as server:
        assert chat(server, "runtime-model").status_code == 404
        provider = admin(
            server,
            "PUT",
            "/providers/fake",
            json={"definition": {"kind": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-upstream-secret"}},
        )
        assert provider.status_code == 200, provider.text
        assert provider.json()["api_key_set"] is True and "sk-upstream-secret" not in provider.text
        listed = admin(server, "GET", "/providers").text
        assert "sk-upstream-secret" not in listed
        tested = admin(server, "POST", "/providers/fake/test")
        assert tested.status_code == 200 and tested.json()["ok"] is True

        put = admin(
            server,
            "PUT",
            "/models/runtime-model",
            json={"definition": {"deployments": [{"provider": "fake", "model": "gpt-4o-mini", "capacity": 4}]}},
        )
        assert put.status_code == 200, put.text
        assert put.json()["source"] == "stored" and put.json()["deployments"][0]["healthy"] is True
        assert chat(server, "runtime-model").status_code == 200
        generated = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
        assert generated and generated[-1].json is not None and generated[-1].json["model"] == "gpt-4o-mini"

        bad = admin(server, "PUT", "/models/x", json={"definition": {"deployments": [{"provider": "nope"}]}})
        assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
        clash = admin(server, "PUT", "/models/mock-1", json={"definition": {"deployments": [{"provider": "fake"}]}})
        assert clash.status_code == 409
        assert admin(server, "DELETE", "/providers/fake").status_code == 409  # still in use
        assert admin(server, "DELETE", "/models/runtime-model").status_code == 204
        assert chat(server, "runtime-model").status_code == 404
        assert admin(server, "DELETE", "/providers/fake").status_code == 204
        actions = [e["action"] for e in admin(server, "GET", "/audit").json()]
        assert {"provider.put", "model.put", "model.delete", "provider.delete"} <= set(actions)
        assert "sk-upstream-secret" not in admin(server, "GET", "/audit").text


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = create_postgres_database()

    async def migrate() -> None:
        db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        await db.migrate()
        await db.close()

    asyncio.run(migrate())
    yield url
    drop_postgres_database(url)


@pytest.mark.services
def test_runtime_model_changes_reach_a_second_replica(tmp_path: Path, postgres_url: str) -> None:
    require_redis()
    common = {"database_url": postgres_url, "redis_url": "redis://127.0.0.1:6379/0", "dev_mode": True}
    with (
        FakeOpenAI() as upstream,
        SluiceServer(make_settings(tmp_path / "a", common)) as a,
        SluiceServer(make_settings(tmp_path / "b", common)) as b,
    ):
        assert (
            admin(
                a,
                "PUT",
                "/providers/fake",
                json={"definition": {"kind": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}},
            ).status_code
            == 200
        )
        assert (
            admin(
                a,
                "PUT",
                "/models/shared",
                json={"definition": {"deployments": [{"provider": "fake", "model": "gpt-4o-mini"}]}},
            ).status_code
            == 200
        )
        _until(lambda: chat(b, "shared").status_code == 200)
        assert admin(a, "DELETE", "/models/shared").status_code == 204
        _until(lambda: chat(b, "shared").status_code == 404)


def test_active_health_checks_take_a_failing_provider_out_and_back(tmp_path: Path) -> None:
    with FakeOpenAI() as healthy, FakeOpenAI() as flaky:
        config = {
            "health": {"interval_seconds": 0.2, "failures_to_unhealthy": 2},
            "providers": [
                {"name": "a", "kind": "openai", "base_url": flaky.url + "/v1", "api_key": "k"},
                {"name": "b", "kind": "openai", "base_url": healthy.url + "/v1", "api_key": "k"},
            ],
            "models": [
                {
                    "name": "m",
                    "deployments": [
                        {"provider": "a", "model": "gpt-4o-mini", "order": 0},
                        {"provider": "b", "model": "gpt-4o-mini", "order": 1},
                    ],
                }
            ],
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:

            def health_of(provider: str) -> bool:
                deployments = admin(server, "GET", "/models/m").json()["deployments"]
                return next(d["healthy"] for d in deployments if d["provider"] == provider)

            _until(lambda: health_of("a"))
            flaky.api_key = "another-key"  # the upstream now refuses Sluice: probes fail
            _until(lambda: not health_of("a"))
            before = (healthy.attempts, flaky.attempts)
            assert chat(server, "m").status_code == 200
            assert (healthy.attempts, flaky.attempts) == (before[0] + 1, before[1])  # no attempt on the unhealthy one
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'sluice_deployment_healthy{deployment="m#0:a/gpt-4o-mini"} 0.0' in metrics
            flaky.api_key = None
            _until(lambda: health_of("a"))
