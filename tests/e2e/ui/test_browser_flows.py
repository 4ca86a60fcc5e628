"""More of the web UI in a real headless Chromium against a real `sluice serve`: the account (change password,
sign out), conversations renamed and deleted (after a confirmation), errors shown under the field they concern,
an owner confined to their workspace, the session cookie's flags, and Stop reaching the upstream and freeing the
deployment's slot as the Queues page shows. Screenshots go to tests/artifacts/ui/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.ui.browser import (
    By,
    WebDriver,
    click,
    field,
    field_message,
    new_browser,
    no_secrets,
    retype,
    shot,
    sign_in,
    type_into,
    until,
)
from tests.e2e.ui.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.fakes import FakeOpenAI, Fault
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = new_browser()
    yield driver
    driver.quit()


def admin(gateway: SluiceProcess, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{gateway.url}/admin/v1{path}", headers=MASTER, timeout=30, **kwargs)
    assert response.status_code == expect, (method, path, response.text)
    return response.json() if response.content else None


def person(gateway: SluiceProcess, email: str, password: str, workspace: str = "default", role: str = "member") -> str:
    invite = admin(gateway, "POST", "/invites", 201, json={"workspace_id": workspace, "role": role})["token"]
    body = {"email": email, "password": password, "invite_token": invite}
    registered = httpx.post(f"{gateway.url}/admin/v1/auth/register", json=body, timeout=30)
    assert registered.status_code == 201, registered.text
    return str(registered.json()["user"]["id"])


def login_status(gateway: SluiceProcess, email: str, password: str) -> int:
    body = {"email": email, "password": password}
    return httpx.post(f"{gateway.url}/admin/v1/auth/login", json=body, timeout=30).status_code


def test_changing_the_password_ends_the_session_and_signing_out_ends_it_too(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    base = gateway.url
    person(gateway, "cara@example.com", "cara-Password-01")
    sign_in(browser, base, "cara@example.com", "cara-Password-01")
    browser.get(f"{base}/ui/account")
    field(browser, "Current password").send_keys("cara-Password-01")
    field(browser, "New password (8+ characters)").send_keys("short")
    click(browser, "Change password")
    until(lambda: field_message(browser, "New password (8+ characters)"), "the refusal under the new password")
    shot(browser, "account-error")
    retype(field(browser, "New password (8+ characters)"), "cara-New-Password-02")
    click(browser, "Change password")
    until(lambda: browser.current_url.endswith("/ui/login"), "the sign-in page after the change")
    assert login_status(gateway, "cara@example.com", "cara-Password-01") == 401
    assert login_status(gateway, "cara@example.com", "cara-New-Password-02") == 200
    browser.get(f"{base}/ui/chat")  # the old session is over
    until(lambda: browser.current_url.endswith("/ui/login"), "the chat to need a new sign-in")

    sign_in(browser, base, "cara@example.com", "cara-New-Password-02")
    click(browser, "Sign out")
    until(lambda: browser.current_url.endswith("/ui/login"), "the sign-in page after signing out")
    for page in ("chat", "admin/keys", "account"):
        browser.get(f"{base}/ui/{page}")
        until(lambda: browser.current_url.endswith("/ui/login"), f"/ui/{page} to need a sign-in after signing out")


def test_a_conversation_is_renamed_and_deleted_only_after_confirming(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    base = gateway.url
    person(gateway, "dora@example.com", "dora-Password-01")
    sign_in(browser, base, "dora@example.com", "dora-Password-01")
    type_into(browser, "Message", "Tell me about rivers")
    click(browser, "Send")
    until(lambda: browser.find_elements(By.XPATH, "//a[normalize-space()='Tell me about rivers']"), "the title")
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-role=assistant]"), "the answer")
    browser.find_element(By.XPATH, "//button[starts-with(@aria-label,'Rename ')]").click()
    retype(until(lambda: field(browser, "Title"), "the rename dialog"), "River notes")
    click(browser, "Save")
    until(lambda: browser.find_elements(By.XPATH, "//a[normalize-space()='River notes']"), "the new title")
    shot(browser, "chat-renamed")

    browser.find_element(By.XPATH, "//button[starts-with(@aria-label,'Delete ')]").click()
    until(lambda: "Delete the conversation “River notes”?" in browser.page_source, "the confirmation")
    shot(browser, "chat-delete-confirm")
    click(browser, "Cancel")
    browser.get(f"{base}/ui/chat")
    until(lambda: browser.find_elements(By.XPATH, "//a[normalize-space()='River notes']"), "the conversation kept")
    browser.find_element(By.XPATH, "//button[starts-with(@aria-label,'Delete ')]").click()
    click(browser, "Delete", within="//div[contains(@class,'q-dialog')]")
    until(
        lambda: (
            not browser.find_elements(By.XPATH, "//a[normalize-space()='River notes']")
            and "No chats yet." in browser.page_source
        ),
        "the conversation gone",
    )


def test_errors_show_under_the_field_they_concern(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    browser.get(f"{base}/ui/admin/keys")
    expires = field(browser, "Expires (YYYY-MM-DD, optional)")
    expires.send_keys("soon")
    until(lambda: "Use the form YYYY-MM-DD" in field_message(browser, "Expires (YYYY-MM-DD, optional)"), "the check")
    retype(expires, "2001-01-01")
    field(browser, "Name").send_keys("past")
    click(browser, "Create key")
    until(
        lambda: "expires_at is in the past." in field_message(browser, "Expires (YYYY-MM-DD, optional)"),
        "the gateway's refusal under the expiry",
    )
    shot(browser, "keys-field-error")
    browser.get(f"{base}/ui/admin/ip-rules")
    field(browser, "Network (CIDR)").send_keys("10.0.0.0/33")
    until(lambda: "Enter a network" in field_message(browser, "Network (CIDR)"), "the CIDR check")
    shot(browser, "ip-rules-field-error")


def test_an_owner_cannot_reach_another_workspaces_data_from_the_ui(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    mine = admin(gateway, "POST", "/workspaces", 201, json={"name": "owner-home"})["id"]
    theirs = admin(gateway, "POST", "/workspaces", 201, json={"name": "elsewhere"})["id"]
    person(gateway, "omar@example.com", "omar-Password-01", mine, role="owner")
    person(gateway, "secret-neighbour@example.com", "nb-Password-0001", theirs)
    hidden_key = admin(gateway, "POST", "/keys", 201, json={"name": "elsewhere-key", "workspace_id": theirs})
    other_chat_owner = "nb@example.com"
    person(gateway, other_chat_owner, "nb2-Password-001", theirs)
    neighbour = new_browser()
    try:
        sign_in(neighbour, base, other_chat_owner, "nb2-Password-001")
        type_into(neighbour, "Message", "neighbour's private question")
        click(neighbour, "Send")
        until(
            lambda: "c=" in neighbour.current_url or neighbour.find_elements(By.CSS_SELECTOR, "a[href*='c=']"), "chat"
        )
        link = until(
            lambda: neighbour.find_element(By.XPATH, '//a[normalize-space()="neighbour\'s private question"]'), "link"
        )
        their_chat = link.get_attribute("href")
    except AssertionError:
        shot(neighbour, "failed-neighbour-chat")  # what the page showed, for the artefacts
        raise
    finally:
        neighbour.quit()
    # (after the neighbour's chat: the rule confines their workspace to that network)
    rule = {"cidr": "172.31.9.0/24", "scope": "workspace", "workspace_id": theirs}
    admin(gateway, "POST", "/ip-rules", 201, json=rule)

    sign_in(browser, base, "omar@example.com", "omar-Password-01")
    assert their_chat
    browser.get(their_chat)  # another user's conversation by its id: an empty chat of their own instead
    until(lambda: "Sign out" in browser.page_source, "the chat page")
    assert "neighbour's private question" not in browser.page_source
    for page, secret in (
        ("admin/users", "secret-neighbour@example.com"),
        ("admin/keys", "elsewhere-key"),
        ("admin/ip-rules", "172.31.9.0/24"),
        ("admin/audit", theirs),
        ("admin/usage", theirs),
        ("admin/invites", theirs),
    ):
        browser.get(f"{base}/ui/{page}")
        until(lambda: "Sign out" in browser.page_source, f"the page {page}")
        assert secret not in browser.page_source, page
        no_secrets(browser)
    browser.get(f"{base}/ui/admin/limits")
    until(lambda: "Limits and budgets" in browser.page_source, "the limits page")
    field(browser, "Key").click()  # the key picker offers the owner's workspace's keys only
    time.sleep(0.5)
    assert "elsewhere-key" not in browser.page_source and hidden_key["prefix"] not in browser.page_source


def test_the_session_cookie_is_http_only_same_site_and_secure_behind_https(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    sign_in(browser, gateway.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    cookie = next(c for c in browser.get_cookies() if c["name"] == "session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["secure"] is False  # plain HTTP
    assert "session" not in str(browser.execute_script("return document.cookie"))  # out of scripts' reach
    # Behind a TLS-terminating proxy (this test's address is a trusted proxy), the cookie is marked Secure.
    proxied = httpx.get(f"{gateway.url}/ui/login", headers={"x-forwarded-proto": "https"}, timeout=30)
    direct = httpx.get(f"{gateway.url}/ui/login", timeout=30)
    assert "secure" in proxied.headers["set-cookie"].lower()
    assert "secure" not in direct.headers["set-cookie"].lower()
    assert "httponly" in direct.headers["set-cookie"].lower() and "samesite=lax" in direct.headers["set-cookie"].lower()


def test_stop_reaches_the_upstream_and_frees_the_slot_the_queues_page_shows(
    gateway: SluiceProcess, upstream: FakeOpenAI, browser: WebDriver
) -> None:
    base = gateway.url
    upstream.reset()
    upstream.enqueue(Fault("endless", interval=0.2))  # streams until its client leaves, and records that
    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    until(lambda: browser.find_element(By.ID, "model"), "the model picker").click()
    until(
        lambda: browser.find_element(By.XPATH, "//div[@role='option']//span[normalize-space()='upstream-endless']"),
        "models",
    ).click()
    type_into(browser, "Message", "never stop")
    click(browser, "Send")
    until(lambda: upstream.in_flight == 1, "the upstream answering")
    watcher = new_browser()
    try:
        sign_in(watcher, base, ADMIN_EMAIL, ADMIN_PASSWORD)
        watcher.get(f"{base}/ui/admin/queues")
        until(lambda: in_flight_shown(watcher, "fake") == "1", "the Queues page showing the slot taken")
        shot(watcher, "queues-busy")
        click(browser, "Stop")
        until(lambda: upstream.disconnects, "the upstream to see the client leave")
        assert upstream.in_flight == 0
        until(lambda: in_flight_shown(watcher, "fake") == "0", "the Queues page showing the slot free (no reload)")
        shot(watcher, "queues-freed")
    finally:
        watcher.quit()
    until(lambda: "(stopped)" in browser.page_source, "the answer marked stopped")
    assert len(upstream.disconnects) == 1


def in_flight_shown(driver: WebDriver, provider: str) -> str | None:
    """The in-flight count the Queues table shows for the deployment on ``provider``."""
    for row in driver.find_elements(By.CSS_SELECTOR, "table tbody tr"):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        if cells and provider in cells[0]:
            return cells[2]
    return None


def test_screenshots_of_the_admin_pages_that_edit(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    browser.get(f"{base}/ui/admin/users")
    until(lambda: "Members" in browser.page_source, "the users page")
    shot(browser, "admin-users-members")
    browser.get(f"{base}/ui/admin/audit")
    until(lambda: browser.find_elements(By.CSS_SELECTOR, ".q-expansion-item"), "audit events")
    browser.find_elements(By.CSS_SELECTOR, ".q-expansion-item .q-item")[0].click()
    until(
        lambda: any(e.is_displayed() for e in browser.find_elements(By.XPATH, "//div[normalize-space()='after']")),
        "an event opened on its before and after",
    )
    shot(browser, "admin-audit-event")
    no_secrets(browser)
