"""Single sign-on in a real browser: "Sign in with Test IdP" on the UI's sign-in page, the provider's page, and back
to the chat signed in, in the mapped workspace and role; a refusal comes back to the sign-in page with its reason;
sign-out leaves the provider too. With password sign-in off, the page offers single sign-on only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.sso.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, callback_url, sso_config
from tests.e2e.sso.idp import TestIdP
from tests.e2e.ui.browser import By, WebDriver, click, connected, new_browser, no_secrets, shot, sign_in, until
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY


class BrowserRig:
    def __init__(self, directory: Path, password_login: bool) -> None:
        (directory / "idp").mkdir(parents=True)
        self.idp = TestIdP(directory / "idp", [], [])
        config = {
            "ui": True,
            "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
            "sso": {**sso_config(self.idp.issuer), "password_login": password_login},
        }
        self.gateway = SluiceProcess(directory / "gateway", config)
        self.url = self.gateway.url
        self.idp.redirect_uris = [callback_url(self.url)]
        self.idp.logout_uris = [f"{self.url}/ui/login"]

    def __enter__(self) -> BrowserRig:
        self.idp.start()
        try:
            self.gateway.start()
        except BaseException:
            self.idp.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.gateway.stop()
        finally:
            self.idp.stop()

    def user(self, email: str) -> dict[str, object]:
        users = httpx.get(
            f"{self.url}/admin/v1/users", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30
        ).json()
        return next(u for u in users if u["email"] == email)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserRig]:
    with BrowserRig(tmp_path_factory.mktemp("sso-ui"), password_login=True) as running:
        yield running


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    browser = new_browser()
    try:
        yield browser
    finally:
        browser.quit()


def sso_sign_in(driver: WebDriver, rig: BrowserRig, login: str) -> None:
    driver.get(f"{rig.url}/ui/login")
    connected(driver)
    click(driver, "Sign in with Test IdP")
    until(lambda: driver.current_url.startswith(rig.idp.issuer + "/interaction/"), "the provider's sign-in page")
    username = until(lambda: driver.find_element(By.XPATH, "//input[@aria-label='Username']"), "the Username field")
    username.send_keys(login)
    driver.find_element(By.ID, "idp-continue").click()


def test_first_sign_in_through_the_browser_lands_in_the_chat(rig: BrowserRig, driver: WebDriver) -> None:
    rig.idp.set_account("nina", ["llm-leads"])
    sso_sign_in(driver, rig, "nina")
    try:
        until(lambda: driver.current_url.endswith("/ui/chat"), "the chat page after single sign-on")
    except AssertionError:
        shot(driver, "sso-failed-sign-in")
        raise
    until(lambda: "nina@example.com · owner" in driver.page_source, "the signed-in user and role in the header")
    no_secrets(driver)
    assert "sl-sso-" not in driver.page_source  # the ticket is spent server-side, never kept in the page
    user = rig.user("nina@example.com")
    assert user["password_login"] is False and user["priority"] == "interactive"

    click(driver, "Sign out")  # leaves the provider too, which sends the browser back to the sign-in page
    logout = until(lambda: driver.find_element(By.ID, "idp-logout"), "the provider's sign-out page")
    assert driver.current_url.startswith(rig.idp.issuer)
    logout.click()
    until(lambda: driver.current_url.startswith(f"{rig.url}/ui/login"), "the sign-in page after the provider's logout")
    driver.get(f"{rig.url}/ui/chat")
    until(lambda: driver.current_url.endswith("/ui/login"), "the sign-in page: the UI session ended")

    rig.idp.set_account("nina", ["llm-users"])  # the directory changes her groups: the next sign-in re-maps
    sso_sign_in(driver, rig, "nina")
    until(lambda: driver.current_url.endswith("/ui/chat"), "the chat page after signing in again")
    until(lambda: "nina@example.com · member" in driver.page_source, "the new role in the header")
    assert rig.user("nina@example.com")["priority"] is None


def test_a_refusal_comes_back_to_the_sign_in_page_with_its_reason(rig: BrowserRig, driver: WebDriver) -> None:
    rig.idp.set_account("oscar", ["unrelated"])
    sso_sign_in(driver, rig, "oscar")
    until(lambda: "/ui/login" in driver.current_url, "the sign-in page again")
    connected(driver)
    until(lambda: "no access to this gateway" in driver.page_source, "the reason on the sign-in page")
    assert "/ui/chat" not in driver.current_url
    # A provider that is down: back on the sign-in page at once, with the reason.
    click(driver, "Sign in with Down IdP")
    until(lambda: "could not be fetched" in driver.page_source, "the reason a down provider gives")
    assert driver.current_url.startswith(f"{rig.url}/ui/login")


def test_with_password_sign_in_off_only_single_sign_on_is_offered(
    tmp_path_factory: pytest.TempPathFactory, driver: WebDriver
) -> None:
    with BrowserRig(tmp_path_factory.mktemp("sso-only"), password_login=False) as only:
        driver.get(f"{only.url}/ui/login")
        connected(driver)
        until(lambda: "Sign in with Test IdP" in driver.page_source, "the single sign-on button")
        assert driver.find_elements(By.XPATH, "//input[@aria-label='Password']") == []
        refused = httpx.post(
            f"{only.url}/admin/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "password_login_disabled"


def test_an_admin_sees_who_signs_in_only_through_the_provider_and_can_allow_a_password(
    rig: BrowserRig, driver: WebDriver
) -> None:
    rig.idp.set_account("uma", ["llm-users"])
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        start = f"{rig.url}/admin/v1/auth/sso/testidp/start"
        assert client.get(rig.idp.walk(client, start, "uma", stop_at=callback_url(rig.url))).status_code == 200
    sign_in(driver, rig.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    driver.get(f"{rig.url}/ui/admin/users")
    row = "//div[contains(@class,'row')][.//div[normalize-space()='uma@example.com']]"
    until(lambda: driver.find_element(By.XPATH, f"{row}//*[normalize-space()='single sign-on only']"), "the badge")
    driver.find_element(By.XPATH, f"{row}//button[.//span[normalize-space()='Edit']]").click()
    checkbox = "//div[contains(@class,'q-checkbox')][.//*[normalize-space()='Password sign-in']]"
    box = until(lambda: driver.find_element(By.XPATH, checkbox), "the checkbox")
    assert box.get_attribute("aria-checked") == "false"
    box.click()
    click(driver, "Save")
    until(lambda: rig.user("uma@example.com")["password_login"] is True, "password sign-in allowed")
