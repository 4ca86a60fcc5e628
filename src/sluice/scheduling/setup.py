"""Building the scheduler the settings ask for (``scheduling.backend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.config import Settings
from sluice.observability.metrics import Metrics
from sluice.scheduling.backend import SchedulerBackend
from sluice.scheduling.local import LocalBackend
from sluice.scheduling.ordering import Policy
from sluice.scheduling.service import Scheduler

if TYPE_CHECKING:
    from redis.asyncio import Redis


def build_scheduler(settings: Settings, redis: Redis | None, metrics: Metrics | None = None) -> Scheduler:
    config = settings.scheduling
    policy = Policy.from_config(config)
    backend: SchedulerBackend
    if config.backend == "redis":
        if redis is None:
            raise ValueError("scheduling.backend is 'redis' but redis_url is not set")
        # The shared backends are imported only when configured (aio-pika alone takes ~0.15 s to import).
        from sluice.scheduling.redis import RedisBackend

        backend = RedisBackend(
            redis, policy, prefix=config.prefix, lease=config.lease_seconds, deadline=settings.redis_deadline_seconds
        )
    elif config.backend == "rabbitmq":
        if config.rabbitmq_url is None:
            raise ValueError("scheduling.backend is 'rabbitmq' but scheduling.rabbitmq_url is not set")
        from sluice.scheduling.rabbitmq import RabbitBackend

        url = config.rabbitmq_url.get_secret_value()
        backend = RabbitBackend(url, policy, prefix=config.prefix.replace(":", "."), lease=config.lease_seconds)
    else:
        backend = LocalBackend(policy)
    scheduler = Scheduler(config, backend, metrics)
    if metrics is not None:
        metrics.on_scrape(scheduler.update_depth_gauges)
    return scheduler
