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
    from nicegui import ui

    from sluice.web import pages_admin_access, pages_admin_models, pages_admin_ops, pages_auth, pages_chat, session

    del pages_admin_access, pages_admin_models, pages_admin_ops, pages_auth, pages_chat  # for their @ui.page routes
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
        session_middleware_kwargs={"https_only": False, "same_site": "lax"},
    )
    _INSTALLED = True
    return True
