"""The crew page in real headless Chromium (Debian's, driven by Playwright).

The offline queue: log while the browser is offline, come back online, and the
entry reaches the hub with the time of the tap, not the time it was sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.browser_support import PHONE, axe_violations, chromium
from tests.conftest import wait_for
from tests.crew_support import PASSWORD, CrewHub, crew_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrewHub]:
    with crew_hub(tmp_path_factory.mktemp("crew-browser")) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A browser per test: Chromium's offline emulation reaches a service worker's
    requests only in the browser's first context, and these tests go offline."""
    with chromium() as launched:
        yield launched


class Phone:
    """A browser context at phone size that records every script error."""

    def __init__(self, browser: Browser, **options: Any) -> None:
        self.context: BrowserContext = browser.new_context(viewport=PHONE, **options)
        self.errors: list[str] = []

    def page(self) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        # A request that fails while the test has the phone offline is expected.
        if message.type == "error" and "ERR_INTERNET_DISCONNECTED" not in message.text:
            self.errors.append(message.text)

    def close(self) -> None:
        self.context.close()


def log_in(page: Page, hub: CrewHub, name: str, service_worker: bool = True) -> None:
    page.goto(f"{hub.url}/crew?lang=en")
    assert "/crew/login" in page.url  # not logged in yet
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub.url}/crew?lang=en")
    # The service worker is up before a test takes the network away (as on a phone,
    # where it was installed on an earlier visit).
    if service_worker:
        page.wait_for_selector("body[data-offline-ready=true]")


def history(hub: CrewHub, facility: str) -> list[dict[str, Any]]:
    return hub.get(f"/api/v1/facilities/{facility}/maintenance?lang=en")  # type: ignore[no-any-return]


def queued(page: Page, crew: str) -> list[dict[str, Any]]:
    raw = page.evaluate(f"localStorage.getItem('ruuhka-crew-queue:{crew}')")
    return json.loads(raw or "[]")  # type: ignore[no-any-return]


def test_offline_entries_arrive_with_the_time_of_the_tap(hub: CrewHub, browser: Browser) -> None:
    phone = Phone(browser)
    try:
        page = phone.page()
        log_in(page, hub, "rinkcrew")
        page.click("#f-rink > details > summary")  # tap 1: the facility
        iced = page.locator("#f-rink button[value=iced]")
        assert iced.is_visible()
        # The usual outcome is said in words on the button, not only by its colour.
        assert iced.inner_text().split("\n") == ["Iced", "good"]
        recent = page.locator("#f-rink .crew-recent")
        assert recent.inner_text() == "Nothing logged yet."
        page.evaluate("window.notReloaded = true")

        phone.context.set_offline(True)
        tapped_from = datetime.now(UTC)
        iced.click()  # tap 2: "iced now"
        tapped_to = datetime.now(UTC)
        page.wait_for_selector("#crew-queue:not([hidden])")
        assert "1 entry waiting for a connection; it keeps" in page.inner_text("#crew-queue")
        assert "No connection" in page.inner_text("#crew-queue")
        assert [e["action"] for e in queued(page, "rinkcrew")] == ["iced"]
        assert history(hub, "rink") == []  # nothing reached the hub

        back_online = datetime.now(UTC)
        phone.context.set_offline(False)
        arrived = wait_for(lambda: history(hub, "rink"), 20, "the queued entry to arrive")
        entry = arrived[0]
        assert entry["action"] == "iced"
        performed = datetime.fromisoformat(entry["performed_at"])
        # Browser and hub share this machine's clock; JS keeps milliseconds.
        assert tapped_from - timedelta(milliseconds=5) <= performed <= tapped_to
        assert datetime.fromisoformat(entry["received_at"]) >= back_online
        page.wait_for_selector("#crew-queue", state="hidden")
        assert queued(page, "rinkcrew") == []
        page.wait_for_selector("#f-rink .crew-latest:text-matches('^Iced today')")
        assert "Saved: Iced today" in page.inner_text("#crew-status")
        # "Recent entries" shows it too, as the server would, without a reload.
        page.wait_for_function(
            "() => document.querySelector('#f-rink .crew-recent').textContent.startsWith('Iced')"
        )
        lines = "els => els.map(e => e.textContent)"
        live = page.eval_on_selector_all("#f-rink .crew-recent li", lines)
        assert len(live) == 1 and re.fullmatch(r"Iced today \d\d:\d\d · good · rinkcrew", live[0])
        assert page.evaluate("window.notReloaded") is True
        page.reload()
        assert page.eval_on_selector_all("#f-rink .crew-recent li", lines) == live  # as rendered
        assert phone.errors == []
    finally:
        phone.close()


def test_the_queue_survives_closing_the_page(hub: CrewHub, browser: Browser) -> None:
    # Chromium's offline emulation does not cover a service worker's own fetches, which
    # would send the entry behind the test's back: this test is about the page's queue.
    phone = Phone(browser, service_workers="block")
    try:
        page = phone.page()
        log_in(page, hub, "north", service_worker=False)
        page.click("#f-carpets > details > summary")
        page.click("#f-carpets .crew-more > summary")
        page.select_option("#ago-carpets", "60")  # the work was done an hour ago
        phone.context.set_offline(True)
        tapped_from = datetime.now(UTC)
        page.click("#f-carpets button[value=cleaned]")
        tapped_to = datetime.now(UTC)
        page.wait_for_selector("#crew-queue:not([hidden])")
        page.close()  # the phone goes back in the pocket
        assert history(hub, "carpets") == []

        phone.context.set_offline(False)
        again = phone.page()
        again.goto(f"{hub.url}/crew?lang=en")  # next time the page is opened
        arrived = wait_for(lambda: history(hub, "carpets"), 20, "the queued entry to arrive")
        performed = datetime.fromisoformat(arrived[0]["performed_at"])
        hour, ms = timedelta(hours=1), timedelta(milliseconds=5)  # JS keeps milliseconds
        assert tapped_from - hour - ms <= performed <= tapped_to - hour
        assert phone.errors == []
    finally:
        phone.close()


def test_the_page_opens_offline_and_still_logs(hub: CrewHub, browser: Browser) -> None:
    phone = Phone(browser)
    try:
        page = phone.page()
        log_in(page, hub, "city")
        phone.context.set_offline(True)
        page.reload()  # no connection: the service worker serves the last copy
        assert page.locator("#f-old-rink").count() == 1
        page.click("#f-old-rink > details > summary")
        tapped_from = datetime.now(UTC)
        page.click("#f-old-rink button[value=brushed]")
        tapped_to = datetime.now(UTC)
        page.wait_for_selector("#crew-queue", state="visible")
        assert history(hub, "old-rink") == []

        phone.context.set_offline(False)
        arrived = wait_for(lambda: history(hub, "old-rink"), 20, "the entry made offline")
        performed = datetime.fromisoformat(arrived[0]["performed_at"])
        assert tapped_from - timedelta(milliseconds=5) <= performed <= tapped_to
        assert arrived[0]["action"] == "brushed"

        # Logging out forgets the offline copy.
        page.click("form.crew-account button")
        page.wait_for_url(f"{hub.url}/crew/login?lang=en")
        assert page.evaluate("async () => (await caches.keys()).length") == 0
        assert phone.errors == []
    finally:
        phone.close()


def test_a_notice_and_undo(hub: CrewHub, browser: Browser) -> None:
    phone = Phone(browser)
    try:
        page = phone.page()
        log_in(page, hub, "city")
        page.click("#f-pool > details > summary")
        page.click("#f-pool .crew-more > summary")
        page.click("#f-pool button[value=notice]")
        assert "Write the notice first" in page.inner_text("#crew-status")
        page.fill("#notice-fi-pool", "Sauna remontissa")
        page.fill("#notice-en-pool", "Sauna under repair")
        page.click("#f-pool button[value=notice]")
        wait_for(lambda: hub.get("/api/v1/facilities/pool?lang=en")["notice"], 20, "the notice")
        assert hub.get("/api/v1/facilities/pool?lang=fi")["notice"] == "Sauna remontissa"

        page.click("#f-pool button[value=closed]")
        page.wait_for_selector("#crew-status:text-matches('^Saved: Closed today')")
        assert hub.get("/api/v1/facilities/pool")["condition"] == "closed"
        page.click("#crew-undo")
        page.wait_for_selector("#crew-status:text-is('Taken back.')")
        assert hub.get("/api/v1/facilities/pool")["condition"] is None
        # Undo of an entry still waiting offline: it never leaves the phone.
        phone.context.set_offline(True)
        page.click("#f-pool button[value=opened]")
        page.wait_for_selector("#crew-queue", state="visible")
        page.click("#crew-undo")
        page.wait_for_selector("#crew-queue", state="hidden")
        phone.context.set_offline(False)
        assert [e["action"] for e in history(hub, "pool")] == ["notice"]
        assert phone.errors == []
    finally:
        phone.close()


def test_nearest_facilities_first(hub: CrewHub, browser: Browser) -> None:
    # Standing at the rink (60.17, 24.94): it comes before the pool (60.20, 24.90).
    phone = Phone(
        browser,
        geolocation={"latitude": 60.171, "longitude": 24.941},
        permissions=["geolocation"],
    )
    try:
        page = phone.page()
        log_in(page, hub, "city")
        order = page.eval_on_selector_all(".crew-facility", "els => els.map(e => e.dataset.id)")
        assert order.index("pool") < order.index("rink")  # configuration order
        page.click("#crew-nearest")
        page.wait_for_selector(".crew-facility:first-child[data-id=rink]")
        order = page.eval_on_selector_all(".crew-facility", "els => els.map(e => e.dataset.id)")
        assert order[:2] == ["rink", "pool"]
        assert "km" in page.inner_text("#f-pool .crew-distance")
        # Big touch targets: every action button at least 48 px tall.
        page.click("#f-rink > details > summary")
        heights = page.eval_on_selector_all(
            "#f-rink .crew-action", "els => els.map(e => e.getBoundingClientRect().height)"
        )
        assert heights and min(heights) >= 48
        assert phone.errors == []
    finally:
        phone.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_the_crew_pages(hub: CrewHub, browser: Browser, scheme: str) -> None:
    phone = Phone(browser, color_scheme=scheme, bypass_csp=True)
    found: dict[str, Any] = {}
    try:
        page = phone.page()
        for path in ("/crew/login?lang=fi", "LOGIN", "/crew?lang=sv"):
            if path == "LOGIN":
                log_in(page, hub, "city")
                continue
            page.goto(hub.url + path)
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            violations = axe_violations(page)
            if violations:
                found[path] = violations
    finally:
        phone.close()
    assert found == {}
