"""The web UI at ``/ui``: a chat page and an admin panel (NiceGUI, served by the gateway, working offline).

NiceGUI keeps one application per process, so the UI is mounted on the first gateway app built in a process
(``sluice serve`` builds exactly one). Its assets ship in the nicegui wheel; nothing is fetched at run time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from fastapi import FastAPI

from sluice.store.private import UI_SESSIONS_DIR, private_dir

if TYPE_CHECKING:
    from sluice.services import Services


def self_url(host: str, port: int) -> str:
    """How this process reaches its own HTTP server (loopback for wildcard listeners)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def install_ui(api: FastAPI, services: Services) -> bool:
    """Mount the UI on ``api`` unless this process already serves one; True if mounted."""
    from nicegui import app, ui

    if app.config.has_run_config:  # NiceGUI's own record that its one application is already mounted
        return False
    settings = services.settings
    storage = settings.data_dir / UI_SESSIONS_DIR
    private_dir(storage)  # sessions hold the users' refresh tokens
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(storage))

    from sluice.web.context import UiContext
    from sluice.web.cookies import SecureSessionCookie
    from sluice.web.pages import register_pages
    from sluice.web.security_headers import SecurityHeaders

    authenticator = services.gateway.authenticator
    context = UiContext(
        base_url=self_url(settings.server.host, settings.server.port),
        db=services.db,
        proxies=lambda: authenticator.proxies,
        request_id_header=settings.server.request_id_header,
        currency=settings.currency,
    )
    register_pages(context)
    app.on_shutdown(context.close)
    # The session cookie is signed with a key derived from the JWT secret: stable across restarts and replicas.
    secret = hmac.new(services.accounts.codec.secret.encode(), b"sluice-ui-session", hashlib.sha256).hexdigest()
    ui.run_with(
        api,
        mount_path="/ui",
        storage_secret=secret,
        title="Sluice",
        language="en-US",  # the page's lang attribute (screen readers pick their voice by it)
        show_welcome_message=False,
        reconnect_timeout=10.0,
        binding_refresh_interval=None,  # no bindings are used: no 100 ms wake-ups for the life of the gateway
        session_middleware_kwargs={"https_only": settings.ui_secure_cookie == "always", "same_site": "lax"},
    )
    app.add_middleware(SecurityHeaders)
    if settings.ui_secure_cookie == "auto":
        # Outermost in NiceGUI's app, so it sees the cookie the session middleware sets. The proxies are looked up
        # per request: the authenticator's list is the one the gateway trusts right now.
        app.add_middleware(SecureSessionCookie, proxies=lambda: authenticator.proxies)
    return True
