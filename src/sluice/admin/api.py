"""The admin REST API, mounted under ``/admin/v1`` on the FastAPI app, with its error handling.

Errors use one JSON shape, ``{"error": {"type", "message", "code", "param"}}``, with the status of the
:class:`~sluice.errors.SluiceError` raised; request validation keeps FastAPI's documented 422 body but never echoes
the submitted values (they may be passwords or tokens).
"""

from __future__ import annotations

import traceback
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from sluice.admin import (
    routes_access,
    routes_auth,
    routes_keys,
    routes_limits,
    routes_models,
    routes_queues,
    routes_requests,
    routes_self,
    routes_setup,
    routes_sso,
    routes_usage,
    routes_users,
)
from sluice.admin.schemas import ErrorBody
from sluice.errors import Overloaded, SluiceError
from sluice.store.db import UNAVAILABLE

log = structlog.get_logger("sluice.admin")

PREFIX = "/admin/v1"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Invalid request"),
        (401, "Not authenticated"),
        (403, "Not allowed"),
        (404, "Not found (or in another workspace)"),
        (409, "Conflict"),
        (429, "Too many attempts"),
        (503, "A dependency is unavailable"),
    )
}


ROUTERS = (
    routes_auth.router,
    routes_sso.router,
    routes_setup.router,
    routes_self.router,
    routes_users.router,
    routes_keys.router,
    routes_access.router,
    routes_usage.router,
    routes_requests.router,
    routes_limits.router,
    routes_models.router,
    routes_queues.router,
)


def admin_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, responses=ERROR_RESPONSES)
    for module_router in ROUTERS:
        router.include_router(module_router)
    return router


def admin_routes() -> list[APIRoute]:
    """Every admin endpoint (paths relative to :data:`PREFIX`), for the policy tests."""
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def error_body(error: SluiceError) -> dict[str, Any]:
    return {"error": {"type": error.kind, "message": error.message, "code": error.code, "param": error.param}}


async def _sluice_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SluiceError)
    return JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers or None)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database (or a socket under it) is down: 503, like a key that cannot be verified, never 500."""
    log.warning("admin request failed: a dependency is unavailable", path=request.url.path, error=type(exc).__name__)
    error = Overloaded("The gateway's database is unavailable; try again shortly.", code="database_unavailable")
    return JSONResponse(error_body(error), status_code=503, headers={"retry-after": "5"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The frames, not the message: a database error's message carries the statement's parameters (hashes).
    frames = "".join(traceback.format_tb(exc.__traceback__)[-8:])
    log.error("unhandled admin error", path=request.url.path, error=type(exc).__name__, frames=frames)
    body = {
        "error": {
            "type": "internal_error",
            "message": "The gateway failed to handle this request.",
            "code": None,
            "param": None,
        }
    }
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    app.include_router(admin_router())
    app.add_exception_handler(SluiceError, _sluice_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
