"""``create_app(settings)``: builds every service, mounts the surfaces, and owns start-up and shutdown.

Nothing here runs at import time. The returned ASGI app is the proxy dispatcher; everything that is not a proxy
route (admin API, health, docs, UI) is served by the FastAPI app behind it (wrapped in the request-id middleware),
whose lifespan opens and closes the database, upstream connection pools and background tasks.
"""

from __future__ import annotations

from fastapi import FastAPI

from sluice.admin.api import install as install_admin_api
from sluice.config import Settings
from sluice.config_loading import load_settings
from sluice.observability.health import router as health_router
from sluice.observability.logging import configure_logging
from sluice.observability.request_id import RequestIdMiddleware
from sluice.server.body_limit import BodyLimit
from sluice.server.dispatch import ProxyDispatcher
from sluice.services import Services
from sluice.surfaces.anthropic import routes as anthropic_routes
from sluice.surfaces.anthropic.format import ANTHROPIC
from sluice.surfaces.ollama import routes as ollama_routes
from sluice.surfaces.ollama.format import OLLAMA
from sluice.surfaces.openai import routes as openai_routes
from sluice.surfaces.openai.format import OPENAI
from sluice.surfaces.responses import routes as responses_routes


class SluiceApp(ProxyDispatcher):
    """The ASGI app, with the services it was built from (for the CLI and tests)."""

    services: Services


def create_app(settings: Settings) -> SluiceApp:
    services = Services.build(settings)
    docs = settings.server.docs  # off: /docs and /openapi.json answer 404 (docs/operations.md, production profile)
    api = FastAPI(
        title="Sluice",
        version="0.1.0",
        lifespan=services.lifespan,
        docs_url="/docs" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        redoc_url=None,
    )
    api.state.services = services
    api.include_router(health_router)
    install_admin_api(api)
    if settings.ui:
        from sluice.web import install_ui

        install_ui(api, services)
    responses_exact, responses_prefixed = responses_routes.routes(services.responses)
    app = SluiceApp(
        services.gateway,
        routes={**openai_routes.ROUTES, **responses_exact, **anthropic_routes.ROUTES, **ollama_routes.ROUTES},
        prefix_routes={**openai_routes.PREFIX_ROUTES, **responses_prefixed, **ollama_routes.PREFIX_ROUTES},
        surface_prefixes={"/v1/": OPENAI, "/v1/messages": ANTHROPIC, "/api/": OLLAMA},
        fallback=RequestIdMiddleware(
            BodyLimit(api, settings.server.max_admin_body_bytes), settings.server.request_id_header
        ),
        request_id_header=settings.server.request_id_header,
        max_header_count=settings.server.max_header_count,
        max_header_bytes=settings.server.max_header_bytes,
    )
    app.services = services
    return app


def create_app_from_environment() -> SluiceApp:
    """The app for a worker process of ``sluice serve --workers N`` (settings from the environment)."""
    settings = load_settings()
    configure_logging(settings.logging)
    return create_app(settings)
