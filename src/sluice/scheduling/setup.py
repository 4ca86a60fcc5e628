"""Building the scheduler the settings ask for (``scheduling.backend``)."""

from __future__ import annotations

from redis.asyncio import Redis

from sluice.config import Settings
from sluice.observability.metrics import Metrics
from sluice.scheduling.service import Scheduler


def build_scheduler(settings: Settings, redis: Redis | None, metrics: Metrics | None = None) -> Scheduler:
    config = settings.scheduling
    scheduler = Scheduler.local(config, metrics)
    if metrics is not None:
        metrics.on_scrape(scheduler.update_depth_gauges)
    return scheduler
