"""The web UI acts for each browser at the browser's own address, not at its own loopback one.

Real headless Chromium against a real `sluice serve` behind a (simulated) reverse proxy on loopback: each browser
sends its own ``X-Forwarded-For`` (set through the DevTools protocol, as a proxy would add it). One browser's failed
sign-ins lock out that browser only; IP rules judge the browser's address.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-Password-0001"
WAIT = 20.0

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
        raise RuntimeError("Chromium and chromedriver are required (apt-get install -y chromium chromium-driver)")
    pytest.skip("Chromium / chromedriver not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only when a browser exists
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceProcess]:
    config = {
        "ui": True,
        "server": {"trusted_proxies": ["127.0.0.1/32"]},
        # Five failures from one address lock it (the default bound is higher): whose address is what is tested.
        "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD, "login_address_attempts": 5},
    }
    process = SluiceProcess(tmp_path_factory.mktemp("ui-address"), config).start()
    yield process
    process.stop()


def browser_at(address: str) -> WebDriver:
    """A headless Chromium whose every request carries ``X-Forwarded-For: address``."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-For": address}})
    return driver


def until(predicate: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the page is still being built
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sign_in(driver: WebDriver, base: str, email: str, password: str) -> str:
    """Submit the sign-in form; returns "signed in" or the error the page shows."""
    driver.get(f"{base}/ui/login")
    until(lambda: driver.find_element(By.XPATH, "//input[@aria-label='Email']"), "the sign-in form").send_keys(email)
    driver.find_element(By.XPATH, "//input[@aria-label='Password']").send_keys(password)
    driver.find_element(By.XPATH, "//button[.//span[normalize-space()='Sign in']]").click()

    def outcome() -> str | None:
        if driver.current_url.endswith("/ui/chat"):
            return "signed in"
        for message in driver.find_elements(By.CSS_SELECTOR, ".q-notification__message"):
            if message.text:
                return str(message.text)
        return None

    return str(until(outcome, "the sign-in to succeed or fail"))


def test_browsers_are_throttled_and_ip_ruled_at_their_own_addresses(gateway: SluiceProcess) -> None:
    base = gateway.url
    noisy, colleague = browser_at("192.0.2.10"), browser_at("198.51.100.20")
    try:
        for i in range(5):
            assert sign_in(noisy, base, f"typo{i}@example.com", "not-the-password") == "Invalid email or password."
        assert sign_in(noisy, base, ADMIN_EMAIL, ADMIN_PASSWORD).startswith("Too many failed logins")
        # The colleague behind the same proxy (the same UI process, the same loopback hop) is not locked out.
        assert sign_in(colleague, base, ADMIN_EMAIL, ADMIN_PASSWORD) == "signed in"
    finally:
        noisy.quit()

    master = {"authorization": f"Bearer {MASTER_KEY}"}
    rule = httpx.post(f"{base}/admin/v1/ip-rules", headers=master, json={"cidr": "198.51.100.0/24"}, timeout=10)
    assert rule.status_code == 201, rule.text
    outsider = browser_at("203.0.113.30")
    try:
        # The outsider's password is right, but its address is outside the only allowed network.
        assert sign_in(outsider, base, ADMIN_EMAIL, ADMIN_PASSWORD) == (
            "Requests with these credentials are not allowed from your network."
        )
        colleague.get(f"{base}/ui/admin/keys")  # still inside: the admin pages keep working for it
        until(lambda: "API keys" in colleague.page_source and "not allowed" not in colleague.page_source, "keys")
    finally:
        outsider.quit()
        colleague.quit()
