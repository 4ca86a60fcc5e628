"""Active health checks: a cheap periodic probe per provider that takes its deployments out of rotation and back.

Each provider kind probes the way it is cheapest: OpenAI-compatible and Anthropic upstreams list their models,
Ollama answers ``/api/version``, the mock always passes. A probe fails on no connection, a timeout, a 5xx or a
refusal of the gateway's credentials (401/403); an upstream that answers but has no model list (404) is reachable,
so it passes. After ``health.failures_to_unhealthy`` consecutive failed
probes every deployment of that provider is marked unhealthy (the router skips it, the readiness check and the
``sluice_deployment_healthy`` gauge show it); the first passing probe puts them back. Passive failures are the
circuit breaker's business; the two are independent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from sluice.config import HealthConfig
from sluice.errors import SluiceError, UpstreamRejected
from sluice.providers.base import Provider
from sluice.routing.catalog import Deployment, ModelCatalog
from sluice.routing.router import Router

log = structlog.get_logger("sluice.health")


class HealthChecker:
    def __init__(
        self,
        catalog: ModelCatalog,
        router: Router,
        config: HealthConfig,
        on_change: Callable[[Deployment, bool], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.router = router
        self.config = config
        self.on_change = on_change
        self.failures: dict[str, int] = {}
        self.last_error: dict[str, str] = {}

    def deployments_by_provider(self) -> dict[str, list[Deployment]]:
        grouped: dict[str, list[Deployment]] = {}
        for route in self.catalog.routes():
            for deployment in route.deployments:
                grouped.setdefault(deployment.provider.name, []).append(deployment)
        return grouped

    async def check_once(self) -> None:
        grouped = self.deployments_by_provider()
        providers = [self.catalog.providers[name] for name in grouped if name in self.catalog.providers]
        results = await asyncio.gather(*(self._probe(p) for p in providers))
        for provider, error in zip(providers, results, strict=True):
            self._apply(provider, error, grouped[provider.name])

    async def _probe(self, provider: Provider) -> str | None:
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                await provider.health()
        except TimeoutError:
            return f"no answer within {self.config.timeout_seconds:g} s"
        except UpstreamRejected:
            return None  # it answered, just not this endpoint (a server without a model list): reachable
        except SluiceError as exc:
            return exc.message
        except OSError as exc:
            return type(exc).__name__
        return None

    def _apply(self, provider: Provider, error: str | None, deployments: list[Deployment]) -> None:
        name = provider.name
        if error is None:
            self.failures[name] = 0
            self.last_error.pop(name, None)
            healthy = True
        else:
            self.failures[name] = self.failures.get(name, 0) + 1
            self.last_error[name] = error
            healthy = self.failures[name] < self.config.failures_to_unhealthy
        for deployment in deployments:
            state = self.router.state(deployment)
            if state.healthy != healthy:
                log.warning(
                    "deployment back in rotation" if healthy else "deployment out of rotation: health check failing",
                    deployment=deployment.id,
                    error=error,
                )
            state.healthy = healthy
            if error is not None:
                state.last_error = error
            if self.on_change is not None:
                self.on_change(deployment, healthy)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # a probe bug must never stop the checks
                log.exception("health checks failed")
            await asyncio.sleep(self.config.interval_seconds)
