"""NiceGUI's simulated user (nicegui.testing) driving the UI's real pages against a real Sluice on loopback.

The pages call the gateway's HTTP API exactly as in production; only the browser is simulated: NiceGUI builds each
page in this process and the test reads and clicks its elements directly, without Chromium.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import app, ui
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from sluice.config import sqlite_url
from sluice.store.db import Database
from sluice.web.context import UiContext
from sluice.web.pages import register_pages
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-Password-0001"
PRICE = {"input": 2.0, "output": 4.0}  # per million tokens: every answer has a cost
CODE_REPLY = "Two ways:\n```python\nprint('one')\n```\nor\n```sh\necho two\n```\ndone."


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    data = tmp_path_factory.mktemp("sim")
    settings = make_settings(
        data,
        {
            "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD, "registration": "invite"},
            "providers": [
                {"name": "coder", "kind": "mock", "mock": {"reply": CODE_REPLY}},
                {"name": "plain", "kind": "mock"},
            ],
            "models": [
                {"name": "code-1", "price": PRICE, "deployments": [{"provider": "coder"}]},
                {"name": "plain-1", "price": PRICE, "deployments": [{"provider": "plain"}]},
            ],
            "builtin_mock": False,
        },
    )
    with SluiceServer(settings) as server:
        yield server


class Admin:
    """The gateway's admin API with the master key, for arranging a scene and checking its outcome."""

    def __init__(self, server: SluiceServer) -> None:
        self.http = httpx.Client(
            base_url=server.url + "/admin/v1", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30
        )

    def __call__(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def person(self, email: str, password: str, workspace_id: str = "default", role: str = "member") -> str:
        """Invite and register someone with ``role`` in ``workspace_id``; their user id."""
        invite = self("POST", "/invites", 201, json={"workspace_id": workspace_id, "role": role})
        body = {"email": email, "password": password, "invite_token": invite["token"]}
        registered = self.http.post("/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        return str(registered.json()["user"]["id"])


@pytest.fixture(scope="module")
def admin_api(gateway: SluiceServer) -> Iterator[Admin]:
    api = Admin(gateway)
    yield api
    api.http.close()


@pytest.fixture
async def user(gateway: SluiceServer, tmp_path: Path) -> AsyncIterator[User]:
    """A simulated browser on the UI, whose pages talk to ``gateway`` over loopback HTTP."""
    # The chat history lives in the gateway's database; this loop gets its own engine on the same file.
    db = Database(gateway.settings.database_url or sqlite_url(gateway.settings.data_dir))
    # The pages read the trusted-proxies rule (pure) from the gateway's authenticator to vouch for the browser.
    authenticator = gateway.services.gateway.authenticator
    context = UiContext(
        gateway.url, db, lambda: authenticator.proxies, gateway.settings.server.request_id_header, "USD"
    )
    Storage.path = tmp_path / "ui-storage"  # the user storage of this test only (the sessions' tokens)
    app.storage = Storage()
    # On leaving, NiceGUI's simulation drops the page functions' modules (and their parent packages) from
    # sys.modules, as suits an app started from a main file; put them back so every test sees the same modules.
    modules = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "sluice"}
    try:
        async with user_simulation() as simulated:
            register_pages(context)
            yield simulated
    finally:
        sys.modules.update(modules)
        await context.close()
        await db.close()


async def sign_in(user: User, email: str, password: str) -> None:
    await user.open("/login")
    user.find(marker="email").type(email)
    user.find(marker="password").type(password)
    press(user, "Sign in")
    await eventually(lambda: current_path(user) == "/chat", "the chat page after signing in")


def press(user: User, text: str) -> None:
    """Click the button labelled ``text`` (the first one on the page, as a person would find it)."""
    user.find(kind=ui.button, content=text).click()


def current_path(user: User) -> str:
    return user.back_history[-1].split("?")[0] if user.back_history else ""


async def eventually(predicate: Callable[[], Any], what: str, seconds: float = 15.0) -> Any:
    """Wait (bounded) until ``predicate`` holds: the pages work in background tasks on this same loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            value = predicate()
        except AssertionError:  # user.find() found nothing yet
            value = None
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
