"""Every page of the UI and its path. Registered on NiceGUI's app when the UI is installed (or a test simulates
it), never at import time, so importing a page module has no effect of its own.

Each page function takes the :class:`~sluice.web.context.UiContext` as its first argument; registration binds it,
so what NiceGUI sees (and turns into query parameters) is the rest of the signature.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sluice.web.context import UiContext


def page_table() -> list[tuple[str, Callable[..., Any]]]:
    from sluice.web import (
        pages_admin_access,
        pages_admin_audit,
        pages_admin_keys,
        pages_admin_limits,
        pages_admin_models,
        pages_admin_ops,
        pages_admin_requests,
        pages_admin_usage,
        pages_admin_users,
        pages_auth,
        pages_chat,
        pages_sso,
    )

    return [
        ("/", pages_auth.index),
        ("/login", pages_auth.login_page),
        ("/register", pages_auth.register_page),
        ("/pending", pages_auth.pending_page),
        ("/account", pages_auth.account_page),
        ("/reset", pages_auth.reset_page),
        ("/setup", pages_auth.setup_page),
        ("/sso", pages_sso.sso_page),
        ("/chat", pages_chat.chat_page),
        ("/admin", pages_admin_ops.overview_page),
        ("/admin/usage", pages_admin_usage.usage_page),
        ("/admin/requests", pages_admin_requests.requests_page),
        ("/admin/limits", pages_admin_limits.limits_page),
        ("/admin/queues", pages_admin_ops.queues_page),
        ("/admin/users", pages_admin_users.users_page),
        ("/admin/keys", pages_admin_keys.keys_page),
        ("/admin/invites", pages_admin_access.invites_page),
        ("/admin/ip-rules", pages_admin_access.ip_rules_page),
        ("/admin/models", pages_admin_models.models_page),
        ("/admin/audit", pages_admin_audit.audit_page),
    ]


def register_pages(context: UiContext) -> None:
    from nicegui import app, ui

    from sluice.web.layout import STATIC, STATIC_PATH

    app.add_static_files(STATIC_PATH, STATIC)
    for path, page in page_table():
        ui.page(path)(partial(page, context))
