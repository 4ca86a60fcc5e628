"""``/admin/v1/models``, ``/admin/v1/providers`` and ``/admin/v1/deployments``: the catalog at run time.

Models and providers defined in the configuration file are read-only here; those created through this API are
stored in the database and reach every replica without a restart (at once over Redis, otherwise within 15 s).
Provider credentials are write-only: responses say whether a key is set, never what it is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from sluice.admin.policy import Caller, requires
from sluice.admin.schemas import Body
from sluice.config import ModelConfig, ProviderConfig
from sluice.errors import InvalidRequest, NotFound, SluiceError
from sluice.identity.accounts import Conflict
from sluice.identity.audit import audit
from sluice.providers.registry import build_provider
from sluice.routing.catalog import ModelRoute
from sluice.routing.stored import MODEL_PREFIX, PROVIDER_PREFIX, put_stored
from sluice.store.models import GatewaySetting

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


async def _stored_definitions(caller: Caller) -> dict[str, dict[str, Any]]:
    async with caller.services.db.session() as session:
        rows = (
            await session.execute(select(GatewaySetting).where(GatewaySetting.key.startswith(MODEL_PREFIX)))
        ).scalars()
        return {r.key.removeprefix(MODEL_PREFIX): r.value for r in rows}


@router.get("/models", response_model=list[ModelOut])
async def list_models(caller: Admin) -> list[ModelOut]:
    stored = await _stored_definitions(caller)
    return [model_out(caller, r, stored.get(r.name)) for r in caller.services.catalog.routes()]


@router.get("/models/{name}", response_model=ModelOut)
async def get_model(name: str, caller: Admin) -> ModelOut:
    route = caller.services.catalog.get(name)
    if route is None:
        raise NotFound("No such model.", code="model_not_found")
    return model_out(caller, route, (await _stored_definitions(caller)).get(route.name))


def _validated_model(name: str, definition: dict[str, Any], caller: Caller) -> ModelConfig:
    try:
        model = ModelConfig.model_validate({**definition, "name": name})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidRequest(f"Invalid model definition: {problems}", param="definition") from None
    unknown = sorted({d.provider for d in model.deployments} - set(caller.services.catalog.providers))
    if unknown:
        raise InvalidRequest(f"Unknown provider(s): {', '.join(unknown)}.", param="definition")
    return model


@router.put("/models/{name}", response_model=ModelOut)
async def put_model(name: str, body: ModelDefinition, caller: Admin) -> ModelOut:
    model = _validated_model(name, body.definition, caller)
    catalog = caller.services.catalog
    for public in (model.name, *model.aliases):
        existing = catalog.get(public)
        if existing is not None and public not in catalog.stored:
            raise Conflict(f"'{public}' is defined in the configuration file or discovered.", code="not_stored")
    value = model.model_dump(mode="json", exclude_defaults=True)
    async with caller.services.db.session() as session:
        before = await session.get(GatewaySetting, MODEL_PREFIX + name)
        await put_stored(session, MODEL_PREFIX + name, value)
        audit(session, caller.actor, "model.put", "model", name, before=before.value if before else None, after=value)
    await caller.services.invalidation.publish("models")
    route = catalog.get(name)
    if route is None:
        raise SluiceError("The model was stored but could not be loaded.")
    return model_out(caller, route, value)


@router.delete("/models/{name}", status_code=204)
async def delete_model(name: str, caller: Admin) -> None:
    async with caller.services.db.session() as session:
        row = await session.get(GatewaySetting, MODEL_PREFIX + name)
        if row is None:
            raise NotFound("No stored model with this name (file-defined models are changed in the file).")
        await session.delete(row)
        audit(session, caller.actor, "model.delete", "model", name, before=row.value)
    await caller.services.invalidation.publish("models")


# --- providers ------------------------------------------------------------------------------------------------


def provider_out(config: ProviderConfig, source: str) -> ProviderOut:
    return ProviderOut(
        name=config.name,
        kind=config.kind,
        base_url=config.base_url,
        source=source,
        api_key_set=config.api_key is not None,
    )


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
    services = caller.services
    if name in services.stored_models.file_providers:
        raise Conflict("This provider is defined in the configuration file.", code="not_stored")
    definition = dict(body.definition)
    async with services.db.session() as session:
        previous = await session.get(GatewaySetting, PROVIDER_PREFIX + name)
        if "api_key" not in definition and previous is not None and "api_key" in previous.value:
            definition["api_key"] = previous.value["api_key"]  # write-only: omitted means "keep"
        try:
            config = ProviderConfig.model_validate({**definition, "name": name})
            build_provider(config)
        except (ValidationError, ValueError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidRequest(f"Invalid provider definition: {message}", param="definition") from None
        value = config.model_dump(mode="json", exclude_defaults=True)
        if config.api_key is not None:
            value["api_key"] = config.api_key.get_secret_value()
        await put_stored(session, PROVIDER_PREFIX + name, value)
        audit(
            session, caller.actor, "provider.put", "provider", name, after=provider_out(config, "stored").model_dump()
        )
    await services.invalidation.publish("models")
    return provider_out(config, "stored")


@router.delete("/providers/{name}", status_code=204)
async def delete_provider(name: str, caller: Admin) -> None:
    catalog = caller.services.catalog
    if any(d.provider.name == name for r in catalog.routes() for d in r.deployments if not r.discovered):
        raise Conflict("Models still use this provider; change or delete them first.", code="provider_in_use")
    async with caller.services.db.session() as session:
        row = await session.get(GatewaySetting, PROVIDER_PREFIX + name)
        if row is None:
            raise NotFound("No stored provider with this name (file-defined providers are changed in the file).")
        await session.delete(row)
        audit(session, caller.actor, "provider.delete", "provider", name)
    await caller.services.invalidation.publish("models")


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
