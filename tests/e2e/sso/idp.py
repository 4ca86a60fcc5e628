"""The test identity provider: panva/oidc-provider (tests/oidc) on Node.js, started on a free loopback port.

The test owns its signing keys (so it can also mint tokens the provider never would: expired, for another
audience, tampered) and its accounts file (so it can change someone's groups between sign-ins). ``restart`` with
new keys is a key rotation. ``sign_in`` walks the authorization code flow as a browser would, over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.server import free_port

OIDC_DIR = Path(__file__).resolve().parents[2] / "oidc"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
NPM_TIMEOUT = 300.0

CLIENT_ID, CLIENT_SECRET = "sluice", "sluice-client-secret-0123456789"
SERVICE_CLIENT, SERVICE_SECRET = "ci-bot", "ci-bot-secret-0123456789"
STRANGER_CLIENT, STRANGER_SECRET = "stranger-bot", "stranger-bot-secret-0123456789"


def node_or_skip() -> str:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
            raise RuntimeError("Node.js and npm are required for the single sign-on tests (apt-get install nodejs npm)")
        pytest.skip("Node.js / npm not installed (apt-get install nodejs npm)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").exists():
        # The pinned package-lock.json, installed once (CI runs `npm ci` itself before the tests).
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=OIDC_DIR, check=True, timeout=NPM_TIMEOUT
        )
    return node


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


class TestIdP:
    __test__ = False  # not a test class

    def __init__(self, directory: Path, redirect_uris: list[str], logout_uris: list[str]) -> None:
        self.node = node_or_skip()
        self.directory = directory
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys = [new_key("key-1")]
        self.accounts_file = directory / "accounts.json"
        self.settings_file = directory / "idp.json"
        self.log_path = directory / "idp.log"
        self.redirect_uris = redirect_uris
        self.logout_uris = logout_uris
        self.service_roles: dict[str, list[str]] = {SERVICE_CLIENT: ["sluice-batch"], STRANGER_CLIENT: ["unmapped"]}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.save_accounts()

    # --- what the provider knows ------------------------------------------------------------------------------

    def set_account(self, login: str, groups: list[str], email: str | None = None, verified: bool = True) -> None:
        self.accounts[login] = {
            "email": email or f"{login}@example.com",
            "email_verified": verified,
            "name": login.title(),
            "groups": groups,
        }
        self.save_accounts()

    def save_accounts(self) -> None:
        self.accounts_file.write_text(json.dumps(self.accounts), encoding="utf-8")

    def _settings(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "issuer": self.issuer,
            "keys": [k.as_dict(private=True) for k in self.keys],
            "cookie_key": "test-idp-cookie-key-0123456789",
            "accounts_file": str(self.accounts_file),
            "service_roles": self.service_roles,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": self.redirect_uris,
                    "post_logout_redirect_uris": self.logout_uris,
                    "response_types": ["code"],
                    "grant_types": ["authorization_code"],
                    "token_endpoint_auth_method": "client_secret_basic",
                },
                *(
                    {
                        "client_id": client,
                        "client_secret": secret,
                        "redirect_uris": [],
                        "response_types": [],
                        "grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "client_secret_basic",
                    }
                    for client, secret in ((SERVICE_CLIENT, SERVICE_SECRET), (STRANGER_CLIENT, STRANGER_SECRET))
                ),
            ],
        }

    # --- the process ------------------------------------------------------------------------------------------

    def start(self) -> TestIdP:
        self.settings_file.write_text(json.dumps(self._settings()), encoding="utf-8")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.node, str(OIDC_DIR / "provider.mjs"), str(self.settings_file)],
            cwd=OIDC_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the test IdP exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the test IdP did not start within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        self.proc = None

    def rotate_keys(self) -> RSAKey:
        """Restart with a new signing key (the old one retired), as a provider rotating its keys does."""
        self.stop()
        self.keys = [new_key(f"key-{len(self.keys) + 1}-{int(time.time())}")]
        return self.start().keys[0]

    # --- tokens -----------------------------------------------------------------------------------------------

    def service_token(self, client: str = SERVICE_CLIENT, secret: str = SERVICE_SECRET) -> str:
        """A real client-credentials access token (a JWT for the audience 'sluice')."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": "llm", "resource": "urn:sluice"},
            auth=(client, secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def mint(self, key: RSAKey | None = None, alg: str = "RS256", **claims: Any) -> str:
        """A token signed with the provider's own key (or ``key``) saying whatever the test needs."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": "sluice",
            "sub": SERVICE_CLIENT,
            "client_id": SERVICE_CLIENT,
            "roles": ["sluice-batch"],
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        key = key or self.keys[0]
        header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
        return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, key)

    # --- the sign-in, as a browser walks it -------------------------------------------------------------------

    def walk(self, client: httpx.Client, url: str, login: str, stop_at: str) -> str:
        """Open ``url`` (a start or authorize URL), sign in at the provider as ``login`` when asked, and follow the
        redirects until one leads to a URL starting with ``stop_at``; that URL (not opened)."""
        response = client.get(url)
        signed_in = False
        for _ in range(20):
            if response.status_code in (302, 303):
                location = str(response.url.join(response.headers["location"]))
                if location.startswith(stop_at):
                    return location
                response = client.get(location)
                continue
            form = re.search(r'action="(/interaction/[^"]+)"', response.text)
            if form is None or signed_in:
                raise AssertionError(f"the provider answered {response.status_code}: {response.text[:500]}")
            response = client.post(self.issuer + form.group(1), data={"login": login})
            signed_in = True
        raise AssertionError("too many redirects")
