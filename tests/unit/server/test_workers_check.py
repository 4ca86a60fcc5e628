"""What ``serve --workers N`` refuses: per-process state that would silently multiply a limit or a capacity."""

from __future__ import annotations

from typing import Any

from sluice.config import Settings
from sluice.server.workers import check_workers

REDIS = "redis://127.0.0.1:6379/0"


def settings(**extra: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": REDIS,
        "limits": {"backend": "redis"},
        "providers": [{"name": "gpu", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"name": "m", "deployments": [{"provider": "gpu", "capacity": 4}]}],
    }
    return Settings.model_validate({**base, **extra})


def test_one_worker_needs_nothing_shared() -> None:
    check = check_workers(Settings.model_validate({}), 1)
    assert check.ok and check.notes == []


def test_a_capacity_with_the_in_process_queue_is_refused_and_names_the_deployment() -> None:
    check = check_workers(settings(), 2)
    assert not check.ok
    (problem,) = check.problems
    assert problem.startswith("scheduling.backend: 'local'")
    assert "models[0].deployments[0] (m)" in problem and "2x the capacity" in problem


def test_the_in_process_queue_is_refused_even_without_a_configured_capacity() -> None:
    # The admin API can give a deployment a capacity at run time; each worker would then queue on its own.
    check = check_workers(settings(models=[]), 3)
    assert [p.split(":")[0] for p in check.problems] == ["scheduling.backend"]


def test_shared_limits_and_queue_pass_with_the_per_worker_notes() -> None:
    for backend in ("redis", "rabbitmq"):
        scheduling: dict[str, Any] = {"backend": backend}
        if backend == "rabbitmq":
            scheduling["rabbitmq_url"] = "amqp://guest:guest@127.0.0.1:5672/"
        check = check_workers(settings(scheduling=scheduling), 2)
        assert check.ok, check.problems
        assert any(n.startswith("cache.backend: 'memory'") for n in check.notes)


def test_in_memory_limits_are_refused() -> None:
    check = check_workers(settings(redis_url=None, limits={"backend": "memory"}, scheduling={"backend": "local"}), 2)
    assert [p.split(":")[0] for p in check.problems] == ["limits.backend", "scheduling.backend"]
