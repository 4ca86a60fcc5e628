"""The first admin from ``SLUICE_ADMIN_EMAIL`` / ``SLUICE_ADMIN_PASSWORD`` on a real process start: created once,
and neither re-created nor reset by later starts with the same (or other) variables."""

from __future__ import annotations

from pathlib import Path

import httpx

from sluice.admin.api import PREFIX
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

FIRST = {"SLUICE_ADMIN_EMAIL": "Boot@Example.com", "SLUICE_ADMIN_PASSWORD": "boot-password-1"}


def login(process: SluiceProcess, email: str, password: str) -> httpx.Response:
    body = {"email": email, "password": password}
    return httpx.post(f"{process.url}{PREFIX}/auth/login", json=body, timeout=30)


def admin_get(process: SluiceProcess, path: str, **params: str) -> list[dict[str, object]]:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    response = httpx.get(f"{process.url}{PREFIX}{path}", headers=headers, params=params, timeout=30)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()
    return rows


def test_first_admin_comes_from_the_environment_once(tmp_path: Path) -> None:
    config = {"data_dir": str(tmp_path / "data")}
    first = SluiceProcess(tmp_path, config, env=FIRST).start()
    try:
        session = login(first, "boot@example.com", "boot-password-1")
        assert session.status_code == 200, session.text
        token = session.json()["access_token"]
        me = httpx.get(f"{first.url}{PREFIX}/me", headers={"authorization": f"Bearer {token}"}, timeout=30).json()
        assert me["role"] == "admin" and me["kind"] == "user"
        changed = httpx.post(
            f"{first.url}{PREFIX}/auth/password",
            headers={"authorization": f"Bearer {token}"},
            json={"current_password": "boot-password-1", "new_password": "changed-password-1"},
            timeout=30,
        )
        assert changed.status_code == 204
    finally:
        first.stop()

    again = SluiceProcess(tmp_path, config, name="again", env=FIRST).start()
    try:
        assert login(again, "boot@example.com", "boot-password-1").status_code == 401  # not reset to the variable
        assert login(again, "boot@example.com", "changed-password-1").status_code == 200
    finally:
        again.stop()

    other = {"SLUICE_ADMIN_EMAIL": "second@example.com", "SLUICE_ADMIN_PASSWORD": "second-password-1"}
    third = SluiceProcess(tmp_path, config, name="third", env=other).start()
    try:
        assert login(third, "second@example.com", "second-password-1").status_code == 401  # an admin exists
        users = admin_get(third, "/users")
        assert [(u["email"], u["is_admin"]) for u in users] == [("boot@example.com", True)]
        created = admin_get(third, "/audit", action="user.create_admin")
        assert [(e["actor"], e["target_id"]) for e in created] == [("bootstrap", users[0]["id"])]
    finally:
        third.stop()
