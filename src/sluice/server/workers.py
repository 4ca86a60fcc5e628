"""What ``sluice serve --workers N`` needs: state every worker must share, and state each keeps to itself.

Each worker is a process of its own, so anything kept in memory exists once per worker. Where that would break a
promise the gateway makes — a rate limit admitting N times its figure, a deployment's capacity multiplied by N
because each worker runs its own queue — the settings must put that state in a shared backend, and the server
refuses to start otherwise (``check-config --workers N`` reports the same problems). Where it only costs
efficiency (each worker's own response cache), the server says so and starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.config import Settings


@dataclass
class WorkerCheck:
    problems: list[str] = field(default_factory=list)  # the server refuses to start with these
    notes: list[str] = field(default_factory=list)  # per-worker state that is allowed, said out loud

    @property
    def ok(self) -> bool:
        return not self.problems


def capacity_paths(settings: Settings) -> list[str]:
    """The configured deployments that have a capacity, by their path in the settings."""
    return [
        f"models[{i}].deployments[{j}] ({model.name})"
        for i, model in enumerate(settings.models)
        for j, deployment in enumerate(model.deployments)
        if deployment.capacity is not None
    ]


def check_workers(settings: Settings, workers: int) -> WorkerCheck:
    """The problems that forbid running ``workers`` processes with these settings, and the per-worker notes."""
    check = WorkerCheck()
    if workers <= 1:
        return check
    if settings.redis_url is None or settings.limits.backend != "redis":
        check.problems.append(
            "limits.backend: several workers share limits only through Redis: set redis_url and "
            "limits.backend: redis (in-process counters would let each worker admit the full limit)"
        )
    if settings.scheduling.backend == "local":
        with_capacity = capacity_paths(settings)
        where = (
            f" ({', '.join(with_capacity)} {'has' if len(with_capacity) == 1 else 'have'} one)" if with_capacity else ""
        )
        check.problems.append(
            "scheduling.backend: 'local' keeps one queue per worker, so each worker would admit a deployment's "
            f"full capacity{where} — {workers} workers, {workers}x the capacity. Set scheduling.backend: redis "
            "(or rabbitmq). This holds even with no capacity configured: the admin API can give a deployment one "
            "at run time."
        )
    if settings.cache.backend == "memory":
        check.notes.append(
            f"cache.backend: 'memory': each worker keeps its own response cache (up to {settings.cache.max_entries} "
            "entries each), so a repeated request may miss in another worker; cache.backend: redis shares one"
        )
    check.notes.append(
        "routing: each worker keeps its own circuit breakers, health checks and in-flight / latency figures (for "
        "least_busy and lowest_latency), so each learns of a failing upstream on its own"
    )
    return check
