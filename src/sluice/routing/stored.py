"""Models and providers managed at run time through the admin API, kept in the database.

They live in ``gateway_settings`` rows (``model:<name>``, ``provider:<name>``) holding the same structure as the
configuration file's entries, validated with the same models. Every replica loads them at start, every 15 s, and
at once when another replica announces a change over Redis. Names defined in the configuration file win: a stored
model or provider cannot shadow one. Provider credentials are write-only: a definition that leaves ``api_key`` out
keeps the stored one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import ValidationError

from sluice.config import ModelConfig, ProviderConfig
from sluice.errors import Conflict, InvalidRequest, NotFound
from sluice.identity.audit import Actor, audit
from sluice.providers.base import Provider
from sluice.providers.registry import build_provider
from sluice.routing.catalog import ModelCatalog
from sluice.store.db import Database
from sluice.store.settings import SettingsRepository

log = structlog.get_logger("sluice.stored_models")

MODEL_PREFIX = "model:"
PROVIDER_PREFIX = "provider:"

Announce = Callable[[str, str | None], Awaitable[None]]


def parse_stored(entries: dict[str, Any]) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    """The stored entries as configuration, skipping (and logging) any that no longer validate."""
    providers: list[ProviderConfig] = []
    models: list[ModelConfig] = []
    for key, value in entries.items():
        try:
            if key.startswith(PROVIDER_PREFIX):
                providers.append(ProviderConfig.model_validate(value))
            else:
                models.append(ModelConfig.model_validate(value))
        except ValidationError:
            log.warning("stored entry skipped: no longer valid", key=key)
    return providers, models


class StoredCatalog:
    """The stored providers and models: changed through the admin API, applied to a running catalog."""

    def __init__(self, db: Database, catalog: ModelCatalog, file_providers: set[str], announce: Announce) -> None:
        self.db = db
        self.catalog = catalog
        self.file_providers = set(file_providers)
        self.stored_providers: dict[str, ProviderConfig] = {}
        self.announce = announce  # every replica reloads on "models" (this one included)

    # --- what the admin API changes -------------------------------------------------------------------------

    async def definitions(self) -> dict[str, dict[str, Any]]:
        """Each stored model's definition, by name."""
        async with self.db.session() as session:
            entries = await SettingsRepository(session).with_prefix(MODEL_PREFIX)
        return {key.removeprefix(MODEL_PREFIX): value for key, value in entries.items()}

    async def put_model(self, actor: Actor, name: str, definition: dict[str, Any]) -> dict[str, Any]:
        """Store a model (as the configuration file's ``models`` entries are written); returns what was stored."""
        model = self._validated_model(name, definition)
        for public in (model.name, *model.aliases):
            existing = self.catalog.get(public)
            if existing is not None and public not in self.catalog.stored:
                raise Conflict(f"'{public}' is defined in the configuration file or discovered.", code="not_stored")
        value = model.model_dump(mode="json", exclude_defaults=True)
        async with self.db.session() as session:
            stored = SettingsRepository(session)
            before = await stored.get(MODEL_PREFIX + name)
            await stored.put(MODEL_PREFIX + name, value)
            audit(session, actor, "model.put", "model", name, before=before, after=value)
        await self.announce("models", None)
        return value

    async def delete_model(self, actor: Actor, name: str) -> None:
        async with self.db.session() as session:
            before = await SettingsRepository(session).remove(MODEL_PREFIX + name)
            if before is None:
                raise NotFound("No stored model with this name (file-defined models are changed in the file).")
            audit(session, actor, "model.delete", "model", name, before=before)
        await self.announce("models", None)

    async def put_provider(self, actor: Actor, name: str, definition: dict[str, Any]) -> ProviderConfig:
        """Store a provider (a definition without ``api_key`` keeps the stored key)."""
        if name in self.file_providers:
            raise Conflict("This provider is defined in the configuration file.", code="not_stored")
        definition = dict(definition)
        async with self.db.session() as session:
            stored = SettingsRepository(session)
            previous = await stored.get(PROVIDER_PREFIX + name)
            if "api_key" not in definition and previous is not None and "api_key" in previous:
                definition["api_key"] = previous["api_key"]  # write-only: omitted means "keep"
            config = _validated_provider(name, definition)
            value = config.model_dump(mode="json", exclude_defaults=True)
            if config.api_key is not None:
                value["api_key"] = config.api_key.get_secret_value()
            await stored.put(PROVIDER_PREFIX + name, value)
            audit(session, actor, "provider.put", "provider", name, after=provider_image(config))
        await self.announce("models", None)
        return config

    async def delete_provider(self, actor: Actor, name: str) -> None:
        catalog = self.catalog
        if any(d.provider.name == name for r in catalog.routes() for d in r.deployments if not r.discovered):
            raise Conflict("Models still use this provider; change or delete them first.", code="provider_in_use")
        async with self.db.session() as session:
            if await SettingsRepository(session).remove(PROVIDER_PREFIX + name) is None:
                raise NotFound("No stored provider with this name (file-defined providers are changed in the file).")
            audit(session, actor, "provider.delete", "provider", name)
        await self.announce("models", None)

    def _validated_model(self, name: str, definition: dict[str, Any]) -> ModelConfig:
        try:
            model = ModelConfig.model_validate({**definition, "name": name})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
            raise InvalidRequest(f"Invalid model definition: {problems}", param="definition") from None
        unknown = sorted({d.provider for d in model.deployments} - set(self.catalog.providers))
        if unknown:
            raise InvalidRequest(f"Unknown provider(s): {', '.join(unknown)}.", param="definition")
        return model

    # --- applying them to the running catalog ---------------------------------------------------------------

    async def reload(self) -> None:
        async with self.db.session() as session:
            entries = await SettingsRepository(session).with_prefix(MODEL_PREFIX, PROVIDER_PREFIX)
        providers, models = parse_stored(entries)
        await self._apply_providers([p for p in providers if p.name not in self.file_providers])
        self.catalog.replace_stored(models)

    async def _apply_providers(self, configs: list[ProviderConfig]) -> None:
        wanted = {c.name: c for c in configs}
        for name in list(self.stored_providers):
            if wanted.get(name) != self.stored_providers[name]:
                old = self.catalog.providers.pop(name, None)
                del self.stored_providers[name]
                if old is not None:
                    await old.close()
        for name, config in wanted.items():
            if name in self.stored_providers:
                continue
            try:
                provider: Provider = build_provider(config)
            except ValueError as exc:
                log.warning("stored provider skipped", provider=name, error=str(exc))
                continue
            await provider.start()
            self.catalog.providers[name] = provider
            self.stored_providers[name] = config

    async def close(self) -> None:
        for name in list(self.stored_providers):
            provider = self.catalog.providers.pop(name, None)
            if provider is not None:
                await provider.close()
        self.stored_providers.clear()


def provider_image(config: ProviderConfig) -> dict[str, object]:
    """A stored provider as the API shows it and the audit row records it: never its key, only whether it has one."""
    return {
        "name": config.name,
        "kind": config.kind,
        "base_url": config.base_url,
        "source": "stored",
        "api_key_set": config.api_key is not None,
    }


def _validated_provider(name: str, definition: dict[str, Any]) -> ProviderConfig:
    try:
        config = ProviderConfig.model_validate({**definition, "name": name})
        build_provider(config)
    except (ValidationError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidRequest(f"Invalid provider definition: {message}", param="definition") from None
    return config
