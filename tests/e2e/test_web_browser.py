"""The pages in a real browser (Debian's headless Chromium driven by Selenium through
chromedriver; `make chromium` installs both) against `newsalert run` fed by the demo's
Huawei/5G burst. One service and one browser serve every test of the module; each test saves
a screenshot under its own temp dir."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from newsalert.demo import DEMO_SECRET, dated
from newsalert.localservers import FeedServer, SmtpSink, WebhookReceiver, load_demo_articles
from tests.conftest import eventually
from tests.e2e.test_pipeline import RunningService, start_service, write_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.only_broker("embedded"),  # the pages, not the broker, are under test
    pytest.mark.asyncio(loop_scope="module"),
]
TOKEN = "browser-test-token-" + "k" * 20


@dataclass
class Console:
    service: RunningService
    url: str
    receiver: WebhookReceiver  # the demo subscriber's
    new_receiver: WebhookReceiver  # for the subscriber the form adds


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("web-console")
    feeds, receiver, smtp = FeedServer(), WebhookReceiver(DEMO_SECRET), SmtpSink()
    new_receiver = WebhookReceiver("not known until the form shows it")
    for server in (feeds, receiver, smtp, new_receiver):
        await server.start()
    feeds.set_feed("/sport.xml", "Sport Wire", dated(load_demo_articles("sport"), time.time()))
    feeds.set_feed("/tech.xml", "Telecom Wire", [])
    config = write_config(tmp_path, feeds, receiver, smtp)
    service = await start_service(config, tmp_path / "data", NEWSALERT_API_TOKEN=TOKEN)
    try:
        await eventually(lambda: feeds.requests.count("/tech.xml") >= 1, 30, "first poll")
        burst = dated(load_demo_articles("huawei-5g"), time.time())
        feeds.set_feed("/tech.xml", "Telecom Wire", burst)
        await eventually(lambda: receiver.received, 40, "the 5g-security alert")
        port = service.find(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1)
        yield Console(service, f"http://127.0.0.1:{port}", receiver, new_receiver)
    finally:
        assert await service.stop() == 0, "\n".join(service.lines)
        for server in (feeds, receiver, smtp, new_receiver):
            await server.stop()


class Browser:
    """Selenium's calls block: each runs in a thread, so the local servers this test process
    runs (the webhook receiver) keep answering while the browser waits for a page."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, *args)

    async def get(self, url: str) -> None:
        await self.run(self.driver.get, url)

    async def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return await self.run(self.driver.find_element, By.CSS_SELECTOR, css)

    async def finds(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return await self.run(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def type(self, css: str, text: str) -> None:
        element = await self.find(css)
        await self.run(element.clear)
        await self.run(element.send_keys, text)

    async def click(self, css: str) -> None:
        await self.run((await self.find(css)).click)

    async def text(self, css: str = "body") -> str:
        """The element's text; while a click's navigation is under way the element may be
        gone or stale, so that is retried (for up to 10 s)."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )

        deadline = time.monotonic() + 10
        while True:
            try:
                return str(
                    await self.run(lambda: self.driver.find_element("css selector", css).text)
                )
            except (NoSuchElementException, StaleElementReferenceException):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def text_with(self, needle: str, css: str = "body", timeout_seconds: float = 10) -> str:
        """The element's text once it contains ``needle`` (the page a click led to may still be
        loading); fails with the text last seen."""
        deadline = time.monotonic() + timeout_seconds
        while needle not in (text := await self.text(css)):
            if time.monotonic() > deadline:
                pytest.fail(f"{needle!r} not in {css} after {timeout_seconds} s: {text[:500]!r}")
            await asyncio.sleep(0.1)
        return text

    async def screenshot(self, path: Path) -> None:
        assert await self.run(self.driver.save_screenshot, str(path))

    async def log_in(self, base_url: str) -> None:
        await self.get(f"{base_url}/login")
        await self.type("#token", TOKEN)
        await self.click("#login")
        await eventually_async(lambda: self.finds("nav"), 10, "the logged-in page")


async def eventually_async(check: Callable[[], Any], timeout_seconds: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while not (result := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what}")
        await asyncio.sleep(0.1)
    return result


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("chromium and chromedriver are needed: `make chromium` installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


@pytest_asyncio.fixture(loop_scope="module")
async def browser(driver, console):
    driver.delete_all_cookies()
    return Browser(driver)


async def test_home_page_shows_the_5g_security_spike_and_its_chart(browser, console, tmp_path):
    await browser.log_in(console.url)
    await browser.get(f"{console.url}/")

    async def spike_shown() -> bool:
        state = await browser.text("#topic-5g-security .state")
        if state in ("started", "escalated"):
            return True
        await browser.get(f"{console.url}/")  # the activity agent may be a moment behind
        return False

    await eventually_async(spike_shown, 20, "the 5g-security spike on the home page")
    bars = await browser.finds("#topic-5g-security svg.chart rect.spike")
    assert bars, "the spike's buckets are marked on the chart"
    stories = await browser.text("#topic-5g-security table")
    assert "Huawei" in stories
    await browser.screenshot(tmp_path / "home.png")

    await browser.click("#topic-5g-security h2 a")
    assert "telecom-risk" in await browser.text_with("Who was notified")
    await browser.screenshot(tmp_path / "spike.png")


async def test_adding_a_subscriber_and_send_test_delivers_a_signed_webhook(
    browser, console, tmp_path
):
    receiver = console.new_receiver
    await browser.log_in(console.url)
    await browser.get(f"{console.url}/subscribers")
    await browser.type("#name", "browser-desk")
    await browser.click('input[name=topics][value="5g-security"]')
    await browser.type("#webhook", receiver.url("/from-the-form"))
    await browser.type("#keywords", "huawei")

    async def counted() -> str:
        text = await browser.text("#match-count")
        return text if "would have matched" in text else ""

    count = await eventually_async(counted, 10, "the live 'would have matched' count")
    assert int(re.search(r"matched (\d+)", count)[1]) > 0
    await browser.screenshot(tmp_path / "add-subscriber.png")
    await browser.click("#add")
    secret = await browser.text("#secret")
    assert secret.startswith("whsec_")
    receiver.secret = secret

    await browser.click("body a[href='/subscribers/browser-desk']")
    await browser.click("#send-test")
    await browser.text_with("delivered", "#test-results")
    (hook,) = receiver.received
    assert hook.verified, "the test webhook is signed with the secret shown once"
    assert secret not in await browser.text()
    await browser.screenshot(tmp_path / "send-test.png")


async def test_a_request_without_the_token_is_refused(browser, console, tmp_path):
    async with httpx.AsyncClient(base_url=console.url) as client:
        api = await client.get("/api/v1/topics")
        wrong = await client.get("/api/v1/topics", headers={"Authorization": "Bearer nope"})
    assert api.status_code == 401 and wrong.status_code == 401
    await browser.get(f"{console.url}/deliveries")
    assert await browser.finds("#token"), "no session: the login form, not the page"
    await browser.type("#token", "not-the-token")
    await browser.click("#login")
    await browser.text_with("Wrong token")
    await browser.screenshot(tmp_path / "refused.png")


async def test_a_form_post_without_the_csrf_token_is_refused(browser, console, tmp_path):
    await browser.log_in(console.url)
    await browser.get(f"{console.url}/subscribers")
    await browser.run(
        browser.driver.execute_script,
        "document.querySelector('#add-subscriber input[name=csrf]').remove()",
    )
    await browser.type("#name", "no-csrf")
    await browser.click('input[name=topics][value="5g-security"]')
    await browser.type("#email", "no-csrf@example.org")
    await browser.click("#add")
    await browser.text_with("no valid CSRF token")
    await browser.screenshot(tmp_path / "csrf.png")
    await browser.get(f"{console.url}/subscribers")
    assert "no-csrf" not in await browser.text("table")
