"""``/admin/v1/models``, ``/admin/v1/providers`` and ``/admin/v1/deployments``: the catalog at run time.

Models and providers defined in the configuration file are read-only here; those created through this API are
stored in the database and reach every replica without a restart (at once over Redis, otherwise within 15 s).
Provider credentials are write-only: responses say whether a key is set, never what it is. The rules are
:class:`sluice.routing.stored.StoredCatalog`'s; these routes parse, call it and render.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from sluice.admin.policy import Caller, requires
from sluice.admin.schemas import Body
from sluice.config import ProviderConfig
from sluice.errors import NotFound, SluiceError
from sluice.routing.catalog import ModelRoute
from sluice.routing.stored import provider_image

router = APIRouter(tags=["models"])

Admin = Annotated[Caller, Depends(requires("admin"))]


class DeploymentOut(BaseModel):
    id: str
    provider: str
    upstream_model: str
    capacity: int | None
    weight: float
    order: int
    tags: list[str]
    healthy: bool
    circuit: str
    in_flight: int
    ttfb_ms: float | None
    calls: int
    failures: int
    last_error: str | None
    price_input: float = Field(description="The price in force per million input tokens (the gateway's currency).")
    price_output: float = Field(description="The price in force per million output tokens.")


class ModelOut(BaseModel):
    name: str
    source: str  # file | stored | discovered
    strategy: str | None
    deployments: list[DeploymentOut]
    definition: dict[str, Any] | None  # the stored definition (stored models only)


class ProviderOut(BaseModel):
    name: str
    kind: str
    base_url: str | None
    source: str  # file | stored
    api_key_set: bool


class ModelDefinition(Body):
    """A model as in the configuration file's ``models`` list (without the name, which is in the path)."""

    definition: dict[str, Any]


class TestResult(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None
    models: list[str] | None


def model_out(caller: Caller, route: ModelRoute, stored: dict[str, Any] | None) -> ModelOut:
    router_ = caller.services.gateway.router
    deployments = []
    for d in route.deployments:
        state = router_.state(d)
        price = caller.services.accounting.price_of(route.name, d)
        deployments.append(
            DeploymentOut(
                id=d.id,
                provider=d.provider.name,
                upstream_model=d.target.model,
                capacity=d.capacity,
                weight=d.weight,
                order=d.order,
                tags=list(d.tags),
                healthy=state.healthy,
                circuit=state.breaker.state,
                in_flight=state.in_flight,
                ttfb_ms=state.ttfb * 1000 if state.ttfb is not None else None,
                calls=state.calls,
                failures=state.failures,
                last_error=state.last_error,
                price_input=price.input,
                price_output=price.output,
            )
        )
    config = route.routing
    return ModelOut(
        name=route.name,
        source=caller.services.catalog.source(route),
        strategy=config.strategy if config else None,
        deployments=deployments,
        definition=stored,
    )


@router.get("/models", response_model=list[ModelOut])
async def list_models(caller: Admin) -> list[ModelOut]:
    stored = await caller.services.stored_models.definitions()
    return [model_out(caller, r, stored.get(r.name)) for r in caller.services.catalog.routes()]


@router.get("/models/{name}", response_model=ModelOut)
async def get_model(name: str, caller: Admin) -> ModelOut:
    route = caller.services.catalog.get(name)
    if route is None:
        raise NotFound("No such model.", code="model_not_found")
    return model_out(caller, route, (await caller.services.stored_models.definitions()).get(route.name))


@router.put("/models/{name}", response_model=ModelOut)
async def put_model(name: str, body: ModelDefinition, caller: Admin) -> ModelOut:
    value = await caller.services.stored_models.put_model(caller.actor, name, body.definition)
    route = caller.services.catalog.get(name)
    if route is None:
        raise SluiceError("The model was stored but could not be loaded.")
    return model_out(caller, route, value)


@router.delete("/models/{name}", status_code=204)
async def delete_model(name: str, caller: Admin) -> None:
    await caller.services.stored_models.delete_model(caller.actor, name)


# --- providers ------------------------------------------------------------------------------------------------


def provider_out(config: ProviderConfig, source: str) -> ProviderOut:
    return ProviderOut.model_validate({**provider_image(config), "source": source})


@router.get("/providers", response_model=list[ProviderOut])
async def list_providers(caller: Admin) -> list[ProviderOut]:
    stored = caller.services.stored_models.stored_providers
    return [
        provider_out(p.config, "stored" if name in stored else "file")
        for name, p in sorted(caller.services.catalog.providers.items())
    ]


class ProviderDefinition(Body):
    definition: dict[str, Any]


@router.put("/providers/{name}", response_model=ProviderOut)
async def put_provider(name: str, body: ProviderDefinition, caller: Admin) -> ProviderOut:
    return provider_out(await caller.services.stored_models.put_provider(caller.actor, name, body.definition), "stored")


@router.delete("/providers/{name}", status_code=204)
async def delete_provider(name: str, caller: Admin) -> None:
    await caller.services.stored_models.delete_provider(caller.actor, name)


@router.post("/providers/{name}/test", response_model=TestResult)
async def test_provider(name: str, caller: Admin) -> TestResult:
    """Test the connection: the provider's cheap health probe and, where it has one, its model list."""
    provider = caller.services.catalog.providers.get(name)
    if provider is None:
        raise NotFound("No such provider.", code="provider_not_found")
    started = time.perf_counter()
    try:
        async with asyncio.timeout(caller.services.settings.health.timeout_seconds):
            await provider.health()
            models = await provider.list_models()
    except (SluiceError, TimeoutError) as exc:
        error = exc.message if isinstance(exc, SluiceError) else "no answer in time"
        return TestResult(ok=False, latency_ms=(time.perf_counter() - started) * 1000, error=error, models=None)
    return TestResult(ok=True, latency_ms=(time.perf_counter() - started) * 1000, error=None, models=models[:200])
