"""Models and providers managed at run time through the admin API, kept in the database.

They live in ``gateway_settings`` rows (``model:<name>``, ``provider:<name>``) holding the same structure as the
configuration file's entries, validated with the same models. Every replica loads them at start, every 15 s, and
at once when another replica announces a change over Redis. Names defined in the configuration file win: a stored
model or provider cannot shadow one.
"""

from __future__ import annotations

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.config import ModelConfig, ProviderConfig
from sluice.providers.base import Provider
from sluice.providers.registry import build_provider
from sluice.routing.catalog import ModelCatalog
from sluice.store.db import Database
from sluice.store.models import GatewaySetting
from sluice.store.types import utcnow

log = structlog.get_logger("sluice.stored_models")

MODEL_PREFIX = "model:"
PROVIDER_PREFIX = "provider:"


async def read_stored(session: AsyncSession) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    rows = (
        await session.execute(
            select(GatewaySetting).where(
                GatewaySetting.key.startswith(MODEL_PREFIX) | GatewaySetting.key.startswith(PROVIDER_PREFIX)
            )
        )
    ).scalars()
    providers: list[ProviderConfig] = []
    models: list[ModelConfig] = []
    for row in rows:
        try:
            if row.key.startswith(PROVIDER_PREFIX):
                providers.append(ProviderConfig.model_validate(row.value))
            else:
                models.append(ModelConfig.model_validate(row.value))
        except ValidationError:
            log.warning("stored entry skipped: no longer valid", key=row.key)
    return providers, models


async def put_stored(session: AsyncSession, key: str, value: dict[str, object]) -> bool:
    """Insert or replace one entry; True if it was new."""
    row = await session.get(GatewaySetting, key)
    if row is None:
        session.add(GatewaySetting(key=key, value=value))
        return True
    row.value = value
    row.updated_at = utcnow()
    return False


class StoredCatalog:
    """Applies the stored providers and models to a running catalog."""

    def __init__(self, db: Database, catalog: ModelCatalog, file_providers: set[str]) -> None:
        self.db = db
        self.catalog = catalog
        self.file_providers = set(file_providers)
        self.stored_providers: dict[str, ProviderConfig] = {}

    async def reload(self) -> None:
        async with self.db.session() as session:
            providers, models = await read_stored(session)
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
