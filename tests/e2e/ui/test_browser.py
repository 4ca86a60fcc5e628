"""The web UI in a real headless Chromium against a real `sluice serve` with the mock provider.

An admin signs in and creates an invitation; a new user signs up with it and chats with a streamed answer (the text
grows while it streams), presses Stop mid-answer (the gateway records the call as cancelled, status 499); the admin
creates a key (shown once), and sees the chat's usage and the audit log. A member cannot open admin pages, and
no token or key appears in any page's HTML except the one-time key display. Screenshots of each main page are saved
under tests/artifacts/ui/.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.ui.browser import (
    By,
    WebDriver,
    click,
    connected,
    field,
    new_browser,
    no_secrets,
    pick_model,
    retype,
    shot,
    sign_in,
    type_into,
    until,
)
from tests.e2e.ui.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, USER_EMAIL, USER_PASSWORD
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = new_browser()
    yield driver
    driver.quit()


def usage_rows(gateway: SluiceProcess) -> list[dict[str, str]]:
    response = httpx.get(f"{gateway.url}/admin/v1/usage/export.csv", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.text)))


def test_admin_invites_user_chats_streams_stops_and_admin_sees_usage(gateway: SluiceProcess) -> None:
    base = gateway.url
    admin = new_browser()
    try:
        sign_in(admin, base, ADMIN_EMAIL, ADMIN_PASSWORD)
        shot(admin, "chat-admin")
        admin.get(f"{base}/ui/admin/invites")
        click(admin, "Create invitation")
        token = until(lambda: admin.find_element(By.ID, "invite-token").text, "the invitation token")
        assert token.startswith("sl-inv-")
        shot(admin, "invites")
        admin.get(f"{base}/ui/admin/invites")
        until(lambda: "open" in admin.page_source, "the invitation list")
        no_secrets(admin)  # the token was shown once, and is not in the list

        user = new_browser()
        try:
            user.get(f"{base}/ui/register")
            field(user, "Email").send_keys(USER_EMAIL)
            field(user, "Password (8+ characters)").send_keys(USER_PASSWORD)
            field(user, "Invitation token (optional)").send_keys(token)
            click(user, "Create account")
            until(lambda: user.current_url.endswith("/ui/login"), "the sign-in page after registering")
            sign_in(user, base, USER_EMAIL, USER_PASSWORD)
            no_secrets(user)

            type_into(user, "Message", "Tell me a long story")
            click(user, "Send")
            answers = lambda: user.find_elements(By.CSS_SELECTOR, "[data-role=assistant] .answer")  # noqa: E731
            first = until(
                lambda: len(answers()) and len(answers()[-1].text) > 5 and answers()[-1].text,
                "the answer to start streaming",
            )
            until(lambda: len(answers()[-1].text) > len(first), "the answer to grow while it streams")
            shot(user, "chat-streaming")
            click(user, "Stop")
            until(lambda: "(stopped)" in answers()[-1].text, "the answer to stop")
            shot(user, "chat-stopped")
            cancelled = until(
                lambda: [r for r in usage_rows(gateway) if r["endpoint"] == "chat" and r["status"] == "499"],
                "the gateway's record of the cancelled call",
            )
            assert int(cancelled[0]["completion_tokens"]) > 0  # billed for what was generated

            user.get(f"{base}/ui/admin/users")  # a member is sent back to the chat
            until(lambda: user.current_url.endswith("/ui/chat"), "the member to be turned away from admin pages")
            user.get(f"{base}/ui/admin/audit")
            until(lambda: user.current_url.endswith("/ui/chat"), "the member to be turned away from the audit log")
        finally:
            user.quit()

        admin.get(f"{base}/ui/admin/keys")
        field(admin, "Name").send_keys("from the ui")
        click(admin, "Create key")
        secret = until(lambda: admin.find_element(By.ID, "new-key").text, "the one-time key display")
        assert secret.startswith("sk-sl-")
        shot(admin, "keys-created")
        assert httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {secret}"}).status_code == 200
        admin.get(f"{base}/ui/admin/keys")
        until(lambda: "from the ui" in admin.page_source, "the key list")
        assert secret not in admin.page_source  # shown once only
        no_secrets(admin)

        admin.get(f"{base}/ui/admin/usage")
        totals = until(lambda: admin.find_element(By.ID, "usage-totals").text, "the usage totals")
        assert not totals.startswith("0 requests")
        shot(admin, "usage")
        admin.get(f"{base}/ui/admin/audit")
        until(lambda: "key.create" in admin.page_source and "invite.create" in admin.page_source, "the audit log")
        shot(admin, "audit")
        for page in ("admin", "admin/users", "admin/ip-rules", "admin/limits", "admin/queues", "admin/models"):
            admin.get(f"{base}/ui/{page}")
            until(lambda: "Sign out" in admin.page_source, f"the page {page}")
            time.sleep(0.3)
            shot(admin, page.replace("/", "-"))
            no_secrets(admin)
    finally:
        admin.quit()


def test_wrong_password_shows_the_gateway_message(gateway: SluiceProcess, browser: WebDriver) -> None:
    browser.get(f"{gateway.url}/ui/login")
    field(browser, "Email").send_keys(ADMIN_EMAIL)
    field(browser, "Password").send_keys("not-the-password")
    click(browser, "Sign in")
    until(lambda: "Invalid email or password." in browser.page_source, "the error message")
    assert browser.current_url.endswith("/ui/login")


def test_pending_page_queue_place_regenerate_edit_and_conversations(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    assert httpx.put(f"{base}/admin/v1/settings", headers=master, json={"registration": "approval"}).status_code == 200
    browser.get(f"{base}/ui/register")
    field(browser, "Email").send_keys("pat@example.com")
    field(browser, "Password (8+ characters)").send_keys("pat-Password-01")
    click(browser, "Create account")
    until(lambda: browser.current_url.endswith("/ui/pending"), "the waiting-for-approval page")
    shot(browser, "pending")
    users = httpx.get(f"{base}/admin/v1/users", headers=master, params={"status": "pending"}).json()
    pat = next(u for u in users if u["email"] == "pat@example.com")
    assert httpx.post(f"{base}/admin/v1/users/{pat['id']}/approve", headers=master).status_code == 200
    sign_in(browser, base, "pat@example.com", "pat-Password-01")

    # Someone else holds the only slot of "one-slot": Pat's question waits and the page says where it stands.
    def occupy() -> None:
        body = {"model": "one-slot", "messages": [{"role": "user", "content": "x"}], "max_tokens": 150}  # ~6 s
        httpx.post(f"{base}/v1/chat/completions", headers=master, json=body, timeout=60)

    holder = threading.Thread(target=occupy)
    holder.start()

    def slot_taken() -> bool:
        views = httpx.get(f"{base}/admin/v1/queues", headers=master, timeout=10).json()["deployments"]
        return any(view["in_flight"] for view in views)

    until(slot_taken, "the holder to have the slot")
    pick_model(browser, "one-slot")
    type_into(browser, "Message", "First question")
    click(browser, "Send")
    status = until(
        lambda: "in line" in browser.find_element(By.ID, "status").text and browser.find_element(By.ID, "status").text,
        "the place in line",
    )
    assert status.startswith("1st in line, about")
    shot(browser, "chat-queued")
    answers = lambda: browser.find_elements(By.CSS_SELECTOR, "[data-role=assistant] .answer")  # noqa: E731
    click(browser, "Stop")
    until(lambda: "(stopped)" in answers()[-1].text, "the waiting request to be stopped")
    holder.join(timeout=60)

    click(browser, "Regenerate")
    until(lambda: len(answers()) == 1 and len(answers()[-1].text) > 20, "a regenerated answer", seconds=40)
    click(browser, "Stop")
    until(lambda: "(stopped)" in answers()[-1].text, "the regenerated answer to stop")
    until(lambda: browser.find_element(By.ID, "edit-last").is_enabled(), "Edit enabled once the answer is settled")
    click(browser, "Edit last question")
    until(lambda: field(browser, "Message").get_attribute("value") == "First question", "the question back in the box")
    until(lambda: answers() == [], "the question and its answer taken off the page")

    browser.get(f"{base}/ui/chat")
    until(lambda: "First question" in browser.page_source, "the conversation titled by its question")
    click(browser, "New chat")
    until(lambda: "c=" not in browser.current_url, "a new chat")
    time.sleep(0.5)
    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".q-drawer a") if a.text]
    assert titles == ["First question"]  # a new chat is stored only with its first message
    shot(browser, "chat-conversations")


def test_admin_manages_models_edits_keys_and_resets_a_password(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    browser.get(f"{base}/ui/admin/models")
    field(browser, "Provider name").send_keys("extra")
    kind = until(lambda: browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Kind']]"), "kind picker")
    kind.click()
    until(
        lambda: browser.find_element(By.XPATH, "//div[@role='option']//span[normalize-space()='mock']"), "the kinds"
    ).click()
    field(browser, "API key (write-only; empty keeps the stored one)").send_keys("sk-upstream-never-shown")
    click(browser, "Save provider")
    until(lambda: browser.find_elements(By.XPATH, "//div[normalize-space()='extra']"), "the new provider listed")
    until(lambda: "key set" in browser.page_source, "its key set")
    assert "sk-upstream-never-shown" not in browser.page_source
    field(browser, "Public model name").send_keys("extra-1")
    picker = until(lambda: browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Provider']]"), "picker")
    picker.click()
    until(
        lambda: browser.find_element(By.XPATH, "//div[@role='option']//span[normalize-space()='extra']"),
        "the providers",
    ).click()
    click(browser, "Save model")
    until(lambda: "extra-1 (stored)" in browser.page_source, "the stored model")
    shot(browser, "admin-models-managed")
    body = {"model": "extra-1", "messages": [{"role": "user", "content": "hi"}]}
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    assert httpx.post(f"{base}/v1/chat/completions", headers=master, json=body, timeout=30).status_code == 200
    click(browser, "disable extra/ of extra-1")  # the button names the model it acts on
    until(lambda: "enable extra/ of extra-1" in browser.page_source, "the deployment disabled")
    assert httpx.post(f"{base}/v1/chat/completions", headers=master, json=body, timeout=30).status_code == 404

    browser.get(f"{base}/ui/admin/keys")
    field(browser, "Name").send_keys("to edit")
    click(browser, "Create key")
    until(lambda: browser.find_element(By.ID, "new-key").text, "the new key")
    browser.get(f"{base}/ui/admin/keys")
    connected(browser)
    row = "//div[contains(@class,'row')][.//div[normalize-space()='to edit']]"
    edit = until(
        lambda: browser.find_element(By.XPATH, f"{row}//button[.//span[normalize-space()='Edit']]"),
        "the edit button",
    )
    edit.click()
    name = until(
        lambda: next(
            e
            for e in browser.find_elements(By.XPATH, "//input[@aria-label='Name']")
            if e.get_attribute("value") == "to edit"
        ),
        "the edit dialog",
    )
    retype(name, "edited in the ui")
    click(browser, "Save")
    until(lambda: "edited in the ui" in browser.page_source, "the renamed key")

    def key_names() -> list[str]:
        return [k["name"] for k in httpx.get(f"{base}/admin/v1/keys", headers=master).json()]

    until(lambda: "edited in the ui" in key_names(), "the new name stored")  # the page may show it before
    assert "to edit" not in key_names()  # exactly the new name, nothing of the old one left

    invite = httpx.post(f"{base}/admin/v1/invites", headers=master, json={"role": "member"}).json()["token"]
    forgetful = {"email": "sam@example.com", "password": "sam-Password-01", "invite_token": invite}
    assert httpx.post(f"{base}/admin/v1/auth/register", json=forgetful).status_code == 201
    browser.get(f"{base}/ui/admin/users")
    reset = until(
        lambda: browser.find_element(
            By.XPATH,
            "//div[contains(@class,'row')][.//div[normalize-space()='sam@example.com']]"
            "//button[.//span[normalize-space()='Reset password link']]",
        ),
        "the reset button",
    )
    reset.click()
    path = until(lambda: browser.find_element(By.ID, "reset-link").text, "the reset link")
    assert path.startswith("/ui/reset?token=sl-reset-")
    other = new_browser()
    try:
        other.get(base + path)
        field(other, "New password (8+ characters)").send_keys("sam-New-Password-1")
        click(other, "Set password")
        until(lambda: other.current_url.endswith("/ui/login"), "the sign-in page after the reset")
        sign_in(other, base, "sam@example.com", "sam-New-Password-1")
    finally:
        other.quit()
