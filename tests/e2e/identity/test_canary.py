"""The canary: a known password and a known key used throughout a run never show up where they must not.

A real `sluice serve` process runs with debug logging, the access log and prompt logging on; the canary password
and key go through registration, login, key creation, proxied calls on every surface, failures and revocation.
Afterwards neither they nor their hashes appear in the process log, any response except the one-time key
display, the audit rows, the database's other tables, or the metrics.

Prompts are the other thing logs must not hold: by default a known prompt sent on every surface never appears in
a debug-level log; with ``observability.log_prompts`` it appears, and only in debug lines.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from sluice.admin.api import PREFIX
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

CANARY_PASSWORD = "canary-Pa55word-7f3a9c"
CANARY_PROMPT = "canary-prompt-5d2e8b: what the operator must never read"


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
    responses: list[str] = []
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:

            def call(method: str, path: str, token: str | None = None, **kw: object) -> httpx.Response:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                response = client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
                responses.append(response.text + str(response.headers))
                return response

            admin = call("POST", f"{PREFIX}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            admin_token = admin.json()["access_token"]
            user = call("POST", f"{PREFIX}/auth/register", json={"email": "c@example.com", "password": CANARY_PASSWORD})
            call("POST", f"{PREFIX}/users/{user.json()['user']['id']}/approve", admin_token)
            call("POST", f"{PREFIX}/auth/login", json={"email": "c@example.com", "password": "wrong" + CANARY_PASSWORD})
            login = call("POST", f"{PREFIX}/auth/login", json={"email": "c@example.com", "password": CANARY_PASSWORD})
            access = login.json()["access_token"]
            created = client.post(f"{PREFIX}/keys", headers={"authorization": f"Bearer {access}"}, json={"name": "c"})
            canary_key = created.json()["key"]  # the one response allowed to carry it
            chat = {"model": "mock-1", "messages": [{"role": "user", "content": "hello"}]}
            call("POST", "/v1/chat/completions", canary_key, json=chat)
            call("POST", "/v1/chat/completions", canary_key, json={**chat, "stream": True})
            call("POST", "/v1/chat/completions", canary_key, json={"model": "nope", "messages": []})
            call(
                "POST",
                "/v1/messages",
                canary_key,
                json={"model": "mock-1", "max_tokens": 5, "messages": chat["messages"]},
            )
            call("POST", "/api/chat", canary_key, json={**chat, "stream": False})
            call("GET", f"{PREFIX}/me", canary_key)
            call("GET", f"{PREFIX}/keys", access)
            call(
                "POST",
                f"{PREFIX}/auth/password",
                access,
                json={"current_password": CANARY_PASSWORD, "new_password": CANARY_PASSWORD + "-2"},
            )
            call("DELETE", f"{PREFIX}/keys/{created.json()['id']}", admin_token)
            call("POST", "/v1/chat/completions", canary_key, json=chat)
            metrics = call("GET", "/metrics").text
            audit = call("GET", f"{PREFIX}/audit", MASTER_KEY).text
    finally:
        process.stop()

    secrets = {
        "password": CANARY_PASSWORD,
        "key": canary_key,
        "key hash": hashlib.sha256(canary_key.encode()).hexdigest(),
        "key body": canary_key.removeprefix("sk-sl-")[8:],
    }
    database = sqlite3.connect(tmp_path / "data" / "sluice.db")
    tables = [r[0] for r in database.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    dumps = {
        table: repr(database.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables if table != "api_keys"
    }
    password_hash = database.execute("SELECT password_hash FROM users WHERE email='c@example.com'").fetchone()[0]
    database.close()
    secrets["password hash"] = password_hash.split("$")[-1]
    places = {"log": process.log(), "metrics": metrics, "audit": audit, "responses": "\n".join(responses)}
    places.update({f"table {t}": d for t, d in dumps.items() if t != "users"})
    assert "request" in places["log"] and "c@example.com" in places["audit"]  # the places were really filled
    for place, text in places.items():
        for name, secret in secrets.items():
            assert secret not in text, f"the canary {name} appears in {place}"


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
