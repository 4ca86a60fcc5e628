"""Driving the system Chromium (Debian `chromium` + `chromium-driver`) with selenium: start a browser, wait for
things with a bound, find fields by label and buttons by text, save screenshots, check pages hold no secrets."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import MASTER_KEY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "ui"
WAIT = 20.0

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
        raise RuntimeError("Chromium and chromedriver are required (apt-get install -y chromium chromium-driver)")
    pytest.skip(
        "Chromium / chromedriver not installed (apt-get install -y chromium chromium-driver)", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402 - only when a browser exists
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402

__all__ = ["By", "WebDriver", "WebElement"]


def new_browser() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def until(predicate: Callable[[], Any], what: str, seconds: float = WAIT) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def field(driver: WebDriver, label: str) -> WebElement:
    connected(driver)  # typed text reaches the server over the page's connection: none is lost before it is up
    return until(
        lambda: driver.find_element(By.XPATH, f"//input[@aria-label='{label}'] | //textarea[@aria-label='{label}']"),
        f"the field '{label}'",
    )


def type_into(driver: WebDriver, label: str, *keys: str) -> None:
    """Type into the field labelled ``label``, finding it again if the page redrew it (a stale element raises
    before any key is sent)."""

    def typed() -> bool:
        field(driver, label).send_keys(*keys)
        return True

    until(typed, f"typing into '{label}'")


def click(driver: WebDriver, text: str, within: str = "") -> None:
    """Click the (first visible) button labelled ``text`` (its text or, for icon buttons, its accessible name),
    optionally inside the element ``within`` selects."""
    connected(driver)  # a click before the page's connection is up would be lost
    xpath = f"{within}//button[.//span[normalize-space()='{text}'] or @aria-label='{text}']"

    def attempt() -> bool:  # found and clicked in one go: the page may redraw the button in between
        next(b for b in driver.find_elements(By.XPATH, xpath) if b.is_displayed()).click()
        return True

    until(attempt, f"the button '{text}' clicked")


def pick_model(driver: WebDriver, name: str) -> None:
    """Choose ``name`` in the chat page's model picker."""
    option = f"//div[@role='option']//span[normalize-space()='{name}']"

    def chosen() -> bool:  # open the picker and choose, again if the page redrew it in between
        if not driver.find_elements(By.XPATH, option):
            driver.find_element(By.ID, "model").click()
        driver.find_element(By.XPATH, option).click()
        return name in driver.find_element(By.ID, "model").text

    until(chosen, f"the model {name} chosen")


def retype(element: WebElement, text: str) -> None:
    """Replace a field's text as a person would (WebElement.clear() bypasses the events Vue listens to)."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACKSPACE)
    element.send_keys(text)


def field_message(driver: WebDriver, label: str) -> str:
    """The error text Quasar shows under the field labelled ``label`` (empty when none)."""
    container = driver.find_element(
        By.XPATH, f"//label[.//input[@aria-label='{label}'] or .//textarea[@aria-label='{label}']]"
    )
    return " ".join(m.text for m in container.find_elements(By.CSS_SELECTOR, ".q-field__messages") if m.text)


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def connected(driver: WebDriver) -> None:
    """Wait until the page's websocket has done its handshake: a click before it would be lost."""
    until(lambda: driver.execute_script("return Boolean(window.did_handshake)"), "the page's connection")


def sign_in(driver: WebDriver, base: str, email: str, password: str) -> None:
    driver.get(f"{base}/ui/login")
    connected(driver)
    field(driver, "Email").send_keys(email)
    field(driver, "Password").send_keys(password)
    click(driver, "Sign in")
    try:
        until(lambda: driver.current_url.endswith("/ui/chat"), "the chat page after signing in")
    except AssertionError:
        shot(driver, "failed-sign-in")
        notes = [n.text for n in driver.find_elements(By.CSS_SELECTOR, ".q-notification")]
        raise AssertionError(f"{email} not signed in; the page says {notes}") from None


def no_secrets(driver: WebDriver, allowed: str | None = None) -> None:
    html = driver.page_source
    if allowed:
        html = html.replace(allowed, "")
    assert MASTER_KEY not in html
    assert "eyJhbGciOi" not in html  # no JWT (access or refresh token) in the page
    assert re.search(r"sk-sl-[A-Za-z0-9_-]{20,}", html) is None  # key prefixes only, never a whole key
    assert "sl-inv-" not in html  # invitation tokens only in their one-time display
