"""Settings: one YAML file plus environment variables, validated once at start-up.

Precedence, lowest first: built-in defaults, the YAML file (``--config`` / ``SLUICE_CONFIG``), ``SLUICE_*``
environment variables, command-line flags. Secrets are written in the file as environment references
(``${OPENAI_API_KEY}``, ``${VAR:-default}``) and resolved here. Every problem is reported with its path in the
file (``models[0].deployments[1].provider: ...``) by :func:`sluice.config_loading.load_settings` raising
:class:`ConfigError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from sluice.config_sso import SsoConfig
from sluice.naming import SafeName, SafePrefix

ProviderKind = Literal["openai", "azure", "anthropic", "ollama", "gemini", "mock"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    """Upstream deadlines in seconds, each required and positive; each bounds its own wait (they never combine)."""

    connect: float = Field(10.0, gt=0)
    first_byte: float = Field(120.0, gt=0)  # request sent → response headers, and a stream's first chunk
    idle: float = Field(60.0, gt=0)  # between a stream's chunks, once the first has arrived
    total: float = Field(600.0, gt=0)  # a request this deployment serves, from its arrival to its last byte


class MockOptions(Strict):
    """Behaviour of the built-in ``mock`` provider (no network)."""

    latency_ms: float = Field(0.0, ge=0)  # before the first token
    tokens_per_second: float = Field(0.0, ge=0)  # 0 = as fast as possible
    reply: str | None = None  # fixed reply; default is a deterministic text derived from the prompt
    reply_tokens: int = Field(16, ge=1, le=100_000)
    fail_rate: float = Field(0.0, ge=0, le=1)  # fraction of requests answered with a 503-like failure
    fail_mid_stream: bool = False


class ProviderConfig(Strict):
    """One upstream: where it is and how to authenticate. Requests can never choose these."""

    name: SafeName = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: ProviderKind
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None  # Azure OpenAI api-version; Anthropic-Version header
    headers: dict[str, str] = Field(default_factory=dict)
    discover_models: bool = False  # expose every model the upstream lists under its own name
    model_prefix: SafePrefix = ""  # prefix for discovered model names (e.g. "ollama/")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = Field(256, ge=1)
    # An upstream answer (whole body, or a stream in total) larger than this is cut off with an error.
    max_response_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # Used when a translated request has no max_tokens but the upstream requires one (Anthropic).
    default_max_tokens: int = Field(4096, ge=1)
    # A request feature this upstream kind cannot express (n > 1 on Anthropic, logprobs on Ollama, ...) is a 400
    # by default; with this set it is dropped instead.
    drop_unsupported: bool = False
    # Whether the upstream serves OpenAI's Responses API itself (/v1/responses passes through to it); None: OpenAI's
    # own API (no base_url) and Azure's v1 routes do, other OpenAI-compatible servers get it translated.
    responses_api: bool | None = None
    mock: MockOptions = Field(default_factory=MockOptions)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _needs_url(self) -> ProviderConfig:
        if self.kind in ("azure",) and not self.base_url:
            raise ValueError(f"base_url is required for kind {self.kind!r}")
        return self


class Price(Strict):
    """Money per million tokens, in the gateway's currency (USD by default)."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    cached_input: float | None = Field(None, ge=0)


class DeploymentConfig(Strict):
    provider: SafeName
    model: SafeName | None = None  # the upstream's model name; defaults to the public name
    capacity: int | None = Field(None, ge=1)  # max concurrent requests; None = unlimited
    weight: float = Field(1.0, gt=0)  # share of traffic under the "weighted" strategy
    order: int = 0  # tier under the "ordered" strategy: lower first, the next tier only when a tier fails
    price: Price | None = None
    timeouts: Timeouts | None = None  # overrides the provider's
    tags: list[str] = Field(default_factory=list)  # free-form labels (region, hardware, ...)
    enabled: bool = True  # a disabled deployment takes no traffic


FallbackOn = Literal["context_window", "rate_limit", "upstream_error", "timeout", "overloaded", "any"]
DEFAULT_FALLBACK_ON: tuple[FallbackOn, ...] = ("upstream_error", "timeout", "rate_limit", "overloaded")


class ModelFallback(Strict):
    """Another model to try when every deployment of this one failed with one of ``on``."""

    model: SafeName
    on: list[FallbackOn] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ON))


class RoutingConfig(Strict):
    strategy: Literal["ordered", "weighted", "least_busy", "lowest_latency"] = "ordered"
    max_attempts: int = Field(3, ge=1, le=10)  # upstream attempts per request, fallback models included
    backoff_base: float = Field(0.1, ge=0)  # seconds; doubled per retry, with full jitter
    backoff_max: float = Field(2.0, ge=0)
    respect_retry_after_up_to: float = Field(5.0, ge=0)  # wait at most this long for an upstream's Retry-After


class ModelConfig(Strict):
    name: SafeName = Field(min_length=1, max_length=256)  # one name rule everywhere: sluice/naming.py
    deployments: list[DeploymentConfig] = Field(min_length=1)
    price: Price | None = None
    aliases: list[SafeName] = Field(default_factory=list)
    routing: RoutingConfig | None = None  # overrides the gateway-wide routing settings
    fallbacks: list[ModelFallback] = Field(default_factory=list)
    cache: bool | None = None  # response caching for this model (None: the gateway default)


class LimitValues(Strict):
    """Limits for one scope; None means unlimited."""

    rpm: int | None = Field(None, ge=1)  # requests per minute (sliding 60 s window, 1 s resolution)
    tpm: int | None = Field(None, ge=1)  # input + output tokens per minute
    concurrent: int | None = Field(None, ge=1)
    budget: float | None = Field(None, ge=0)  # money per period, in the price table's currency
    period: Literal["day", "week", "month"] = "month"


class ScopedLimits(LimitValues):
    scope: Literal["key", "user", "workspace"]
    id: str = Field(min_length=1)


# The roles a principal can hold (ranked in admin/policy.py), and so the names limits.role_defaults may use.
LIMIT_ROLES: tuple[str, ...] = ("admin", "owner", "member", "viewer")


class LimitsConfig(Strict):
    backend: Literal["memory", "redis"] = "memory"
    # What admission does when Redis cannot be reached: refuse with 503, or enforce per replica in memory.
    on_redis_error: Literal["fail_closed", "local_fallback"] = "fail_closed"
    timezone: str = "UTC"  # budget periods start at local midnight here (IANA name)
    default_max_tokens: int = Field(4096, ge=1)  # reserved for output when a request gives no max_tokens
    defaults: dict[Literal["key", "user", "workspace"], LimitValues] = Field(default_factory=dict)
    role_defaults: dict[str, LimitValues] = Field(default_factory=dict)  # for the caller's own key/user scope
    scopes: list[ScopedLimits] = Field(default_factory=list)
    headers: bool = True  # x-ratelimit-* headers on responses
    redis_prefix: str = "sluice:lim"
    # A call's reservation in Redis (its concurrency slot, its reserved budget) is held for this long and renewed
    # by its replica while the call runs (every third of it): a replica that dies frees them this soon.
    lease_seconds: float = Field(15.0, ge=1, le=3600)

    @field_validator("role_defaults")
    @classmethod
    def _roles(cls, value: dict[str, LimitValues]) -> dict[str, LimitValues]:
        for name in value:
            if name not in LIMIT_ROLES:
                raise ValueError(f"{name!r} is not a role (the roles are {', '.join(LIMIT_ROLES)})")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class BreakerConfig(Strict):
    consecutive_failures: int = Field(5, ge=1)  # open after this many failures in a row ...
    failure_ratio: float = Field(0.5, gt=0, le=1)  # ... or this share of failures ...
    window: int = Field(20, ge=2)  # ... among the last this-many calls (at least `minimum_calls` of them)
    minimum_calls: int = Field(10, ge=1)
    open_seconds: float = Field(30.0, gt=0)  # how long an open circuit stays open before a half-open probe


class HealthConfig(Strict):
    interval_seconds: float = Field(30.0, ge=0)  # 0 turns active health checks off
    timeout_seconds: float = Field(5.0, gt=0)
    failures_to_unhealthy: int = Field(2, ge=1)  # consecutive failed checks that take a provider out of rotation


class CacheConfig(Strict):
    backend: Literal["memory", "redis"] = "memory"
    default: bool = False  # cache every model's answers unless a model, key or request says otherwise
    ttl_seconds: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, ge=1)  # memory backend bound (least recently used go first)
    max_entry_bytes: int = Field(1_000_000, ge=1)
    bill_hits: bool = False  # cache hits cost nothing unless set
    redis_prefix: str = "sluice:cache"


class PriorityClass(Strict):
    """One priority class of the scheduler's queues (a principal's ``priority`` names one)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    weight: int = Field(ge=0)  # strict priority: a higher weight is served first (aging aside)
    # Seconds a waiting request spends at this level before it moves up one (default: aging_seconds / classes).
    age_after: float | None = Field(None, gt=0)
    max_wait: float | None = Field(None, gt=0)  # waited this long for a slot: refused with 503
    max_queue: int | None = Field(None, ge=0)  # this many of the class already waiting on a deployment: 429
    # This many of one tenant's requests of the class already waiting on a deployment: 429 for that tenant only.
    # Unset: half of max_queue (at least 1), so one tenant can never fill the class's line alone; no bound
    # when max_queue is unset too.
    max_queue_per_tenant: int | None = Field(None, ge=1)

    @property
    def tenant_queue_bound(self) -> int | None:
        """The per-tenant bound in force: the one set, or half of ``max_queue`` (at least 1)."""
        if self.max_queue_per_tenant is not None:
            return self.max_queue_per_tenant
        return None if self.max_queue is None else max(1, self.max_queue // 2)


def _default_classes() -> list[PriorityClass]:
    return [
        PriorityClass(name="interactive", weight=300),
        PriorityClass(name="standard", weight=200),
        PriorityClass(name="batch", weight=100),
    ]


class SchedulingConfig(Strict):
    """The queue in front of every deployment with a ``capacity`` (see docs/scheduling.md)."""

    backend: Literal["local", "redis", "rabbitmq"] = "local"
    rabbitmq_url: SecretStr | None = None
    classes: list[PriorityClass] = Field(default_factory=_default_classes, min_length=1)
    default_class: str = "standard"  # for principals whose priority names no class
    aging_seconds: float = Field(30.0, gt=0)  # the lowest class's bound on waiting while the upstream serves
    output_token_weight: float = Field(2.0, ge=0)  # fair-share charge: input + this * output tokens
    lease_seconds: float = Field(10.0, ge=1)  # a slot of a replica that stopped renewing it frees after this
    prefix: str = Field("sluice-sched", pattern=r"^[A-Za-z0-9_.:-]+$")  # Redis keys / RabbitMQ queue names

    @model_validator(mode="after")
    def _classes(self) -> SchedulingConfig:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError("classes: class names must be unique")
        if len({c.weight for c in self.classes}) != len(self.classes):
            raise ValueError("classes: class weights must be unique (they order the classes)")
        if self.default_class not in names:
            raise ValueError(f"default_class: {self.default_class!r} is not one of the classes")
        bound = 0.0
        for cls in sorted(self.classes, key=lambda c: -c.weight):
            bound += cls.age_after or self.aging_seconds / len(self.classes)
            if cls.max_wait is not None and cls.max_wait < bound:
                raise ValueError(
                    f"classes: {cls.name}.max_wait ({cls.max_wait:g} s) is shorter than the class's "
                    f"aging bound ({bound:g} s)"
                )
        return self


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    # Bodies of every other route (admin API, auth, UI) beyond this get 413 while being read (server/body_limit.py).
    max_admin_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Request headers beyond these get 431 (uvicorn's httptools parser sets no bound of its own).
    max_header_count: int = Field(100, ge=16)
    max_header_bytes: int = Field(32 * 1024, ge=1024)  # names and values of all request headers together
    trusted_proxies: list[str] = Field(default_factory=list)
    request_id_header: str = "x-request-id"
    header_timeout_seconds: float = Field(10.0, gt=0)  # a connection must send its request headers within this
    keep_alive_seconds: float = Field(5.0, gt=0)  # an idle kept-alive connection is closed after this
    max_connections: int = Field(4096, ge=1)  # open client connections per process; the idlest go first
    reserved_connections: int = Field(16, ge=0)  # of max_connections, kept for /health/* (server/connections.py)
    max_connections_per_client: int = Field(256, ge=1)  # per client address (trusted_proxies exempt)
    docs: bool = True  # /docs and /openapi.json (the admin API's description; off in the production profile)


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console", "auto"] = "auto"
    access_log: bool = True


class ObservabilityConfig(Strict):
    response_headers: bool = True  # x-sluice-overhead-ms, x-sluice-upstream-ms, x-sluice-deployment
    # GET /metrics: "open" (whoever reaches the port), "token" ("Authorization: Bearer <metrics_token>"), or "off"
    # (404, and nothing recorded). true/false mean open/off; a metrics_token set makes "open" "token".
    metrics: Literal["open", "token", "off"] = "open"
    metrics_token: SecretStr | None = None
    log_prompts: bool = False  # opt-in: put request bodies in debug logs (never keys or tokens)
    otlp_endpoint: str | None = None  # OpenTelemetry traces over OTLP/HTTP (needs the sluice[otel] extra)
    service_name: str = "sluice"

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_flag(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "open" if value else "off"
        return value

    @model_validator(mode="before")
    @classmethod
    def _token_is_never_ignored(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("metrics_token") and data.get("metrics", "open") in ("open", True):
            return {**data, "metrics": "token"}
        return data

    @model_validator(mode="after")
    def _metrics_token_needed(self) -> ObservabilityConfig:
        if self.metrics == "token" and (self.metrics_token is None or not self.metrics_token.get_secret_value()):
            raise ValueError("observability.metrics is 'token' but observability.metrics_token is not set")
        return self


class DatabaseConfig(Strict):
    """Deadlines on PostgreSQL (see docs/operations.md, "When PostgreSQL or Redis fails"); SQLite ignores them."""

    connect_timeout_seconds: float = Field(3.0, gt=0)  # opening a connection (a hung server accepts, then stalls)
    statement_timeout_seconds: float = Field(30.0, gt=0)  # one statement, enforced by the server and the client
    pool_timeout_seconds: float = Field(3.0, gt=0)  # waiting for a pooled connection when all are busy
    # A request waits at most this for a key or session lookup; then it uses what it already knew, or gets 503.
    request_deadline_seconds: float = Field(2.0, gt=0)
    # Limits, prices, IP rules and models changed by another replica or the CLI are re-read this often.
    refresh_seconds: float = Field(15.0, gt=0)


class KeyCacheConfig(Strict):
    ttl_seconds: float = Field(30.0, gt=0)  # how long a verified key is trusted without re-reading the database
    negative_ttl_seconds: float = Field(5.0, ge=0)
    max_entries: int = Field(100_000, ge=100)


RegistrationMode = Literal["closed", "invite", "approval"]


class AuthConfig(Strict):
    """Users, JWTs and registration (see docs/identity.md)."""

    jwt_secret: SecretStr | None = None  # HS256 signing secret, >= 32 bytes; generated in dev mode if unset
    jwt_issuer: str = "sluice"
    jwt_audience: str = "sluice"
    access_ttl_seconds: int = Field(900, ge=30, le=86_400)
    refresh_ttl_seconds: int = Field(14 * 86_400, ge=300, le=365 * 86_400)
    registration: RegistrationMode = "closed"  # an admin can change it at run time
    invite_ttl_hours: float = Field(72.0, gt=0, le=24 * 365)
    login_attempts: int = Field(5, ge=1)  # free failed logins per (account, client address), then waits ...
    login_delay_seconds: float = Field(5.0, gt=0)  # ... starting here, doubling per failure ...
    login_max_delay_seconds: float = Field(900.0, gt=0)  # ... up to this
    login_address_attempts: int = Field(20, ge=1)  # failed logins per client address (any account) per window
    login_window_seconds: float = Field(300.0, gt=0)  # counts are forgotten this long after the last failure
    signup_attempts: int = Field(10, ge=1)  # sign-up attempts per client address ...
    signup_window_seconds: float = Field(3600.0, gt=0)  # ... within this window
    user_cache_ttl_seconds: float = Field(30.0, gt=0)  # how long a user's status is trusted without the database
    admin_email: str | None = None  # first admin, created on first start if no admin exists
    admin_password: SecretStr | None = None


class ResponsesConfig(Strict):
    """Responses stored for ``GET /v1/responses/{id}`` and ``previous_response_id`` (``store``, on by default)."""

    retention_days: float = Field(30.0, gt=0)  # a stored response is deleted this long after it was created
    max_chain: int = Field(1000, ge=1)  # previous responses followed at most to rebuild a conversation


class Settings(Strict):
    data_dir: Path = Path(".sluice")
    database_url: str | None = None  # default: SQLite file in data_dir
    master_key: SecretStr | None = None
    redis_url: SecretStr | None = None  # shared state across replicas (limits, queue, cache, invalidation)
    # Every Redis call on a request's path (admission, settlement, queue, cache) waits at most this, on its own.
    redis_deadline_seconds: float = Field(0.5, gt=0, le=10)
    dev_mode: bool = False
    builtin_mock: bool = True  # expose the mock provider as model "mock-1"
    ui: bool = True  # the web UI at /ui (chat and admin panel)
    # The UI session cookie's Secure flag: "auto" sets it for HTTPS requests (TLS, or X-Forwarded-Proto from a
    # trusted proxy), "always" and "never" fix it.
    ui_secure_cookie: Literal["auto", "always", "never"] = "auto"
    # The price table's currency (ISO 4217), with which costs and budgets are shown; amounts are never converted.
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    key_cache: KeyCacheConfig = Field(default_factory=KeyCacheConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    sso: SsoConfig = Field(default_factory=SsoConfig)  # single sign-on and service tokens (config_sso.py)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    # Where the settings came from, for messages; not part of the file format.
    source: str | None = None

    @model_validator(mode="after")
    def _references(self) -> Settings:
        names = [p.name for p in self.providers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"provider names must be unique: {', '.join(dup)}")
        known = set(names) | ({"mock"} if self.builtin_mock else set())
        problems = []
        if self.limits.backend == "redis" and self.redis_url is None:
            problems.append("limits.backend: 'redis' needs redis_url to be set")
        if self.cache.backend == "redis" and self.redis_url is None:
            problems.append("cache.backend: 'redis' needs redis_url to be set")
        if self.scheduling.backend == "redis" and self.redis_url is None:
            problems.append("scheduling.backend: 'redis' needs redis_url to be set")
        if self.scheduling.backend == "rabbitmq" and self.scheduling.rabbitmq_url is None:
            problems.append("scheduling.backend: 'rabbitmq' needs scheduling.rabbitmq_url to be set")
        for i, model in enumerate(self.models):
            for j, dep in enumerate(model.deployments):
                if dep.provider not in known:
                    problems.append(
                        f"models[{i}].deployments[{j}].provider: unknown provider {dep.provider!r}"
                        f" (known: {', '.join(sorted(known)) or 'none'})"
                    )
        public = [n for m in self.models for n in (m.name, *m.aliases)]
        dup_models = sorted({n for n in public if public.count(n) > 1})
        if dup_models:
            problems.append(f"models: names and aliases must be unique: {', '.join(dup_models)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def resolved_database_url(self) -> str:
        return normalise_database_url(self.database_url) if self.database_url else sqlite_url(self.data_dir)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'sluice.db').resolve()}"


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (``postgresql://``, ``sqlite:///``) and pick the async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url
