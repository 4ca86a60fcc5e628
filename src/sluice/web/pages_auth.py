"""Sign-in, sign-up (as the registration mode allows), waiting for approval, and the account page."""

from __future__ import annotations

from typing import Any

import httpx
from nicegui import ui

from sluice.web.client import ADMIN, ApiError, error_of
from sluice.web.context import UiContext
from sluice.web.layout import attempt, clear_errors, frame, heading, page_head, show_error
from sluice.web.pages_sso import sso_buttons, sso_state
from sluice.web.session import forget, gateway, require, sign_in


def index(context: UiContext) -> None:
    ui.navigate.to("/chat" if gateway(context) is not None else "/login")


async def gateway_state(context: UiContext) -> dict[str, Any]:
    """Whether sign-up is offered and whether the first admin is still to be made (``GET /admin/v1/setup``)."""
    try:
        response = await context.http().get(f"{ADMIN}/setup")
    except httpx.HTTPError:
        return {}
    return dict(response.json()) if response.status_code == 200 else {}


async def login_page(context: UiContext, sso_error: str = "") -> None:
    ui.page_title("Sluice · Sign in")
    page_head()
    state = await gateway_state(context)
    if state.get("admin_setup"):
        ui.navigate.to("/setup")  # nobody could sign in yet: the first admin comes first
        return
    sso = await sso_state(context)
    with ui.card().classes("absolute-center w-96 max-w-[95vw]"):
        heading("Sign in to Sluice", 1, "text-xl font-semibold")
        if not sso.get("password_login", True):  # single sign-on only
            sso_buttons(sso, sso_error[:500])
            return
        email = ui.input("Email").props("autofocus type=email autocomplete=username").classes("w-full").mark("email")
        password = (
            ui.input("Password", password=True, password_toggle_button=True)
            .props("autocomplete=current-password")
            .classes("w-full")
            .mark("password")
        )
        workspace = ui.input("Workspace id (optional)").classes("w-full").mark("workspace")
        fields = {"email": email, "password": password, "workspace_id": workspace}

        async def submit() -> None:
            clear_errors(fields)
            if not email.value or not password.value:
                show_error(ApiError(400, "Enter your email and password.", field="email"), fields)
                return
            try:
                await sign_in(context, email.value, password.value, workspace.value or None)
            except ApiError as exc:
                if exc.code == "pending":
                    ui.navigate.to("/pending")
                    return
                show_error(exc, fields)
                return
            ui.navigate.to("/chat")

        password.on("keydown.enter", submit)
        ui.button("Sign in", on_click=submit).classes("w-full").props("id=sign-in")
        if state.get("registration", "closed") != "closed":  # closed: accounts come from admins only
            ui.link("Create an account", "/register")
        sso_buttons(sso, sso_error[:500])


async def register_page(context: UiContext) -> None:
    ui.page_title("Sluice · Create an account")
    page_head()
    state = await gateway_state(context)
    with ui.card().classes("absolute-center w-96 max-w-[95vw]"):
        heading("Create an account", 1, "text-xl font-semibold")
        if state.get("registration", "closed") == "closed":
            ui.label("This gateway does not take sign-ups: ask an administrator for an account.").mark("closed")
            ui.link("Back to sign-in", "/login")
            return
        if state.get("registration") == "invite":
            ui.label("You need the invitation token someone sent you.").classes("text-sm")
        else:
            ui.label("An administrator approves new accounts (or use an invitation token).").classes("text-sm")
        email = ui.input("Email").props("type=email autocomplete=username").classes("w-full")
        password = (
            ui.input("Password (8+ characters)", password=True, password_toggle_button=True)
            .props("autocomplete=new-password")
            .classes("w-full")
        )
        invite = ui.input("Invitation token (optional)").classes("w-full")
        fields = {"email": email, "password": password, "invite_token": invite}

        async def submit() -> None:
            clear_errors(fields)
            body = {"email": email.value, "password": password.value}
            if invite.value:
                body["invite_token"] = invite.value.strip()
            response = await context.http().post(f"{ADMIN}/auth/register", json=body)
            if response.status_code != 201:
                show_error(error_of(response), fields)
                return
            if response.json()["pending"]:
                ui.navigate.to("/pending")
            else:
                ui.notify("Account created: sign in now.", type="positive")
                ui.navigate.to("/login")

        ui.button("Create account", on_click=submit).classes("w-full").props("id=register")
        ui.link("I have an account", "/login")


def pending_page(_context: UiContext) -> None:
    ui.page_title("Sluice · Waiting for approval")
    page_head()
    with ui.card().classes("absolute-center w-96 max-w-[95vw]"):
        heading("Waiting for approval", 1, "text-xl font-semibold")
        ui.label("Your account exists but an administrator has to approve it before you can sign in.")
        ui.link("Back to sign-in", "/login")


def account_page(context: UiContext) -> None:
    client = require(context)
    if client is None:
        return
    ui.page_title("Sluice · Account")
    frame(context, "Account")
    with ui.card().classes("w-96"):
        ui.label("Change password").classes("font-semibold")
        current = ui.input("Current password", password=True).classes("w-full").mark("current-password")
        new = ui.input("New password (8+ characters)", password=True).classes("w-full").mark("new-password")
        fields = {"current_password": current, "new_password": new}

        async def change() -> None:
            body = {"current_password": current.value, "new_password": new.value}
            if await attempt(lambda: client.admin("POST", "/auth/password", json=body), fields) is None:
                return
            forget()
            ui.notify("Password changed: every session ends; sign in again.", type="positive")
            ui.navigate.to("/login")

        ui.button("Change password", on_click=change)


def reset_page(context: UiContext, token: str = "") -> None:
    """Set a new password with the single-use link an admin created."""
    ui.page_title("Sluice · Reset password")
    page_head()
    with ui.card().classes("absolute-center w-96 max-w-[95vw]"):
        heading("Choose a new password", 1, "text-xl font-semibold")
        new = (
            ui.input("New password (8+ characters)", password=True, password_toggle_button=True)
            .props("autocomplete=new-password")
            .classes("w-full")
        )
        fields = {"new_password": new}

        async def submit() -> None:
            clear_errors(fields)
            body = {"token": token, "new_password": new.value or ""}
            response = await context.http().post(f"{ADMIN}/auth/reset-password", json=body)
            if response.status_code != 204:
                show_error(error_of(response), fields)
                return
            ui.notify("Password set: sign in with it now.", type="positive")
            ui.navigate.to("/login")

        ui.button("Set password", on_click=submit).classes("w-full")


async def setup_page(context: UiContext) -> None:
    """The first run: create the first admin with the setup code ``sluice serve`` printed."""
    ui.page_title("Sluice · Set up")
    page_head()
    state = await gateway_state(context)
    with ui.card().classes("absolute-center w-[28rem] max-w-[95vw]"):
        heading("Set up Sluice", 1, "text-xl font-semibold")
        if not state.get("admin_setup"):
            ui.label("This gateway already has an administrator.").mark("setup-done")
            ui.link("Sign in", "/login")
            return
        ui.label(
            "Create the first administrator. The one-time setup code is in the output of `sluice serve` "
            "(its start-up banner, or the log line 'no admin yet')."
        ).classes("text-sm")
        code = ui.input("Setup code").props("autocomplete=off").classes("w-full").mark("setup-code")
        email = ui.input("Email").props("type=email autocomplete=username").classes("w-full").mark("setup-email")
        password = (
            ui.input("Password (8+ characters)", password=True, password_toggle_button=True)
            .props("autocomplete=new-password")
            .classes("w-full")
            .mark("setup-password")
        )
        fields = {"code": code, "email": email, "password": password}

        async def submit() -> None:
            clear_errors(fields)
            body = {"code": code.value or "", "email": email.value or "", "password": password.value or ""}
            response = await context.http().post(f"{ADMIN}/setup", json=body)
            if response.status_code != 201:
                error = error_of(response)
                if error.code == "bad_setup_code":
                    error.field = "code"
                show_error(error, fields)
                return
            try:
                await sign_in(context, body["email"], body["password"], None)
            except ApiError as exc:
                show_error(exc, fields)
                return
            ui.notify("You are the gateway's administrator.", type="positive")
            ui.navigate.to("/admin")

        ui.button("Create the administrator", on_click=submit).classes("w-full").props("id=setup")
