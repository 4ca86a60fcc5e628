"""Health (liveness, readiness with a JSON body naming what is wrong) and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """The database (and Redis, when configured) answer and at least one deployment is healthy."""
    services = request.app.state.services
    checks: dict[str, Any] = {}
    ok = True
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        ok = False
        checks["database"] = f"unavailable ({type(exc).__name__})"
    if services.redis is not None:
        try:
            async with asyncio.timeout(2):
                await services.redis.ping()
            checks["redis"] = "ok"
        except (RedisError, OSError, TimeoutError) as exc:
            ok = False
            checks["redis"] = f"unavailable ({type(exc).__name__})"
    routes = services.catalog.routes()
    states = services.gateway.router
    deployments = [d for r in routes for d in r.deployments]
    healthy = sum(1 for d in deployments if states.state(d).healthy)
    checks["models"] = len(routes)
    checks["deployments"] = {"total": len(deployments), "healthy": healthy}
    if not routes or healthy == 0:
        ok = False
        checks["deployments"]["problem"] = "no healthy deployment" if routes else "no models"
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition; needs ``Authorization: Bearer <observability.metrics_token>`` when that is set."""
    services = request.app.state.services
    config = services.settings.observability
    if not config.metrics:
        return JSONResponse({"error": {"type": "not_found", "message": "Metrics are disabled."}}, status_code=404)
    token = config.metrics_token
    if token is not None:
        presented = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return JSONResponse(
                {"error": {"type": "authentication", "message": "A valid metrics token is required."}},
                status_code=401,
            )
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
