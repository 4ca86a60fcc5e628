"""First run without the CLI: ``sluice serve`` prints the web UI's address and, while no admin exists, a one-time
setup code; ``POST /admin/v1/setup`` with that code creates the first admin exactly once (concurrent attempts
included); a browser asking for ``/`` is sent to the UI while Ollama clients still read "Ollama is running"."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sluice.admin.api import PREFIX
from sluice.identity.first_run import setup_code
from sluice.store.models import AuditEvent, User
from tests.support.processes import SluiceProcess
from tests.support.server import JWT_SECRET, SluiceServer, make_settings

CODE = re.compile(r"setup code ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})")


def setup(url: str, code: str, email: str, password: str = "first-Admin-01") -> httpx.Response:
    body = {"code": code, "email": email, "password": password}
    return httpx.post(f"{url}{PREFIX}/setup", json=body, timeout=30)


def test_the_banner_prints_the_ui_address_and_the_setup_code_until_an_admin_exists(tmp_path: Path) -> None:
    config = {"data_dir": str(tmp_path / "data"), "ui": True, "logging": {"level": "info", "format": "console"}}
    first = SluiceProcess(tmp_path, config).start()
    try:
        banner = first.log_path.read_text(encoding="utf-8")
        assert f"Web UI: {first.url}/ui" in banner
        found = CODE.search(banner)
        assert found is not None, banner
        code = found.group(1)
        assert code == setup_code(JWT_SECRET)  # every replica sharing the secret prints (and takes) this one
        state = httpx.get(f"{first.url}{PREFIX}/setup", timeout=30).json()
        assert state == {"registration": "closed", "admin_setup": True}  # the default mode
        assert setup(first.url, "AAAA-BBBB-CCCC-DDDD", "eve@example.com").status_code == 403
        made = setup(first.url, code.lower().replace("-", " "), "Root@Example.com")  # typed loosely: still the code
        assert made.status_code == 201, made.text
        assert made.json()["is_admin"] is True and made.json()["email"] == "root@example.com"
        login = {"email": "root@example.com", "password": "first-Admin-01"}
        assert httpx.post(f"{first.url}{PREFIX}/auth/login", json=login, timeout=30).status_code == 200
        again = setup(first.url, code, "second@example.com")
        assert again.status_code == 403 and again.json()["error"]["code"] == "setup_done"
        assert httpx.get(f"{first.url}{PREFIX}/setup", timeout=30).json()["admin_setup"] is False
    finally:
        first.stop()
    second = SluiceProcess(tmp_path, config, name="again").start()
    try:
        assert "setup code" not in second.log_path.read_text(encoding="utf-8")  # an admin exists: no code
    finally:
        second.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> SluiceServer:
    settings = make_settings(tmp_path / "data", {"auth": {"registration": "approval"}})
    return SluiceServer(settings)


def test_concurrent_setups_make_exactly_one_admin_and_the_setup_is_audited(fresh: SluiceServer) -> None:
    with fresh as server:
        code = setup_code(server.services.accounts.codec.secret)
        assert httpx.get(f"{server.url}{PREFIX}/setup", timeout=30).json() == {
            "registration": "approval",
            "admin_setup": True,
        }
        answers: list[int] = []

        def attempt(n: int) -> None:
            answers.append(setup(server.url, code, f"racer{n}@example.com").status_code)

        racers = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
        assert sorted(answers) == [201, 403, 403, 403, 403, 403]

        async def admins_and_events() -> tuple[list[str], list[str]]:
            async with server.services.db.session() as session:
                admins = (await session.execute(select(User.email).where(User.is_admin.is_(True)))).scalars()
                events = (
                    await session.execute(select(AuditEvent.actor).where(AuditEvent.action == "user.create_admin"))
                ).scalars()
                return list(admins), list(events)

        admins, events = server.call(admins_and_events())
        assert len(admins) == 1 and events == ["setup"]
        assert setup(server.url, code, "bad-password@example.com", "short").status_code == 403  # closed for good


def test_weak_password_and_missing_fields_are_refused_while_setup_is_open(fresh: SluiceServer) -> None:
    with fresh as server:
        code = setup_code(server.services.accounts.codec.secret)
        weak = setup(server.url, code, "weak@example.com", "short")
        assert weak.status_code == 400 and weak.json()["error"]["param"] == "password"
        assert setup(server.url, code, "not-an-email").status_code in (400, 422)
        assert httpx.post(f"{server.url}{PREFIX}/setup", json={"code": code}, timeout=30).status_code == 422
        assert httpx.get(f"{server.url}{PREFIX}/setup", timeout=30).json()["admin_setup"] is True


def test_a_browser_asking_for_the_root_goes_to_the_ui_and_ollama_clients_do_not(tmp_path: Path) -> None:
    html = {"accept": "text/html,application/xhtml+xml"}
    # (the in-process server has no UI: NiceGUI is one per process, so a real `sluice serve` serves it)
    with SluiceServer(make_settings(tmp_path / "quiet")) as server:
        assert httpx.get(f"{server.url}/", headers=html, timeout=30).text == "Ollama is running"  # no UI to go to
    process = SluiceProcess(tmp_path, {"data_dir": str(tmp_path / "data"), "ui": True}).start()
    try:
        browser = httpx.get(f"{process.url}/", headers=html, timeout=30)
        assert browser.status_code == 307 and browser.headers["location"] == "/ui/"
        assert httpx.get(f"{process.url}/", timeout=30).text == "Ollama is running"  # what Ollama's clients read
        assert httpx.head(f"{process.url}/", headers={"accept": "text/html"}, timeout=30).status_code == 200
    finally:
        process.stop()
