"""Sign-in, sign-up (as the registration mode allows), waiting for approval, and the account page."""

from __future__ import annotations

from nicegui import ui

from sluice.web.client import ADMIN, ApiError, error_of
from sluice.web.layout import attempt, clear_errors, frame, show_error
from sluice.web.session import context, forget, gateway, require, sign_in


def index() -> None:
    ui.navigate.to("/chat" if gateway() is not None else "/login")


def login_page() -> None:
    ui.page_title("Sluice · Sign in")
    with ui.card().classes("absolute-center w-96"):
        ui.label("Sign in to Sluice").classes("text-xl font-semibold")
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
                await sign_in(email.value, password.value, workspace.value or None)
            except ApiError as exc:
                if exc.code == "pending":
                    ui.navigate.to("/pending")
                    return
                show_error(exc, fields)
                return
            ui.navigate.to("/chat")

        password.on("keydown.enter", submit)
        ui.button("Sign in", on_click=submit).classes("w-full").props("id=sign-in")
        ui.link("Create an account", "/register")


def register_page() -> None:
    ui.page_title("Sluice · Create an account")
    with ui.card().classes("absolute-center w-96"):
        ui.label("Create an account").classes("text-xl font-semibold")
        ui.label("With an invitation token, or ask for access if this gateway takes requests.").classes("text-sm")
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
            response = await context().client_http().post(f"{ADMIN}/auth/register", json=body)
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


def pending_page() -> None:
    ui.page_title("Sluice · Waiting for approval")
    with ui.card().classes("absolute-center w-96"):
        ui.label("Waiting for approval").classes("text-xl font-semibold")
        ui.label("Your account exists but an administrator has to approve it before you can sign in.")
        ui.link("Back to sign-in", "/login")


def account_page() -> None:
    client = require()
    if client is None:
        return
    ui.page_title("Sluice · Account")
    frame("Account")
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


def reset_page(token: str = "") -> None:
    """Set a new password with the single-use link an admin created."""
    ui.page_title("Sluice · Reset password")
    with ui.card().classes("absolute-center w-96"):
        ui.label("Choose a new password").classes("text-xl font-semibold")
        new = (
            ui.input("New password (8+ characters)", password=True, password_toggle_button=True)
            .props("autocomplete=new-password")
            .classes("w-full")
        )
        fields = {"new_password": new}

        async def submit() -> None:
            clear_errors(fields)
            body = {"token": token, "new_password": new.value or ""}
            response = await context().client_http().post(f"{ADMIN}/auth/reset-password", json=body)
            if response.status_code != 204:
                show_error(error_of(response), fields)
                return
            ui.notify("Password set: sign in with it now.", type="positive")
            ui.navigate.to("/login")

        ui.button("Set password", on_click=submit).classes("w-full")
