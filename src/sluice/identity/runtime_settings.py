"""Settings an admin changes at run time, stored in the database over the file's values.

The registration mode and the trusted proxies. A stored value wins over the configuration file's; removing it
(``trusted_proxies: null`` through the API, ``--reset`` in the CLI) goes back to the file's.
"""

from __future__ import annotations

from typing import cast

import structlog

from sluice.config import RegistrationMode, Settings
from sluice.identity.network import normalise_networks
from sluice.store.settings import SettingsRepository

log = structlog.get_logger("sluice.identity")

REGISTRATION = "registration"
TRUSTED_PROXIES = "trusted_proxies"


async def registration_mode(stored: SettingsRepository, settings: Settings) -> RegistrationMode:
    value = await stored.get(REGISTRATION)
    if value in ("closed", "invite", "approval"):
        return cast(RegistrationMode, value)
    return settings.auth.registration


async def set_registration_mode(stored: SettingsRepository, mode: RegistrationMode) -> None:
    await stored.put(REGISTRATION, mode)


async def stored_trusted_proxies(stored: SettingsRepository) -> list[str] | None:
    """The stored list, or None when none is stored (or what is stored is unusable: then the file's applies)."""
    value = await stored.get(TRUSTED_PROXIES)
    if value is None:
        return None
    try:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ValueError("not a list of networks")
        return normalise_networks(value)
    except ValueError as exc:
        log.warning("ignoring the stored trusted proxies; the configuration's apply", error=str(exc))
        return None


async def trusted_proxies(stored: SettingsRepository, settings: Settings) -> list[str]:
    """The list in force, normalised (the configuration's was validated at start-up)."""
    found = await stored_trusted_proxies(stored)
    return found if found is not None else normalise_networks(settings.server.trusted_proxies)


async def set_trusted_proxies(stored: SettingsRepository, cidrs: list[str] | None) -> None:
    """Store the list (already validated), or with None go back to the configuration's."""
    if cidrs is not None:
        await stored.put(TRUSTED_PROXIES, normalise_networks(cidrs))
    else:
        await stored.remove(TRUSTED_PROXIES)
