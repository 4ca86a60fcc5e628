"""Every page of the UI and its path. Registered on NiceGUI's app when the UI is installed (or a test simulates
it), never at import time, so importing a page module has no effect of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def page_table() -> list[tuple[str, Callable[..., Any]]]:
    from sluice.web import (
        pages_admin_access,
        pages_admin_audit,
        pages_admin_keys,
        pages_admin_limits,
        pages_admin_models,
        pages_admin_ops,
        pages_admin_users,
        pages_auth,
        pages_chat,
    )

    return [
        ("/", pages_auth.index),
        ("/login", pages_auth.login_page),
        ("/register", pages_auth.register_page),
        ("/pending", pages_auth.pending_page),
        ("/account", pages_auth.account_page),
        ("/reset", pages_auth.reset_page),
        ("/chat", pages_chat.chat_page),
        ("/admin", pages_admin_ops.overview_page),
        ("/admin/usage", pages_admin_ops.usage_page),
        ("/admin/limits", pages_admin_limits.limits_page),
        ("/admin/queues", pages_admin_ops.queues_page),
        ("/admin/users", pages_admin_users.users_page),
        ("/admin/keys", pages_admin_keys.keys_page),
        ("/admin/invites", pages_admin_access.invites_page),
        ("/admin/ip-rules", pages_admin_access.ip_rules_page),
        ("/admin/models", pages_admin_models.models_page),
        ("/admin/audit", pages_admin_audit.audit_page),
    ]


def register_pages() -> None:
    from nicegui import ui

    for path, page in page_table():
        ui.page(path)(page)
