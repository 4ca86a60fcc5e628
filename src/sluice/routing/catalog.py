"""The model catalog: public model names → the deployments that can serve them.

Built at start-up from the configuration (explicit models, the built-in mock) and from upstreams whose models are
discovered from their own model lists. Lookups on the hot path are one dict access.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from sluice.config import DeploymentConfig, ModelConfig, ModelFallback, Price, ProviderConfig, RoutingConfig, Settings
from sluice.errors import SluiceError
from sluice.naming import name_problem
from sluice.providers.base import Provider, Target

log = structlog.get_logger("sluice.catalog")

MOCK_PROVIDER = "mock"
MOCK_MODEL = "mock-1"
DISCOVERY_TIMEOUT = 5.0


@dataclass(slots=True, eq=False)
class Deployment:
    """One way to serve a public model: a provider, the upstream's model name, and how much it can take."""

    id: str
    model: str
    provider: Provider
    target: Target
    capacity: int | None = None
    weight: float = 1.0
    order: int = 0
    price: Price | None = None
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class ModelRoute:
    name: str
    deployments: list[Deployment]
    price: Price | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    discovered: bool = False
    routing: RoutingConfig | None = None  # None: the gateway-wide routing settings
    fallbacks: list[ModelFallback] = field(default_factory=list)
    cache: bool | None = None

    @property
    def owned_by(self) -> str:
        return self.deployments[0].provider.name if self.deployments else "sluice"

    def speaks(self, wire_format: str) -> bool:
        """Whether every deployment's upstream speaks ``wire_format`` natively (so the body can pass through)."""
        return all(d.provider.wire_format == wire_format for d in self.deployments)


class ModelCatalog:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers
        self._routes: dict[str, ModelRoute] = {}
        self.stored: set[str] = set()  # names (and aliases) that came from the database, not the file

    def source(self, route: ModelRoute) -> str:
        """Where a model is defined: ``file``, ``stored`` (admin API) or ``discovered``."""
        if route.discovered:
            return "discovered"
        return "stored" if route.name in self.stored else "file"

    def replace_stored(self, models: list[ModelConfig]) -> None:
        """Swap the database-defined models for ``models`` (file-defined names always win)."""
        for name in self.stored:
            self._routes.pop(name, None)
        self.stored = set()
        for model in models:
            names = (model.name, *model.aliases)
            if any(self.has(n) for n in names) or not all(d.provider in self.providers for d in model.deployments):
                log.warning("stored model skipped: name taken or provider unknown", model=model.name)
                continue
            self.add_configured(model)
            self.stored.update(names)

    def get(self, name: str) -> ModelRoute | None:
        return self._routes.get(name)

    def routes(self) -> list[ModelRoute]:
        seen: dict[int, ModelRoute] = {}
        for route in self._routes.values():
            seen.setdefault(id(route), route)
        return sorted(seen.values(), key=lambda r: r.name)

    def add(self, route: ModelRoute, aliases: list[str] | None = None) -> None:
        for name in (route.name, *(aliases or [])):
            self._routes[name] = route

    def has(self, name: str) -> bool:
        return name in self._routes

    def add_configured(self, model: ModelConfig) -> None:
        deployments = [self._deployment(model.name, i, dep) for i, dep in enumerate(model.deployments) if dep.enabled]
        route = ModelRoute(
            model.name,
            deployments,
            model.price,
            routing=model.routing,
            fallbacks=list(model.fallbacks),
            cache=model.cache,
        )
        self.add(route, model.aliases)

    def _deployment(self, public: str, index: int, dep: DeploymentConfig) -> Deployment:
        provider = self.providers[dep.provider]
        upstream_model = dep.model or public
        return Deployment(
            id=f"{public}#{index}:{provider.name}/{upstream_model}",
            model=public,
            provider=provider,
            target=Target(upstream_model, dep.timeouts or provider.config.timeouts),
            capacity=dep.capacity,
            weight=dep.weight,
            order=dep.order,
            price=dep.price,
            tags=tuple(dep.tags),
        )

    def add_discovered(self, provider: Provider, upstream_models: list[str]) -> int:
        """Expose an upstream's listed models under their own names (plus the provider's prefix)."""
        added = 0
        for upstream_model in upstream_models:
            public = provider.config.model_prefix + upstream_model
            if self.has(public):
                continue  # configured models and earlier providers win
            if name_problem(public) is not None:
                log.warning("discovered model skipped: its name breaks the name rule", provider=provider.name)
                continue
            dep = Deployment(
                id=f"{public}#0:{provider.name}/{upstream_model}",
                model=public,
                provider=provider,
                target=Target(upstream_model, provider.config.timeouts),
            )
            self.add(ModelRoute(public, [dep], discovered=True))
            added += 1
        return added


def build_providers(settings: Settings) -> dict[str, Provider]:
    from sluice.providers.registry import build_provider  # the HTTP clients: only a serving gateway needs them

    configs = list(settings.providers)
    if settings.builtin_mock and not any(p.name == MOCK_PROVIDER for p in configs):
        configs.append(ProviderConfig(name=MOCK_PROVIDER, kind="mock"))
    return {c.name: build_provider(c) for c in configs}


def build_catalog(settings: Settings, providers: dict[str, Provider]) -> ModelCatalog:
    catalog = ModelCatalog(providers)
    for model in settings.models:
        catalog.add_configured(model)
    if settings.builtin_mock and not catalog.has(MOCK_MODEL) and MOCK_PROVIDER in providers:
        mock = providers[MOCK_PROVIDER]
        if mock.kind == "mock":
            catalog.add_configured(ModelConfig(name=MOCK_MODEL, deployments=[DeploymentConfig(provider=MOCK_PROVIDER)]))
    return catalog


async def discover_models(catalog: ModelCatalog) -> None:
    """Ask every provider with ``discover_models`` for its model list; failures are logged, not fatal."""
    wanted = [p for p in catalog.providers.values() if p.config.discover_models]

    async def one(provider: Provider) -> tuple[Provider, list[str] | Exception]:
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                return provider, await provider.list_models()
        except (SluiceError, TimeoutError) as exc:
            return provider, exc

    for provider, result in await asyncio.gather(*(one(p) for p in wanted)):
        if isinstance(result, Exception):
            log.warning("model discovery failed", provider=provider.name, error=str(result) or type(result).__name__)
        else:
            added = catalog.add_discovered(provider, result)
            log.info("models discovered", provider=provider.name, models=added)
