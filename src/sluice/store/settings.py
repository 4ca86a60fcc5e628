"""SQL for ``gateway_settings``: values an admin changes at run time, one JSON value per key.

Rooms keep their own keys here (identity: the registration mode and the trusted proxies; routing: ``model:<name>``
and ``provider:<name>``), and read and write them only through this repository.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.store.models import GatewaySetting
from sluice.store.types import utcnow


class SettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> Any | None:
        """The stored value, or None when the key holds none."""
        row = await self.session.get(GatewaySetting, key)
        return row.value if row is not None else None

    async def put(self, key: str, value: Any) -> bool:
        """Insert or replace one value; True if it was new."""
        row = await self.session.get(GatewaySetting, key)
        if row is None:
            self.session.add(GatewaySetting(key=key, value=value))
        else:
            row.value = value
            row.updated_at = utcnow()
        await self.session.flush()  # later reads in the same unit of work see it
        return row is None

    async def remove(self, key: str) -> Any | None:
        """Delete one key; returns the value it held (None: there was none)."""
        row = await self.session.get(GatewaySetting, key)
        if row is None:
            return None
        await self.session.delete(row)
        await self.session.flush()
        return row.value

    async def with_prefix(self, *prefixes: str) -> dict[str, Any]:
        """Every key starting with one of ``prefixes``, with its value."""
        query = select(GatewaySetting).where(or_(*(GatewaySetting.key.startswith(p) for p in prefixes)))
        return {row.key: row.value for row in (await self.session.execute(query)).scalars()}
