"""The web UI at ``/ui``: a chat page and an admin panel (NiceGUI, served by the gateway, working offline).

NiceGUI keeps one global application per process, so the UI is mounted on the first gateway app built in a
process (``sluice serve`` builds exactly one). Its assets ship in the nicegui wheel; nothing is fetched at run time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from fastapi import FastAPI

_INSTALLED = False


def self_url(host: str, port: int) -> str:
    """How this process reaches its own HTTP server (loopback for wildcard listeners)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def install_ui(api: FastAPI, services: Any) -> bool:
    """Mount the UI on ``api`` unless this process already serves one; True if mounted."""
    global _INSTALLED
    if _INSTALLED:
        return False
    settings = services.settings
    storage = settings.data_dir / "ui-sessions"
    storage.mkdir(parents=True, exist_ok=True)
    storage.chmod(0o700)  # sessions hold the users' refresh tokens
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(storage))
    from nicegui import app, ui

    from sluice.web import session
    from sluice.web.cookies import SecureSessionCookie
    from sluice.web.pages import register_pages

    register_pages()
    session.CONTEXT = session.Context(self_url(settings.server.host, settings.server.port), services)
    # The session cookie is signed with a key derived from the JWT secret: stable across restarts and replicas.
    secret = hmac.new(services.accounts.codec.secret.encode(), b"sluice-ui-session", hashlib.sha256).hexdigest()
    ui.run_with(
        api,
        mount_path="/ui",
        storage_secret=secret,
        title="Sluice",
        show_welcome_message=False,
        reconnect_timeout=10.0,
        binding_refresh_interval=None,  # no bindings are used: no 100 ms wake-ups for the life of the gateway
        session_middleware_kwargs={"https_only": settings.ui_secure_cookie == "always", "same_site": "lax"},
    )
    if settings.ui_secure_cookie == "auto":
        # Outermost in NiceGUI's app, so it sees the cookie the session middleware sets. The proxies are looked up
        # per request: the authenticator's list is the one the gateway trusts right now.
        app.add_middleware(SecureSessionCookie, proxies=lambda: services.gateway.authenticator.proxies)
    _INSTALLED = True
    return True
