"""Settings an admin changes at run time, stored in the database over the file's values.

The registration mode and the trusted proxies. A stored value wins over the configuration file's; removing it
(``trusted_proxies: null`` through the API, ``--reset`` in the CLI) goes back to the file's.
"""

from __future__ import annotations

from typing import Any, cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.config import RegistrationMode, Settings
from sluice.identity.network import normalise_networks
from sluice.store.models import GatewaySetting
from sluice.store.types import utcnow

log = structlog.get_logger("sluice.identity")

REGISTRATION = "registration"
TRUSTED_PROXIES = "trusted_proxies"


async def registration_mode(session: AsyncSession, settings: Settings) -> RegistrationMode:
    row = await session.get(GatewaySetting, REGISTRATION)
    if row is not None and row.value in ("closed", "invite", "approval"):
        return cast(RegistrationMode, row.value)
    return settings.auth.registration


async def set_registration_mode(session: AsyncSession, mode: RegistrationMode) -> None:
    await _put(session, REGISTRATION, mode)


async def stored_trusted_proxies(session: AsyncSession) -> list[str] | None:
    """The stored list, or None when none is stored (or what is stored is unusable: then the file's applies)."""
    row = await session.get(GatewaySetting, TRUSTED_PROXIES)
    if row is None:
        return None
    try:
        if not isinstance(row.value, list) or not all(isinstance(c, str) for c in row.value):
            raise ValueError("not a list of networks")
        return normalise_networks(row.value)
    except ValueError as exc:
        log.warning("ignoring the stored trusted proxies; the configuration's apply", error=str(exc))
        return None


async def trusted_proxies(session: AsyncSession, settings: Settings) -> list[str]:
    """The list in force, normalised (the configuration's was validated at start-up)."""
    stored = await stored_trusted_proxies(session)
    return stored if stored is not None else normalise_networks(settings.server.trusted_proxies)


async def set_trusted_proxies(session: AsyncSession, cidrs: list[str] | None) -> None:
    """Store the list (already validated), or with None go back to the configuration's."""
    if cidrs is not None:
        await _put(session, TRUSTED_PROXIES, normalise_networks(cidrs))
        return
    row = await session.get(GatewaySetting, TRUSTED_PROXIES)
    if row is not None:
        await session.delete(row)


async def _put(session: AsyncSession, key: str, value: Any) -> None:
    row = await session.get(GatewaySetting, key)
    if row is None:
        session.add(GatewaySetting(key=key, value=value))
    else:
        row.value = value
        row.updated_at = utcnow()
