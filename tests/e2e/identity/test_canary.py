"""The canary: known secrets used throughout a run never show up where they must not.

A real `sluice serve` process runs with debug logging, the access log and prompt logging on. A user's passwords
(three over the run: registered, changed, reset), an API key, every JWT access and refresh token issued, an
invitation token and a password-reset token go through registration, login, refresh (and a replay), key creation,
proxied calls on every surface, failures, revocation, a reset and logout. Every password hash the database ever
held for that user is captured as it is written.

Afterwards none of them appears in the process log, the metrics, the audit rows, any response except the one
that hands that secret out (the login's tokens, the key's and the invitation's and the reset link's one-time
display), or any table — except a secret's own hash in the one table that verifies it (the key's, the
invitation's, the reset token's, the current password's).

Prompts are the other thing logs must not hold: by default a known prompt sent on every surface never appears in
a debug-level log; with ``observability.log_prompts`` it appears, and only in debug lines.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.admin.api import PREFIX
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

CANARY_PROMPT = "canary-prompt-5d2e8b: what the operator must never read"
PASSWORDS = ["canary-Pa55word-7f3a9c", "canary-Pa55word-7f3a9c-2", "canary-Pa55word-7f3a9c-3"]
CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hello"}]}


@dataclass
class Secret:
    value: str
    table: str | None = None  # the one table allowed to hold it (a hash in its verifying table)


@dataclass
class Run:
    client: httpx.Client
    database: Path
    responses: list[tuple[str, set[str]]] = field(default_factory=list)  # (text, secrets it may show)
    secrets: dict[str, Secret] = field(default_factory=dict)

    def call(
        self, method: str, path: str, token: str | None = None, shows: frozenset[str] = frozenset(), **kw: Any
    ) -> httpx.Response:
        """Make a request and record its answer, with the names of the secrets it hands out (if any)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = self.client.request(method, path, headers=headers, **kw)
        self.responses.append((response.text + str(response.headers), set(shows)))
        return response

    def keep(self, name: str, value: str, table: str | None = None) -> str:
        self.secrets[name] = Secret(value, table)
        return value

    def tokens(self, name: str, response: httpx.Response) -> tuple[str, str]:
        """Take the access and refresh token out of a login/refresh answer (the one answer that may show them)."""
        assert response.status_code == 200, response.text
        body = response.json()
        for kind in ("access", "refresh"):
            token = body[f"{kind}_token"]
            for secret, value in ((f"{name} {kind} token", token), (f"{name} {kind} signature", token.rsplit(".")[2])):
                self.keep(secret, value)
                self.responses[-1][1].add(secret)
        return body["access_token"], body["refresh_token"]

    def password_hash(self, version: int) -> None:
        """The user's stored hash now; only the latest may stay, and only in the users table."""
        with sqlite3.connect(self.database) as db:
            (encoded,) = db.execute("SELECT password_hash FROM users WHERE email='c@example.com'").fetchone()
        for name, secret in self.secrets.items():
            if name.startswith("password hash"):
                secret.table = None  # superseded: nowhere at all
        self.keep(f"password hash v{version}", encoded.split("$")[-1], "users")
        self.keep(f"password salt v{version}", encoded.split("$")[-2], "users")


def exercise(run: Run) -> tuple[str, str]:
    """Everything a user, an admin and a client do with the secrets; returns (metrics, audit)."""
    admin, _ = run.tokens(
        "admin", run.call("POST", f"{PREFIX}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    )
    invite = run.call("POST", f"{PREFIX}/invites", admin, shows=frozenset({"invite"}), json={"role": "member"}).json()[
        "token"
    ]
    run.keep("invite", invite)
    run.keep("invite hash", hashlib.sha256(invite.encode()).hexdigest(), "registration_tokens")
    for i, password in enumerate(PASSWORDS):
        run.keep(f"password v{i + 1}", password)

    user = run.call("POST", f"{PREFIX}/auth/register", json={"email": "c@example.com", "password": PASSWORDS[0]})
    run.password_hash(1)
    run.call("POST", f"{PREFIX}/users/{user.json()['user']['id']}/approve", admin)
    run.call("POST", f"{PREFIX}/auth/login", json={"email": "c@example.com", "password": "wrong" + PASSWORDS[0]})
    login = {"email": "c@example.com", "password": PASSWORDS[0]}
    access, refresh = run.tokens("first", run.call("POST", f"{PREFIX}/auth/login", json=login))

    created = run.call(
        "POST", f"{PREFIX}/keys", access, shows=frozenset({"key", "key body"}), json={"name": "c"}
    ).json()
    key = run.keep("key", created["key"])
    run.keep("key hash", hashlib.sha256(key.encode()).hexdigest(), "api_keys")
    run.keep("key body", key.removeprefix("sk-sl-")[8:])
    run.call("POST", "/v1/chat/completions", key, json=CHAT)
    run.call("POST", "/v1/chat/completions", key, json={**CHAT, "stream": True})
    run.call("POST", "/v1/chat/completions", access, json=CHAT)  # with the JWT
    run.call("POST", "/v1/chat/completions", key, json={"model": "nope", "messages": []})
    run.call("POST", "/v1/messages", key, json={"model": "mock-1", "max_tokens": 5, "messages": CHAT["messages"]})
    run.call("POST", "/api/chat", key, json={**CHAT, "stream": False})
    run.call("GET", f"{PREFIX}/me", key)
    run.call("GET", f"{PREFIX}/keys", access)

    rotated, newer_refresh = run.tokens(
        "rotated", run.call("POST", f"{PREFIX}/auth/refresh", json={"refresh_token": refresh})
    )
    run.call("POST", f"{PREFIX}/auth/refresh", json={"refresh_token": refresh})  # a replay: ends the session
    run.call("POST", f"{PREFIX}/auth/refresh", json={"refresh_token": newer_refresh})
    access, _ = run.tokens("second", run.call("POST", f"{PREFIX}/auth/login", json=login))
    change = {"current_password": PASSWORDS[0], "new_password": PASSWORDS[1]}
    run.call("POST", f"{PREFIX}/auth/password", access, json=change)
    run.password_hash(2)
    run.call("GET", f"{PREFIX}/me", rotated)  # a token of an ended session

    reset = run.call(
        "POST", f"{PREFIX}/users/{user.json()['user']['id']}/password-reset", admin, shows=frozenset({"reset"})
    )
    token = run.keep("reset", reset.json()["token"])
    run.keep("reset hash", hashlib.sha256(token.encode()).hexdigest(), "password_resets")
    run.call("POST", f"{PREFIX}/auth/reset-password", json={"token": token, "new_password": PASSWORDS[2]})
    run.call("POST", f"{PREFIX}/auth/reset-password", json={"token": token, "new_password": PASSWORDS[2]})
    run.password_hash(3)
    third = {"email": "c@example.com", "password": PASSWORDS[2]}
    access, _ = run.tokens("third", run.call("POST", f"{PREFIX}/auth/login", json=third))

    invited = {"email": "d@example.com", "password": "d-password-1", "invite_token": invite}
    run.call("POST", f"{PREFIX}/auth/register", json=invited)
    run.call("POST", f"{PREFIX}/auth/register", json={**invited, "email": "e@example.com"})  # used up
    run.call("DELETE", f"{PREFIX}/keys/{created['id']}", admin)
    run.call("POST", "/v1/chat/completions", key, json=CHAT)  # a revoked key
    run.call("POST", f"{PREFIX}/auth/logout", access)
    run.call("GET", f"{PREFIX}/me", access)
    metrics = run.call("GET", "/metrics").text
    audit = run.call("GET", f"{PREFIX}/audit", MASTER_KEY, params={"limit": 1000}).text
    return metrics, audit


def test_canary_secrets_never_leak(tmp_path: Path) -> None:
    config = {
        "data_dir": str(tmp_path / "data"),
        "logging": {"level": "debug", "access_log": True, "format": "json"},
        "observability": {"log_prompts": True},
        "auth": {
            "jwt_secret": JWT_SECRET,
            "admin_email": ADMIN_EMAIL,
            "admin_password": ADMIN_PASSWORD,
            "registration": "approval",
        },
    }
    process = SluiceProcess(tmp_path, config).start()
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:
            run = Run(client, tmp_path / "data" / "sluice.db")
            metrics, audit = exercise(run)
    finally:
        process.stop()

    database = sqlite3.connect(tmp_path / "data" / "sluice.db")
    tables = [r[0] for r in database.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    dumps = {table: repr(database.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables}
    database.close()

    places = {"log": process.log(), "metrics": metrics, "audit": audit}
    assert "request" in places["log"] and "c@example.com" in audit and "user.password_reset" in audit
    assert len([n for n in run.secrets if n.endswith("access token")]) == 5  # every token issued is a canary
    for name, secret in run.secrets.items():
        for place, text in places.items():
            assert secret.value not in text, f"the canary {name} appears in the {place}"
        for table, text in dumps.items():
            if table != secret.table:
                assert secret.value not in text, f"the canary {name} appears in table {table}"
        for text, shows in run.responses:
            if name not in shows:
                assert secret.value not in text, f"the canary {name} appears in a response: {text[:200]}"
    latest = run.secrets["password hash v3"]
    assert latest.value in dumps["users"]  # the check above really looked at the stored hashes


@pytest.mark.parametrize("log_prompts", [False, True], ids=["default", "opted-in"])
def test_prompts_reach_the_log_only_by_the_opt_in_and_only_at_debug(tmp_path: Path, log_prompts: bool) -> None:
    config = {
        "data_dir": str(tmp_path / "data"),
        "logging": {"level": "debug", "access_log": True, "format": "json"},
        "observability": {"log_prompts": log_prompts},
    }
    process = SluiceProcess(tmp_path, config).start()
    try:
        with httpx.Client(base_url=process.url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http:
            messages = [{"role": "user", "content": CANARY_PROMPT}]
            chat = {"model": "mock-1", "messages": messages}
            answers = [
                http.post("/v1/chat/completions", json=chat),
                http.post("/v1/chat/completions", json={**chat, "stream": True}),
                http.post("/v1/messages", json={**chat, "max_tokens": 20}),
                http.post("/api/chat", json={**chat, "stream": False}),
                http.post("/v1/chat/completions", json={**chat, "model": "no-such-model"}),
            ]
    finally:
        process.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404]
    log = process.log()
    assert log.count('"event":"request"') == len(answers)  # the access lines were written, without the prompt
    carrying = [json.loads(line) for line in log.splitlines() if CANARY_PROMPT in line]
    if not log_prompts:
        assert carrying == []
        return
    assert len(carrying) == len(answers)  # one request body per request, nothing else
    assert {(line["level"], line["event"]) for line in carrying} == {("debug", "request body")}
