"""Active health checks: which probe outcomes take a provider's deployments out of rotation, and back."""

from __future__ import annotations

import asyncio

from sluice.config import BreakerConfig, DeploymentConfig, HealthConfig, ModelConfig, ProviderConfig, RoutingConfig
from sluice.errors import SluiceError, UpstreamError, UpstreamRejected
from sluice.providers.mock import MockProvider
from sluice.routing.catalog import ModelCatalog
from sluice.routing.health import HealthChecker
from sluice.routing.router import Router


class Probed(MockProvider):
    """The mock, with a health probe that fails as told."""

    outcome: SluiceError | None = None

    async def health(self) -> None:
        if self.outcome is not None:
            raise self.outcome


def setup() -> tuple[Probed, HealthChecker, Router, ModelCatalog]:
    provider = Probed(ProviderConfig(name="p", kind="mock"))
    catalog = ModelCatalog({"p": provider})
    catalog.add_configured(ModelConfig(name="m", deployments=[DeploymentConfig(provider="p")]))
    router = Router(catalog, RoutingConfig(), BreakerConfig())
    return provider, HealthChecker(catalog, router, HealthConfig(failures_to_unhealthy=2)), router, catalog


def healthy(router: Router, catalog: ModelCatalog) -> bool:
    route = catalog.get("m")
    assert route is not None
    return router.state(route.deployments[0]).healthy


def test_consecutive_failures_take_it_out_and_one_success_brings_it_back() -> None:
    provider, checker, router, catalog = setup()
    provider.outcome = UpstreamError("The upstream failed with HTTP 503.")
    asyncio.run(checker.check_once())
    assert healthy(router, catalog)  # one failure is not enough
    asyncio.run(checker.check_once())
    assert not healthy(router, catalog)
    assert router.plan(catalog.get("m")) == []  # type: ignore[arg-type]
    provider.outcome = None
    asyncio.run(checker.check_once())
    assert healthy(router, catalog)


def test_an_upstream_without_a_model_list_is_reachable() -> None:
    provider, checker, router, catalog = setup()
    provider.outcome = UpstreamRejected("The upstream rejected the request.", status=404)
    for _ in range(3):
        asyncio.run(checker.check_once())
    assert healthy(router, catalog)


def test_refused_credentials_count_as_failures() -> None:
    provider, checker, router, catalog = setup()
    provider.outcome = UpstreamError("The upstream refused the gateway's credentials.", code="upstream_401")
    for _ in range(2):
        asyncio.run(checker.check_once())
    assert not healthy(router, catalog)
