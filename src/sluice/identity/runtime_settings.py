"""Settings an admin changes at run time, stored in the database over the file's values."""

from __future__ import annotations

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from sluice.config import RegistrationMode, Settings
from sluice.store.models import GatewaySetting
from sluice.store.types import utcnow

REGISTRATION = "registration"


async def registration_mode(session: AsyncSession, settings: Settings) -> RegistrationMode:
    row = await session.get(GatewaySetting, REGISTRATION)
    if row is not None and row.value in ("closed", "invite", "approval"):
        return cast(RegistrationMode, row.value)
    return settings.auth.registration


async def set_registration_mode(session: AsyncSession, mode: RegistrationMode) -> None:
    row = await session.get(GatewaySetting, REGISTRATION)
    if row is None:
        session.add(GatewaySetting(key=REGISTRATION, value=mode))
    else:
        row.value = mode
        row.updated_at = utcnow()
