"""The stages every proxied request walks, in order, for one request.

``identify → admit → route → schedule → call → encode → settle``. Surfaces decode their format and drive these
stages through :class:`Gateway`; the per-request facts (who, which model and deployment, timings, usage, outcome)
accumulate on a :class:`Call`, which :meth:`Gateway.finish` settles exactly once, whatever happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from sluice.canonical import Usage
from sluice.config import Settings
from sluice.errors import NotFound, SluiceError
from sluice.identity.authenticate import Authenticator
from sluice.identity.principal import Principal
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.server.exchange import Exchange

T = TypeVar("T")

access_log = structlog.get_logger("sluice.access")


@dataclass(slots=True)
class Call:
    """Everything known about one proxied request; becomes its usage record and access-log line."""

    request_id: str
    surface: str
    endpoint: str
    started: float  # perf_counter at arrival
    stream: bool = False
    principal: Principal | None = None
    model: str | None = None
    deployment: Deployment | None = None
    usage: Usage | None = None
    status: int = 200
    error: SluiceError | None = None
    cancelled: bool = False
    passthrough: bool = False
    queue_wait: float = 0.0
    upstream_started: float | None = None
    first_byte_at: float | None = None  # first byte of the answer sent to the client
    finished: float | None = None
    releases: list[Callable[[], None]] = field(default_factory=list)
    deadline: asyncio.Timeout | None = None  # the whole request's deadline, set once the deployment is known

    def fail(self, error: SluiceError) -> None:
        self.error = error
        self.status = error.status

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()


class Gateway:
    """The services a request needs, and the stages that use them."""

    def __init__(self, settings: Settings, catalog: ModelCatalog, authenticator: Authenticator) -> None:
        self.settings = settings
        self.catalog = catalog
        self.authenticator = authenticator
        self.max_body = settings.server.max_body_bytes
        self.access_log = settings.logging.access_log

    # --- identify -------------------------------------------------------------------------------------------

    async def identify(self, ex: Exchange, call: Call) -> Principal:
        principal = await self.authenticator.identify(ex)
        call.principal = principal
        return principal

    # --- route ----------------------------------------------------------------------------------------------

    def resolve(self, call: Call, name: str) -> ModelRoute:
        """The model a caller asked for, if it exists and they may use it (otherwise 404 alike)."""
        call.model = name
        route = self.catalog.get(name)
        principal = call.principal
        if route is None or not route.deployments or (principal is not None and not principal.may_use(name)):
            raise NotFound(f"The model '{name}' does not exist or you do not have access to it.", param="model")
        return route

    def visible_models(self, principal: Principal) -> list[ModelRoute]:
        return [r for r in self.catalog.routes() if principal.may_use(r.name)]

    # --- schedule + call ------------------------------------------------------------------------------------

    async def open(self, call: Call, route: ModelRoute, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        """Run ``attempt`` on the route's deployment until the upstream has started answering.

        Nothing has reached the client while this runs, so a failure here is still the caller's clean error.
        """
        deployment = min(route.deployments, key=lambda d: d.order)
        call.deployment = deployment
        call.upstream_started = time.perf_counter()
        if call.deadline is not None:
            total = deployment.target.timeouts.total
            call.deadline.reschedule(asyncio.get_running_loop().time() + total - (time.perf_counter() - call.started))
        return await attempt(deployment)

    # --- settle ---------------------------------------------------------------------------------------------

    def finish(self, call: Call) -> None:
        """Release what the call holds and record its outcome; runs exactly once per call."""
        call.finished = time.perf_counter()
        for release in call.releases:
            release()
        call.releases.clear()
        if self.access_log:
            self._log(call)

    def _log(self, call: Call) -> None:
        finished = call.finished or time.perf_counter()
        usage = call.usage
        access_log.info(
            "request",
            request_id=call.request_id,
            surface=call.surface,
            endpoint=call.endpoint,
            model=call.model,
            deployment=call.deployment.id if call.deployment else None,
            principal=call.principal.label if call.principal else None,
            stream=call.stream,
            status=499 if call.cancelled else call.status,
            error=call.error.kind if call.error else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            duration_ms=round((finished - call.started) * 1000, 3),
            ttfb_ms=round((call.first_byte_at - call.started) * 1000, 3) if call.first_byte_at else None,
        )
