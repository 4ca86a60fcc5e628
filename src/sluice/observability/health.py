"""Health (liveness, readiness with a JSON body naming what is wrong) and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aio_pika.exceptions import AMQPError
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from sluice.scheduling.rabbitmq import RabbitBackend
    from sluice.services import Services

router = APIRouter(tags=["health"])

# Each dependency must answer within this; a hung one is reported as such instead of stalling the probe.
CHECK_TIMEOUT = 2.0

DEPENDENCY_ERRORS = (SQLAlchemyError, RedisError, AMQPError, OSError, TimeoutError)


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """The database, Redis and RabbitMQ (those configured) answer, and at least one deployment is healthy."""
    services: Services = request.app.state.services
    probes: dict[str, Callable[[], Awaitable[Any]]] = {"database": services.db.ping}
    if services.redis is not None:
        probes["redis"] = services.redis.ping
    if services.settings.scheduling.backend == "rabbitmq":
        probes["rabbitmq"] = cast("RabbitBackend", services.gateway.scheduler.backend).ping
    # Concurrently, so the probe takes as long as the slowest dependency, never the sum.
    results = await asyncio.gather(*(_check(probe) for probe in probes.values()))
    checks: dict[str, Any] = dict(zip(probes, results, strict=True))
    failing = [name for name, result in checks.items() if result != "ok"]
    routes = services.catalog.routes()
    states = services.gateway.router
    deployments = [d for r in routes for d in r.deployments]
    healthy = sum(1 for d in deployments if states.state(d).healthy)
    # Reported, not failing readiness: a loop failing because the database is down already shows as "database",
    # and taking every replica out of rotation for a loop that retries on its own would turn a hiccup into an outage.
    checks["loops"] = services.loops.report()
    checks["models"] = len(routes)
    checks["deployments"] = {"total": len(deployments), "healthy": healthy}
    if not routes or healthy == 0:
        failing.append("deployments")
        checks["deployments"]["problem"] = "no healthy deployment" if routes else "no models"
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks}
    return JSONResponse(body, status_code=503 if failing else 200)


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await probe()
    except TimeoutError:
        return f"unavailable (no answer within {CHECK_TIMEOUT:g} s)"
    except DEPENDENCY_ERRORS as exc:
        return f"unavailable ({type(exc).__name__})"
    return "ok"


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: open, behind ``Authorization: Bearer <observability.metrics_token>``, or off."""
    services = request.app.state.services
    config = services.settings.observability
    if config.metrics == "off":
        return JSONResponse({"error": {"type": "not_found", "message": "Metrics are disabled."}}, status_code=404)
    token = config.metrics_token
    if config.metrics == "token" and token is not None:
        presented = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return JSONResponse(
                {"error": {"type": "authentication", "message": "A valid metrics token is required."}},
                status_code=401,
            )
    body, content_type = await services.metrics.render()
    return Response(body, media_type=content_type)
