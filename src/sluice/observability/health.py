"""Liveness and readiness endpoints, each answering with a JSON body that names what is wrong."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """Dependencies are reachable and at least one model is served."""
    services = request.app.state.services
    checks: dict[str, Any] = {}
    ok = True
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        ok = False
        checks["database"] = f"unavailable ({type(exc).__name__})"
    models = len(services.catalog.routes())
    checks["models"] = models
    if models == 0:
        ok = False
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
