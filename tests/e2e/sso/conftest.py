"""A real OpenID Connect provider (tests/oidc) and a Sluice that trusts it, for the single sign-on tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.sso.idp import CLIENT_ID, CLIENT_SECRET, TestIdP
from tests.support.server import SluiceServer, make_settings

PROVIDER = "testidp"
PLAIN = "plain"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-Password-0001"

# Groups at the provider → access in Sluice.
MAPPINGS = [
    {"value": "llm-users", "workspace": "default", "role": "member"},
    {"value": "llm-leads", "workspace": "default", "role": "owner", "priority": "interactive"},
    {"value": "research", "workspace": "research", "role": "viewer", "priority": "batch"},
    {"value": "sluice-admins", "workspace": "default", "role": "admin"},
]


def sso_config(issuer: str, **provider: Any) -> dict[str, Any]:
    return {
        "jwks_min_refresh_seconds": 0,
        "providers": [
            {
                "name": PROVIDER,
                "display_name": "Test IdP",
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scopes": ["openid", "email", "profile", "groups"],
                "mappings": MAPPINGS,
                **provider,
            },
            # A second provider, down: its button shows, and starting a sign-in there fails cleanly.
            {"name": "down", "display_name": "Down IdP", "issuer": "http://127.0.0.1:9/down", "client_id": "x"},
            # The same provider used for authentication only: no mappings, no accounts made.
            {
                "name": PLAIN,
                "display_name": "Plain IdP",
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "jit": False,
            },
        ],
        "service_tokens": [
            {
                "name": "ci",
                "issuer": issuer,
                "audience": "sluice",
                "subject_claim": "client_id",
                "claim": "roles",
                "leeway_seconds": 0,
                "mappings": [
                    {"value": "sluice-batch", "workspace": "default", "role": "member", "priority": "batch"},
                    {"value": "research-bot", "workspace": "research", "role": "member"},
                ],
            }
        ],
    }


def callback_url(base: str, provider: str = PROVIDER) -> str:
    return f"{base}/admin/v1/auth/sso/{provider}/callback"


class SsoRig:
    """The provider, the gateway, and the admin's view of the gateway."""

    def __init__(self, idp: TestIdP, server: SluiceServer) -> None:
        self.idp = idp
        self.server = server
        self.url = server.url
        self.admin = httpx.Client(
            base_url=server.url + "/admin/v1", headers={"authorization": f"Bearer {server.master_key}"}, timeout=30
        )

    def browser_client(self) -> httpx.Client:
        """A fresh 'browser' (its own cookie jar) that does not follow redirects by itself."""
        return httpx.Client(timeout=30, follow_redirects=False)

    def sign_in(self, login: str, provider: str = PROVIDER) -> httpx.Response:
        """Sign in as ``login`` at the provider through Sluice's API flow: the callback's answer."""
        with self.browser_client() as client:
            start = f"{self.url}/admin/v1/auth/sso/{provider}/start"
            return client.get(self.idp.walk(client, start, login, stop_at=callback_url(self.url, provider)))

    def tokens(self, login: str) -> dict[str, Any]:
        return self.tokens_from(self.sign_in(login))

    @staticmethod
    def tokens_from(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def me(self, access_token: str) -> httpx.Response:
        return httpx.get(f"{self.url}/admin/v1/me", headers={"authorization": f"Bearer {access_token}"}, timeout=30)

    def memberships(self, user_id: str) -> dict[str, str]:
        """workspace name → role of a user (as the admin sees it)."""
        names = {w["id"]: w["name"] for w in self.admin.get("/workspaces").json()}
        found = {}
        for workspace_id, name in names.items():
            for member in self.admin.get(f"/workspaces/{workspace_id}/members").json():
                if member["user_id"] == user_id:
                    found[name] = member["role"]
        return found

    def user(self, email: str) -> dict[str, Any]:
        users = [u for u in self.admin.get("/users").json() if u["email"] == email]
        assert len(users) == 1, users
        return dict(users[0])


def start_rig(directory: Path, database_url: str | None = None) -> tuple[TestIdP, SluiceServer]:
    idp = TestIdP(directory / "idp", [], [])
    config: dict[str, Any] = {
        "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "sso": sso_config(idp.issuer),
    }
    if database_url is not None:
        config["database_url"] = database_url
    settings = make_settings(directory / "data", config)
    server = SluiceServer(settings)
    idp.redirect_uris = [callback_url(server.url), callback_url(server.url, PLAIN)]
    idp.logout_uris = [f"{server.url}/ui/login"]
    idp.start()
    try:
        server.start()
    except BaseException:
        idp.stop()
        raise
    return idp, server


@contextmanager
def running_rig(directory: Path, database_url: str | None = None) -> Iterator[SsoRig]:
    (directory / "idp").mkdir()
    idp, server = start_rig(directory, database_url)
    made = SsoRig(idp, server)
    try:
        assert made.admin.post("/workspaces", json={"name": "research"}).status_code == 201
        yield made
    finally:
        made.admin.close()
        server.stop()
        idp.stop()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoRig]:
    with running_rig(tmp_path_factory.mktemp("sso")) as made:
        yield made
