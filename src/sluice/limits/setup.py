"""Building the limiter from settings, and keeping its stored policies current."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from sluice.accounting.service import Accounting
from sluice.config import Settings
from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import PolicyTable
from sluice.limits.reconcile import DeferredSettlements, Reconciler
from sluice.limits.redis import RedisLimitStore
from sluice.limits.repository import LimitRepository
from sluice.limits.service import Limiter
from sluice.observability.metrics import Metrics
from sluice.store.db import Database


def build_limiter(settings: Settings, accounting: Accounting, redis: Redis | None, metrics: Metrics) -> Limiter:
    config = settings.limits
    zone = ZoneInfo(config.timezone)
    if config.backend == "memory":
        store = MemoryLimitStore(zone, accounting.spent)
        return Limiter(config, PolicyTable(config), store, accounting, metrics=metrics)
    if redis is None:
        raise ValueError("limits.backend is 'redis' but redis_url is not set")
    redis_store = RedisLimitStore(
        redis, config.redis_prefix, zone, accounting.spent, deadline=settings.redis_deadline_seconds
    )
    fallback = (
        MemoryLimitStore(zone, accounting.spent, replicas=lambda: redis_store.live_replicas)
        if config.on_redis_error == "local_fallback"
        else None
    )
    reconciler = Reconciler(redis_store, DeferredSettlements(accounting.spool), fallback)
    limiter = Limiter(
        config, PolicyTable(config), redis_store, accounting, fallback=fallback, metrics=metrics, reconciler=reconciler
    )
    metrics.on_scrape(lambda: metrics.limit_settlements_deferred.set(limiter.deferred))
    return limiter


async def load_policies(limiter: Limiter, db: Database) -> None:
    async with db.session() as session:
        limiter.policy.replace_stored(await LimitRepository(session).all())
