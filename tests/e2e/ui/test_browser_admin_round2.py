"""The admin panel speaking in names, in a real headless Chromium against a real `sluice serve`: the first run
without the CLI (the setup code from the start-up banner; `/` leading a browser to the UI; no sign-up form in
closed mode), admins creating users with a one-time set-password link, the pending sign-ups badge, lists that
update on create, readable charts with names, the request log with its filters and details, limits picked by
email, a member's own limits, and the models page. Screenshots for docs/ui/ are written here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.ui.browser import (
    By,
    Keys,
    WebDriver,
    click,
    field,
    new_browser,
    no_secrets,
    retype,
    shot,
    sign_in,
    type_into,
    until,
)
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-Password-0001"
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
DOCS = Path(__file__).resolve().parents[3] / "docs" / "ui"
CODE = re.compile(r"setup code ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = new_browser()
    yield driver
    driver.quit()


def docs_shot(driver: WebDriver, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(DOCS / f"{name}.png"))
    shot(driver, name)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceProcess]:
    config = {
        "ui": True,
        "logging": {"level": "warning", "access_log": False},
        "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD, "registration": "approval"},
        "providers": [
            {"name": "mocked", "kind": "mock"},
            {"name": "gone", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-none"},
        ],
        "models": [
            {"name": "priced-1", "price": {"input": 3.0, "output": 15.0}, "deployments": [{"provider": "mocked"}]},
            {"name": "remote-1", "deployments": [{"provider": "gone", "model": "gpt-gone"}]},
        ],
        "builtin_mock": False,
    }
    process = SluiceProcess(tmp_path_factory.mktemp("admin2"), config).start()
    yield process
    process.stop()


def api(gateway: SluiceProcess, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{gateway.url}/admin/v1{path}", headers=MASTER, timeout=30, **kwargs)
    assert response.status_code == expect, (method, path, response.text)
    return response.json() if response.content else None


def call(gateway: SluiceProcess, token: str, model: str = "priced-1") -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}, timeout=30
    )


def test_first_run_without_the_cli_and_no_sign_up_in_closed_mode(tmp_path: Path, browser: WebDriver) -> None:
    config = {"ui": True, "logging": {"level": "info", "format": "console", "access_log": False}}
    process = SluiceProcess(tmp_path, {"data_dir": str(tmp_path / "data"), **config}).start()
    try:
        banner = process.log_path.read_text(encoding="utf-8")
        assert f"Web UI: {process.url}/ui" in banner
        found = CODE.search(banner)
        assert found is not None, banner
        browser.get(process.url + "/")  # a browser at the root goes to the UI, which asks for the first admin
        until(lambda: browser.current_url.endswith("/ui/setup"), "the set-up page")
        field(browser, "Setup code").send_keys("WRONG-CODE-0000-0000")
        field(browser, "Email").send_keys("founder@example.com")
        field(browser, "Password (8+ characters)").send_keys("founder-Pass-01")
        click(browser, "Create the administrator")
        until(lambda: "not this gateway's setup code" in browser.page_source, "the wrong code refused")
        docs_shot(browser, "setup")
        retype(field(browser, "Setup code"), found.group(1))
        click(browser, "Create the administrator")
        until(lambda: browser.current_url.endswith("/ui/admin"), "the overview, signed in as the new admin")
        assert "founder@example.com · admin" in browser.page_source
        assert httpx.get(f"{process.url}/", timeout=30).text == "Ollama is running"  # Ollama's clients unchanged

        click(browser, "Sign out")
        until(lambda: browser.current_url.endswith("/ui/login"), "the sign-in page")
        assert "Create an account" not in browser.page_source  # registration is closed (the default)
        browser.get(f"{process.url}/ui/register")
        until(lambda: "does not take sign-ups" in browser.page_source, "no sign-up form")
        assert browser.find_elements(By.XPATH, "//input[@aria-label='Password (8+ characters)']") == []
        browser.get(f"{process.url}/ui/setup")
        until(lambda: "already has an administrator" in browser.page_source, "the set-up closed for good")
    finally:
        process.stop()


def test_admins_create_users_see_pending_sign_ups_and_lists_update_on_create(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    base = gateway.url
    registered = httpx.post(
        f"{base}/admin/v1/auth/register", json={"email": "waiting@example.com", "password": "waiting-Pass-01"}
    )
    assert registered.status_code == 201 and registered.json()["pending"]
    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    badge = until(
        lambda: next(b for b in browser.find_elements(By.CSS_SELECTOR, "nav .q-badge") if b.is_displayed() and b.text),
        "the pending sign-ups badge",
    )
    assert badge.text == "1"

    browser.get(f"{base}/ui/admin/users")
    field(browser, "Email").send_keys("made@example.com")
    click(browser, "Create user")
    shot(browser, "users-created")
    link = until(lambda: browser.find_element(By.ID, "new-user-link").text, "the one-time set-password link")
    assert link.startswith("/ui/reset?token=")
    until(lambda: browser.find_elements(By.XPATH, "//div[normalize-space()='made@example.com']"), "listed at once")
    user_ids = [u["id"] for u in api(gateway, "GET", "/users")]
    assert not any(uid in browser.page_source for uid in user_ids), "users are shown by email, never by id"
    docs_shot(browser, "users")
    other = new_browser()
    try:
        other.get(base + link)
        field(other, "New password (8+ characters)").send_keys("made-Password-01")
        click(other, "Set password")
        until(lambda: other.current_url.endswith("/ui/login"), "the sign-in page after setting the password")
        sign_in(other, base, "made@example.com", "made-Password-01")
    finally:
        other.quit()

    browser.get(f"{base}/ui/admin/keys")
    field(browser, "Name").send_keys("listed at once")
    click(browser, "Create key")
    secret = until(lambda: browser.find_element(By.ID, "new-key").text, "the new key")
    until(lambda: browser.find_elements(By.XPATH, "//div[normalize-space()='listed at once']"), "the key listed")
    no_secrets(browser, allowed=secret)
    browser.get(f"{base}/ui/admin/invites")
    before = len(browser.find_elements(By.CSS_SELECTOR, "[class*='border-b']"))
    click(browser, "Create invitation")
    until(lambda: browser.find_element(By.ID, "invite-token").text, "the token")
    until(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "[class*='border-b']")) == before + 1,
        "the invitation listed without a reload",
    )


def test_overview_request_log_limits_and_models_speak_in_names(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    invite = api(gateway, "POST", "/invites", 201, json={"role": "member"})["token"]
    body = {"email": "mona@example.com", "password": "mona-Password-01", "invite_token": invite}
    mona = httpx.post(f"{base}/admin/v1/auth/register", json=body, timeout=30).json()["user"]["id"]
    token = httpx.post(
        f"{base}/admin/v1/auth/login", json={"email": "mona@example.com", "password": "mona-Password-01"}, timeout=30
    ).json()["access_token"]
    api(gateway, "PUT", f"/limits/user/{mona}", json={"budget": 2, "rpm": 60})
    for _ in range(3):
        call(gateway, token)
    call(gateway, token, model="no-such-model")  # a failed call for the log's filter
    until(lambda: len(api(gateway, "GET", "/requests", params={"user_id": mona})["data"]) == 4, "the calls shipped")

    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    browser.get(f"{base}/ui/admin")
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".nicegui-echart")) == 4, "four charts")
    top_users = until(lambda: browser.find_element(By.CSS_SELECTOR, "[class*='q-table']"), "the top tables")
    assert top_users is not None
    until(lambda: "mona@example.com" in browser.page_source, "the top users by email")
    assert mona not in browser.page_source
    time.sleep(1.0)  # the charts' animation
    docs_shot(browser, "overview")

    browser.get(f"{base}/ui/admin/requests")
    until(lambda: "mona@example.com" in browser.page_source, "the request log")
    outcome = until(lambda: browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Outcome']]"), "filter")
    outcome.click()
    until(
        lambda: browser.find_element(By.XPATH, "//div[@role='option']//span[normalize-space()='failed']"), "outcomes"
    ).click()
    click(browser, "Filter")
    until(
        lambda: (
            (rows := browser.find_elements(By.CSS_SELECTOR, "tbody tr")) and all("404" in r.text for r in rows) and rows
        ),
        "only the failed call",
    )
    docs_shot(browser, "request-log")
    browser.find_element(By.XPATH, "//button[.//span[normalize-space()='Details']]").click()
    detail = until(lambda: browser.find_element(By.CSS_SELECTOR, ".q-dialog"), "the call's details")
    until(lambda: "no-such-model" in detail.text and "mona@example.com" in detail.text, "the details")
    assert "hello" not in detail.text  # the prompt is never stored, so never shown
    docs_shot(browser, "request-detail")

    browser.get(f"{base}/ui/admin/limits")
    scope = until(lambda: browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Scope']]"), "scope")
    scope.click()
    until(
        lambda: browser.find_element(By.XPATH, "//div[@role='option']//span[normalize-space()='user']"), "the scopes"
    ).click()
    who = until(lambda: field(browser, "User (email)"), "the user picker")
    who.send_keys("mona@ex")  # typed, as people do: an email, not an id
    until(
        lambda: browser.find_element(By.XPATH, "//div[@role='option']//span[normalize-space()='mona@example.com']"),
        "mona among the choices",
    ).click()
    spend = until(lambda: browser.find_element(By.XPATH, "//*[starts-with(normalize-space(),'Spent $')]"), "spend")
    assert re.fullmatch(r"Spent \$[\d.]+ this month of \$2\.00 \(\$[\d.]+ left\)", spend.text), spend.text
    browser.find_element(By.TAG_NAME, "h1").click()  # close the picker's menu before the screenshot
    time.sleep(0.5)
    docs_shot(browser, "limits")

    browser.get(f"{base}/ui/admin/models")
    until(lambda: "$3.00 in / $15.00 out per 1M tokens" in browser.page_source, "prices shown")
    click(browser, "Test connection to gone")  # the button names what it tests
    until(lambda: "connection test failed" in browser.page_source, "the failed provider not shown healthy")
    rows = browser.find_elements(By.CSS_SELECTOR, "[class*='q-table'] tbody tr")
    remote = next(r for r in rows if "remote-1" in r.text)
    assert "connection test failed" in remote.text and "healthy" not in remote.text.replace("unhealthy", "")


def test_a_member_sees_their_own_remaining_budget_and_limits(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    invite = api(gateway, "POST", "/invites", 201, json={"role": "member"})["token"]
    body = {"email": "max@example.com", "password": "max-Password-001", "invite_token": invite}
    max_id = httpx.post(f"{base}/admin/v1/auth/register", json=body, timeout=30).json()["user"]["id"]
    api(gateway, "PUT", f"/limits/user/{max_id}", json={"budget": 5, "rpm": 20, "period": "week"})
    sign_in(browser, base, "max@example.com", "max-Password-001")
    type_into(browser, "Message", "spend a little", Keys.ENTER)
    until(lambda: "$" in browser.find_element(By.CSS_SELECTOR, ".usage-line").text, "the answer's cost")
    browser.get(f"{base}/ui/admin/usage")
    card = until(lambda: browser.find_element(By.CSS_SELECTOR, "[class*='q-card']"), "the member's own limits")
    until(lambda: "max@example.com" in card.text, "the user's card")
    assert "Budget $5.00 per week: $5.00 left" in card.text  # rounded to the cent: a fraction of a cent was spent
    assert re.search(r"Spent this week: \$0\.000\d+", card.text), card.text
    assert "20 requests/min" in card.text
