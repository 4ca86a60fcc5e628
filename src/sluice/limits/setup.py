"""Building the limiter from settings, and keeping its stored policies current."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import SQLAlchemyError

from sluice.accounting.service import Accounting
from sluice.config import Settings
from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import PolicyTable
from sluice.limits.repository import LimitRepository
from sluice.limits.service import Limiter
from sluice.store.db import Database

log = structlog.get_logger("sluice.limits")

POLICY_REFRESH_SECONDS = 15.0


def build_limiter(settings: Settings, accounting: Accounting) -> Limiter:
    config = settings.limits
    zone = ZoneInfo(config.timezone)
    store = MemoryLimitStore(zone, accounting.spent)
    return Limiter(config, PolicyTable(config), store, accounting)


async def load_policies(limiter: Limiter, db: Database) -> None:
    async with db.session() as session:
        limiter.policy.replace_stored(await LimitRepository(session).all())


async def refresh_policies_forever(limiter: Limiter, db: Database) -> None:
    """Stored policies changed on another replica reach this one within POLICY_REFRESH_SECONDS."""
    while True:
        await asyncio.sleep(POLICY_REFRESH_SECONDS)
        try:
            await load_policies(limiter, db)
        except SQLAlchemyError as exc:
            log.warning("could not refresh limit policies", error=type(exc).__name__)
