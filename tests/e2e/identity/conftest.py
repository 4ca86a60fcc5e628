"""A running Sluice with a first admin, and helpers to drive the identity flows over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import SluiceServer, make_settings

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-Password-0001"
JWT_SECRET = "test-jwt-secret-" + "x" * 40


def identity_settings(tmp_path: Path, **config: Any) -> Any:
    base: dict[str, Any] = {
        "auth": {
            "jwt_secret": JWT_SECRET,
            "admin_email": ADMIN_EMAIL,
            "admin_password": ADMIN_PASSWORD,
            "registration": "approval",
            **config.pop("auth", {}),
        },
        **config,
    }
    return make_settings(tmp_path / "data", base)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SluiceServer]:
    with SluiceServer(identity_settings(tmp_path)) as running:
        yield running


class Api:
    """A tiny admin-API client: ``api.post(path, token, json)`` → response."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base + "/admin/v1", timeout=30)

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.call("POST", path, token, **kw)

    def login(self, email: str, password: str, **extra: Any) -> dict[str, Any]:
        response = self.post("/auth/login", json={"email": email, "password": password, **extra})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def api(server: SluiceServer) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def make_user(api: Api, admin_token: str, email: str, workspace_id: str = "default", role: str = "member") -> str:
    """Invite, register and log in a user with ``role`` in ``workspace_id``; returns their access token."""
    invite = api.post("/invites", admin_token, json={"workspace_id": workspace_id, "role": role})
    assert invite.status_code == 201, invite.text
    password = f"pw-{email}-123"
    registered = api.post(
        "/auth/register", json={"email": email, "password": password, "invite_token": invite.json()["token"]}
    )
    assert registered.status_code == 201, registered.text
    token: str = api.login(email, password, workspace_id=workspace_id)["access_token"]
    return token
