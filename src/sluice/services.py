"""The services a running gateway is made of, built from settings, with their start-up and shutdown.

:class:`Services` is what the proxy pipeline, the admin API and the CLI share: the database, upstream providers,
the model catalog, identity resolvers, limits, accounting, metrics and background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from sluice.accounting.service import Accounting
from sluice.cache.service import ResponseCache
from sluice.cache.store import MemoryCache, RedisCache
from sluice.config import Settings
from sluice.errors import ConfigError
from sluice.identity.accounts import Accounts
from sluice.identity.authenticate import Authenticator
from sluice.identity.invalidation import Invalidation
from sluice.identity.jwt_tokens import TokenCodec, WeakSecret, resolve_secret
from sluice.identity.keys import KeyResolver
from sluice.identity.network import TrustedProxies, vouch_key
from sluice.identity.service import IdentityService
from sluice.identity.service_tokens import ServiceTokens
from sluice.identity.sso_service import SsoService
from sluice.identity.throttle import LoginThrottle, login_policy
from sluice.identity.users import UserResolver
from sluice.limits.service import Limiter
from sluice.limits.setup import build_limiter, load_policies
from sluice.limits.stored import StoredLimits
from sluice.observability.loops import BackgroundLoops
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
from sluice.server.shutdown import Shutdown
from sluice.store.db import Database
from sluice.store.private import OWN_SUBDIRECTORIES, private_dir, tighten_tree
from sluice.stored_responses.service import ResponseStore

log = structlog.get_logger("sluice.services")

LAST_USED_FLUSH_SECONDS = 15.0
LOOP_STOP_SECONDS = 5.0
SHUTDOWN_BUDGET_SECONDS = 15.0  # the whole of Services.stop with every store hung; ...
SHUTDOWN_STEP_SECONDS = 5.0  # ... each shutdown step (server/shutdown.py) ...
SHUTDOWN_DRAIN_SECONDS = 10.0  # ... but shipping the usage spool, which may take longer on a healthy database


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
    identity: IdentityService
    limits: StoredLimits
    responses: ResponseStore
    sso: SsoService
    service_tokens: ServiceTokens
    redis: Redis | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    loops: BackgroundLoops = field(default_factory=BackgroundLoops)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.resolved_database_url, config=settings.database)
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
        service_tokens = ServiceTokens(db, settings.sso, settings.auth.user_cache_ttl_seconds)
        authenticator = Authenticator(keys, users, proxies, service_tokens)
        metrics = Metrics(recording=settings.observability.metrics != "off")
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
        throttle = LoginThrottle(login_policy(settings.auth), redis, deadline=settings.redis_deadline_seconds)

        async def reload_rules() -> None:
            authenticator.rules, cidrs = await identity.access.network_rules()
            if cidrs != authenticator.proxies.cidrs:
                authenticator.proxies = authenticator.proxies.with_cidrs(cidrs)

        invalidation = Invalidation(keys, users, reload_rules, redis)
        identity = IdentityService(db, settings, invalidation.publish)
        stored_models = StoredCatalog(db, catalog, set(providers), invalidation.publish)
        invalidation.reloaders["models"] = stored_models.reload
        invalidation.forgetters.append(service_tokens.forget)
        accounts = Accounts(db, codec, settings, invalidation.publish)
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
            accounts,
            throttle,
            invalidation,
            stored_models,
            health,
            identity,
            StoredLimits(db, settings.limits, identity.subjects, accounting.spent, live=limiter.policy),
            ResponseStore(db, settings.responses),
            SsoService(db, settings.sso, accounts, invalidation.publish),
            service_tokens,
            redis,
        )

    async def start(self) -> None:
        private_dir(self.settings.data_dir)
        tighten_tree(self.settings.data_dir, OWN_SUBDIRECTORIES)  # what an earlier version left readable
        if self.db.is_sqlite:
            if not await self.db.is_current():
                await self.db.migrate()
        elif not await self.db.is_current():
            raise RuntimeError("The database schema is not up to date: run `sluice migrate` first.")
        await self.accounting.start()
        await self.limiter.start()  # after the spool: settlements deferred before a restart are kept there
        await load_policies(self.limiter, self.db)
        await self.invalidation.reload_rules()
        await self.identity.users.ensure_first_admin(self.settings.auth)
        for provider in self.providers.values():
            await provider.start()
        await self.stored_models.reload()
        await discover_models(self.catalog)
        await self.gateway.scheduler.start()
        failures = self.metrics.background_loop_failures
        self.loops = BackgroundLoops(on_failure=lambda name: failures.labels(name).inc())
        self.loops.every("refresh-stored", self.settings.database.refresh_seconds, self._refresh_stored)
        self.loops.every("key-last-used", LAST_USED_FLUSH_SECONDS, self.keys.flush_last_used)
        if self.settings.limits.backend == "redis":
            self.loops.every("lease-renewal", self.limiter.lease_renewal_seconds, self.limiter.renew_leases)
        if self.metrics.multiprocess:
            # With several workers, keep this worker's own gauges current between scrapes other workers answer.
            self.loops.every("metrics", REFRESH_SECONDS, self._refresh_metrics)
        if self.redis is not None:
            self.tasks.append(asyncio.create_task(self.invalidation.listen_forever(), name="sluice-invalidation"))
            # Serve once changes made on other replicas reach this one (bounded: Redis may be down; the caches'
            # lifetimes are the backstop then, and the listener catches up once it is subscribed).
            if not await self.invalidation.wait_listening():
                log.warning("not yet subscribed to identity changes; serving anyway")
        if self.settings.health.interval_seconds > 0:
            self.tasks.append(asyncio.create_task(self.health.run_forever(), name="sluice-health"))
        tune_for_serving()
        log.info("started", models=len(self.catalog.routes()), providers=sorted(self.providers))

    async def stop(self) -> None:
        """Every step bounded (see server/shutdown.py): hung stores slow the exit by seconds, never stop it."""
        shutdown = Shutdown(self.db.abort, SHUTDOWN_BUDGET_SECONDS)
        await self.loops.stop(LOOP_STOP_SECONDS)
        await shutdown.step("background tasks", self._cancel_tasks(), SHUTDOWN_STEP_SECONDS)
        await shutdown.step("scheduler", self.gateway.scheduler.close(), SHUTDOWN_STEP_SECONDS)
        await shutdown.step("credential lookups", self._close_lookups(), SHUTDOWN_STEP_SECONDS)
        await shutdown.step("key last use", self.keys.flush_last_used(), SHUTDOWN_STEP_SECONDS)
        await shutdown.step("limits", self.limiter.close(), SHUTDOWN_STEP_SECONDS)
        # The spool is durable: records not shipped now are shipped at the next start.
        await shutdown.step("usage", self.accounting.close(SHUTDOWN_DRAIN_SECONDS), SHUTDOWN_DRAIN_SECONDS + 2)
        await shutdown.step("stored models", self.stored_models.close(), SHUTDOWN_STEP_SECONDS)
        await shutdown.step("sso", self.sso.close(), SHUTDOWN_STEP_SECONDS)
        await shutdown.step("service tokens", self.service_tokens.close(), SHUTDOWN_STEP_SECONDS)
        for name, provider in self.providers.items():
            await shutdown.step(f"provider {name}", provider.close(), SHUTDOWN_STEP_SECONDS)
        if self.redis is not None:
            await shutdown.step("redis", self.redis.aclose(), SHUTDOWN_STEP_SECONDS)
        if self.gateway.tracing is not None:
            self.gateway.tracing.shutdown()
        await shutdown.step("database", self.db.close(), SHUTDOWN_STEP_SECONDS)
        self.metrics.close()
        log.info("stopped", overran=shutdown.overran or None)

    async def _cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        self.tasks.clear()

    async def _close_lookups(self) -> None:
        await self.keys.close()
        if self.gateway.authenticator.users is not None:
            await self.gateway.authenticator.users.close()

    async def _refresh_metrics(self) -> None:
        self.metrics.refresh()

    async def _refresh_stored(self) -> None:
        """Limits, prices, IP rules and models changed elsewhere (another replica, the CLI) apply here in time.

        A failure (the database is down) is the loop's to count and log; the next run, after the outage, catches up.
        """
        await load_policies(self.limiter, self.db)
        await self.accounting.reload_prices()
        await self.invalidation.reload_rules()
        await self.stored_models.reload()

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
        return ResponseCache(config, RedisCache(redis, config.redis_prefix, settings.redis_deadline_seconds), metrics)
    return ResponseCache(config, MemoryCache(config.max_entries), metrics)


async def _outbox_gauges(metrics: Metrics, accounting: Accounting) -> None:
    spool = accounting.spool
    if metrics.multiprocess:
        # Workers share the spool file, so no worker's own count is the backlog: count the file, on a reader
        # connection of its own (WAL), never on the spool's writer thread, which requests wait on.
        metrics.outbox_backlog.set(await asyncio.to_thread(spool.backlog))
    else:
        metrics.outbox_backlog.set(spool.pending)
