"""The services a running gateway is made of, built from settings, with their start-up and shutdown.

:class:`Services` is what the proxy pipeline, the admin API and the CLI share: the database, upstream providers,
the model catalog, identity resolvers, limits, accounting, metrics and background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError

from sluice.accounting.service import Accounting
from sluice.cache.service import ResponseCache
from sluice.cache.store import MemoryCache, RedisCache
from sluice.config import Settings
from sluice.errors import ConfigError
from sluice.identity.accounts import Accounts
from sluice.identity.authenticate import Authenticator
from sluice.identity.bootstrap import ensure_first_admin, load_network_rules
from sluice.identity.invalidation import Invalidation
from sluice.identity.jwt_tokens import TokenCodec, WeakSecret, resolve_secret
from sluice.identity.keys import KeyResolver
from sluice.identity.network import TrustedProxies, vouch_key
from sluice.identity.throttle import LoginThrottle
from sluice.identity.users import UserResolver
from sluice.limits.service import Limiter
from sluice.limits.setup import build_limiter, load_policies
from sluice.observability.metrics import Metrics
from sluice.observability.multiprocess import REFRESH_SECONDS
from sluice.observability.tracing import build_tracing
from sluice.pipeline import Gateway
from sluice.providers.base import Provider
from sluice.routing.breaker import STATE_VALUES
from sluice.routing.catalog import ModelCatalog, build_catalog, build_providers, discover_models
from sluice.routing.health import HealthChecker
from sluice.routing.router import Router
from sluice.routing.stored import StoredCatalog
from sluice.scheduling.setup import build_scheduler
from sluice.server.gc_tuning import tune_for_serving
from sluice.store.db import Database

log = structlog.get_logger("sluice.services")

LAST_USED_FLUSH_SECONDS = 15.0
STORED_REFRESH_SECONDS = 15.0
DB_LOOP_STOP_SECONDS = 5.0


@dataclass
class Services:
    settings: Settings
    db: Database
    providers: dict[str, Provider]
    catalog: ModelCatalog
    keys: KeyResolver
    gateway: Gateway
    accounting: Accounting
    limiter: Limiter
    metrics: Metrics
    accounts: Accounts
    throttle: LoginThrottle
    invalidation: Invalidation
    stored_models: StoredCatalog
    health: HealthChecker
    redis: Redis | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _db_loops: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.resolved_database_url)
        providers = build_providers(settings)
        catalog = build_catalog(settings, providers)
        master = settings.master_key.get_secret_value() if settings.master_key else None
        keys = KeyResolver(db, master, settings.key_cache)
        redis = (
            Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=2)
            if settings.redis_url
            else None
        )
        try:
            secret = resolve_secret(settings.auth, settings.data_dir, dev_mode=is_dev_mode(settings))
        except WeakSecret as exc:
            raise ConfigError([str(exc)]) from None
        codec = TokenCodec(secret, settings.auth)
        users = UserResolver(db, codec, settings.auth)
        try:
            proxies = TrustedProxies(settings.server.trusted_proxies, vouch_key(secret))
        except ValueError as exc:
            raise ConfigError([f"server.trusted_proxies: {exc}"]) from None
        authenticator = Authenticator(keys, users, proxies)
        metrics = Metrics(recording=settings.observability.metrics)
        accounting = Accounting(db, settings.data_dir, catalog, on_ship_failure=metrics.outbox_failures.inc)
        metrics.on_scrape_shared(lambda: _outbox_gauges(metrics, accounting))
        limiter = build_limiter(settings, accounting, redis, metrics)
        accounting.bill_cache_hits = settings.cache.bill_hits
        gateway = Gateway(
            settings,
            catalog,
            authenticator,
            accounting=accounting,
            limiter=limiter,
            metrics=metrics,
            router=build_router(settings, catalog, metrics),
            cache=build_cache(settings, redis, metrics),
            scheduler=build_scheduler(settings, redis, metrics),
        )
        gateway.tracing = build_tracing(settings.observability.otlp_endpoint, settings.observability.service_name)
        throttle = LoginThrottle(settings.auth.login_attempts, settings.auth.login_window_seconds, redis)

        async def reload_rules() -> None:
            authenticator.rules, cidrs = await load_network_rules(db, settings)
            if cidrs != authenticator.proxies.cidrs:
                authenticator.proxies = authenticator.proxies.with_cidrs(cidrs)

        invalidation = Invalidation(keys, users, reload_rules, redis)
        stored_models = StoredCatalog(db, catalog, set(providers))
        invalidation.reloaders["models"] = stored_models.reload
        health = HealthChecker(
            catalog,
            gateway.router,
            settings.health,
            on_change=lambda d, ok: metrics.deployment_healthy.labels(d.id).set(1 if ok else 0),
        )
        return cls(
            settings,
            db,
            providers,
            catalog,
            keys,
            gateway,
            accounting,
            limiter,
            metrics,
            Accounts(codec),
            throttle,
            invalidation,
            stored_models,
            health,
            redis,
        )

    async def start(self) -> None:
        if self.db.is_sqlite:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            if not await self.db.is_current():
                await self.db.migrate()
        elif not await self.db.is_current():
            raise RuntimeError("The database schema is not up to date: run `sluice migrate` first.")
        await self.accounting.start()
        await self.limiter.start()  # after the spool: settlements deferred before a restart are kept there
        await load_policies(self.limiter, self.db)
        await self.invalidation.reload_rules()
        await ensure_first_admin(self.db, self.settings.auth)
        for provider in self.providers.values():
            await provider.start()
        await self.stored_models.reload()
        await discover_models(self.catalog)
        await self.gateway.scheduler.start()
        self._stopping = asyncio.Event()
        # Database loops end between iterations on stop (a query cancelled mid-flight would leave its SQLite
        # worker thread answering a loop that is gone); the other tasks are simply cancelled.
        self._db_loops = [
            asyncio.create_task(self._every(STORED_REFRESH_SECONDS, self._refresh_stored), name="sluice-refresh"),
            asyncio.create_task(
                self._every(LAST_USED_FLUSH_SECONDS, self.keys.flush_last_used), name="sluice-key-last-used"
            ),
        ]
        if self.redis is not None:
            self.tasks.append(asyncio.create_task(self.invalidation.listen_forever(), name="sluice-invalidation"))
        if self.settings.health.interval_seconds > 0:
            self.tasks.append(asyncio.create_task(self.health.run_forever(), name="sluice-health"))
        if self.metrics.multiprocess:
            self.tasks.append(asyncio.create_task(self._refresh_metrics(), name="sluice-metrics"))
        tune_for_serving()
        log.info("started", models=len(self.catalog.routes()), providers=sorted(self.providers))

    async def stop(self) -> None:
        self._stopping.set()
        if self._db_loops:
            _done, late = await asyncio.wait(self._db_loops, timeout=DB_LOOP_STOP_SECONDS)
            self.tasks.extend(late)
            self._db_loops = []
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
        await self.gateway.scheduler.close()
        await self.keys.flush_last_used()
        await self.limiter.close()
        await self.accounting.close()
        await self.stored_models.close()
        for provider in self.providers.values():
            await provider.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.gateway.tracing is not None:
            self.gateway.tracing.shutdown()
        await self.db.close()
        self.metrics.close()
        log.info("stopped")

    async def _every(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` every ``seconds`` until stop() (never interrupted mid-way)."""
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), seconds)
                return
            except TimeoutError:
                await work()

    async def _refresh_metrics(self) -> None:
        """With several workers, keep this worker's own gauges current between scrapes other workers answer."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            self.metrics.refresh()

    async def _refresh_stored(self) -> None:
        """Limits, prices, IP rules and models changed elsewhere (another replica, the CLI) apply here in time."""
        try:
            await load_policies(self.limiter, self.db)
            await self.accounting.reload_prices()
            await self.invalidation.reload_rules()
            await self.stored_models.reload()
        except SQLAlchemyError as exc:
            log.warning("could not refresh stored settings", error=type(exc).__name__)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def is_dev_mode(settings: Settings) -> bool:
    """Dev mode: asked for, or the embedded single-node defaults (SQLite in the data directory)."""
    return settings.dev_mode or settings.database_url is None


def build_router(settings: Settings, catalog: ModelCatalog, metrics: Metrics) -> Router:
    return Router(
        catalog,
        settings.routing,
        settings.breaker,
        on_retry=lambda d: metrics.retries.labels(d.id).inc(),
        on_fallback=lambda model: metrics.fallbacks.labels(model).inc(),
        on_state=lambda d, state: metrics.circuit_state.labels(d.id).set(STATE_VALUES[state]),
    )


def build_cache(settings: Settings, redis: Redis | None, metrics: Metrics) -> ResponseCache:
    config = settings.cache
    if config.backend == "redis":
        if redis is None:
            raise ValueError("cache.backend is 'redis' but redis_url is not set")
        return ResponseCache(config, RedisCache(redis, config.redis_prefix), metrics)
    return ResponseCache(config, MemoryCache(config.max_entries), metrics)


async def _outbox_gauges(metrics: Metrics, accounting: Accounting) -> None:
    spool = accounting.spool
    if metrics.multiprocess:
        # Workers share the spool file, so no worker's own count is the backlog: count the file, on a reader
        # connection of its own (WAL), never on the spool's writer thread, which requests wait on.
        metrics.outbox_backlog.set(await asyncio.to_thread(spool.backlog))
    else:
        metrics.outbox_backlog.set(spool.pending)
