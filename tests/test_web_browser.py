"""The public pages in a real browser: Debian's Chromium driven by Playwright.

One browser and one hub for the module. axe-core (installed from npm by
``make test`` into tests/node) checks WCAG 2.1 AA; screenshots at phone and
desktop widths go to test-artifacts/ on every run.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from babel import Locale
from playwright.sync_api import Browser, BrowserContext, Page

from ruuhka.broker import Broker
from tests.browser_support import PHONE, ROOT, axe_violations, chromium
from tests.conftest import HubProcess, wait_for
from tests.web_support import (
    CAMERA,
    GATE,
    RINK,
    RINK_GATE,
    RINK_STALE_AFTER_S,
    SENSOR,
    Seq,
    count,
    picture_kept,
    publish,
    rink,
    snapshot,
    web_hub,
)
from web.i18n import LANGUAGES, LOCALES, translations

ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
FIRST_LOAD_BUDGET = 60 * 1024


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Site:
    """The hub under test, a publisher for its devices, and what each page logged
    (every page is opened through :meth:`page`, so that its errors are seen)."""

    def __init__(self, broker: Broker, hub: HubProcess) -> None:
        self.broker = broker
        self.hub = hub
        self.seq = Seq()
        self.gate_entries = 0
        self.console_errors: list[str] = []

    def gate(self, occupancy: int) -> None:
        """Publish a gate reading that puts the pool at ``occupancy``."""
        self.gate_entries += 1000
        publish(self.broker, GATE, count(self.seq("gate"), self.gate_entries,
                                         self.gate_entries - occupancy))  # fmt: skip

    def page(self, context: BrowserContext, expected: str = "(?!)") -> Page:
        """A new page whose console errors, script errors and CSP reports are kept,
        except those matching ``expected`` (a regex; by default none)."""
        page = context.new_page()

        def error(text: str) -> None:
            if not re.match(expected, text):
                self.console_errors.append(f"{page.url}: {text}")

        page.on("console", lambda m: error(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: error(str(e)))
        return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with web_hub(tmp_path_factory.mktemp("browser")) as (broker, hub):
        running = Site(broker, hub)
        publish(broker, GATE, count(running.seq("gate"), 0, 0))
        running.gate(62)
        publish(broker, RINK_GATE, count(running.seq("rink"), 0, 0))
        publish(broker, RINK_GATE, count(running.seq("rink"), 14, 3))
        publish(broker, RINK, rink(running.seq("rink"), -3.5, 1.2))
        publish(broker, CAMERA, snapshot(running.seq("cam"), people=3))
        wait_for(lambda: hub.facility("pool")["occupancy"] == 62, 10, "the pool reading")
        wait_for(lambda: hub.facility("carpets")["people"] == 3, 10, "the camera count")
        wait_for(lambda: picture_kept(hub), 10, "the camera picture")
        yield running


@pytest.fixture(autouse=True)
def no_script_errors(site: Site) -> Iterator[None]:
    """Every test fails on an error any of its pages logged (CSP violations included)."""
    site.console_errors.clear()
    yield
    assert site.console_errors == [], site.console_errors


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=PHONE, locale="fi-FI")
    yield ctx
    ctx.close()


def wait_live(page: Page, lang: str) -> None:
    """Until the page says its WebSocket is connected (pages without live figures: at once)."""
    if not page.locator("#connection").count():
        return
    text = translations(lang).gettext("Figures update on their own.")
    page.wait_for_function(
        "text => document.getElementById('connection').textContent === text", arg=text
    )


def occupancy_of(page: Page, facility: str) -> str:
    return page.locator(f"#f-{facility} .occupancy").inner_text()


def test_a_published_reading_appears_without_reload(site: Site, context: BrowserContext) -> None:
    page = site.page(context)
    page.goto(site.hub.url + "/?lang=en")
    assert occupancy_of(page, "pool") == "62"  # server-rendered
    wait_live(page, "en")
    page.evaluate("window.notReloaded = true")
    for occupancy in (77, 91):  # how fast: bench/fanout.py; here: that it comes at all
        site.gate(occupancy)
        page.wait_for_function(
            "n => document.querySelector('#f-pool .occupancy').textContent === n",
            arg=str(occupancy),
            timeout=30_000,
        )
    card = page.locator("#f-pool")
    assert "level-full" in (card.get_attribute("class") or "")
    assert card.locator(".level-word").inner_text() == "full"
    assert card.locator(".pct-text").inner_text() == "91% of capacity (100)"
    assert card.locator(".free").inner_text() == "9 places free"  # updated live too
    assert page.evaluate("window.notReloaded") is True
    site.gate(62)
    page.wait_for_function(
        "() => document.querySelector('#f-pool .occupancy').textContent === '62'"
    )


def test_a_value_past_its_threshold_gets_the_stale_label(
    site: Site, context: BrowserContext
) -> None:
    publish(site.broker, RINK, rink(site.seq("rink"), -4.0, 0.5))
    wait_for(lambda: site.hub.facility("rink")["ice_temp_c"] == -4.0, 10, "the rink reading")
    page = site.page(context)
    page.goto(site.hub.url + "/?lang=en")
    wait_live(page, "en")
    label = page.locator("#f-rink .stale-label")
    assert label.is_hidden()
    assert page.locator("#f-rink .age-text").inner_text().startswith("updated ")
    # The kind's threshold is 4 s in this hub; the page re-checks ages every 5 s.
    label.wait_for(state="visible", timeout=(RINK_STALE_AFTER_S + 60) * 1000)
    assert label.inner_text() == "out of date"
    assert "is-stale" in (page.locator("#f-rink").get_attribute("class") or "")
    assert site.hub.facility("rink")["stale"] is True  # the API says so too
    publish(site.broker, RINK, rink(site.seq("rink"), -4.5, 0.5))
    label.wait_for(state="hidden", timeout=30_000)  # a new reading clears it live


def test_a_new_camera_picture_replaces_the_old_one_live(
    site: Site, context: BrowserContext
) -> None:
    page = site.page(context)
    page.goto(site.hub.url + "/facilities/carpets?lang=en")
    wait_live(page, "en")
    image = page.locator("img.camera-image")
    # Loaded and decoded (the browser picks its size from srcset, so no fixed width).
    assert image.evaluate("i => i.complete && i.naturalWidth > 0")
    before = image.get_attribute("src")
    publish(site.broker, CAMERA, snapshot(site.seq("cam"), people=5, shade=40))
    page.wait_for_function(
        "src => document.querySelector('img.camera-image').getAttribute('src') !== src",
        arg=before,
        timeout=5000,
    )
    page.wait_for_function(
        "() => { const i = document.querySelector('img.camera-image');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    assert "people 5." in (image.get_attribute("alt") or "")
    caption = page.locator(".camera figcaption").inner_text()
    assert caption.startswith("picture just now") or caption.startswith("picture 1 min")
    assert occupancy_of(page, "carpets") == "5"


SINGULAR = {"fi": "henkilö", "sv": "person", "en": "person"}


def test_counts_take_their_plural_form_live_in_every_language(
    site: Site, context: BrowserContext
) -> None:
    pages = {}
    for lang in LANGUAGES:
        page = pages[lang] = site.page(context)
        page.goto(f"{site.hub.url}/?lang={lang}")
        wait_live(page, lang)
        # live.js picks forms with the browser's Intl.PluralRules: the same rules (CLDR)
        # as Babel's, which checked the catalog's Plural-Forms against them.
        rule = Locale.parse(LOCALES[lang], sep="-").plural_form
        browser_says = page.evaluate(
            "locale => Array.from({length: 200}, (_, n) => new Intl.PluralRules(locale).select(n))",
            LOCALES[lang],
        )
        assert browser_says == [rule(n) for n in range(200)], lang
    site.gate(1)
    for lang, page in pages.items():
        page.wait_for_function(
            "() => document.querySelector('#f-pool .occupancy').textContent === '1'"
        )
        assert page.locator("#f-pool .unit").inner_text() == SINGULAR[lang]
        free = translations(lang).ngettext("{n} place free", "{n} places free", 99)
        assert page.locator("#f-pool .free").inner_text() == free.replace("{n}", "99")
    site.gate(62)
    for lang, page in pages.items():
        page.wait_for_function(
            "() => document.querySelector('#f-pool .occupancy').textContent === '62'"
        )
        many = translations(lang).ngettext("person", "people", 62)
        assert page.locator("#f-pool .unit").inner_text() == many != SINGULAR[lang]


def test_busier_or_quieter_than_usual_follows_the_figure_live(
    site: Site, context: BrowserContext
) -> None:
    """The sports field has weeks of history: its card compares now with the typical
    moment, by the margin the server chose, and live.js keeps comparing."""
    page = site.page(context)
    page.goto(site.hub.url + "/?lang=en")
    wait_live(page, "en")
    card = page.locator("#f-field")
    typical = float(card.get_attribute("data-typical") or "nan")
    margin = float(card.get_attribute("data-margin") or "nan")
    assert typical >= 0 and margin >= 3, (typical, margin)
    entries = 0
    publish(site.broker, SENSOR, count(site.seq("sensor"), 0, 0))  # the counter's start
    for occupancy in (round(typical + margin + 15), 0):
        entries += 1000
        exits = entries - occupancy
        publish(site.broker, SENSOR, count(site.seq("sensor"), entries, exits))
        page.wait_for_function(
            "n => document.querySelector('#f-field .occupancy').textContent === n",
            arg=str(occupancy),
        )
        wanted = (
            "busier than usual"
            if occupancy > typical + margin
            else "quieter than usual"
            if occupancy < typical - margin
            else "about as busy as usual"
        )
        assert card.locator(".versus").inner_text() == wanted, (occupancy, typical, margin)
    # The facility page says it too, from the server.
    page.goto(site.hub.url + "/facilities/field?lang=en")
    assert page.locator("#f-field .versus").inner_text() == wanted


def test_planning_saturday_on_the_facility_page(site: Site, context: BrowserContext) -> None:
    page = site.page(context)
    page.goto(site.hub.url + "/facilities/field?lang=fi")
    page.locator('nav .days a[href$="day=sat"]').click()
    page.wait_for_url("**/facilities/field?lang=fi&day=sat")
    assert page.locator('.days a[aria-current="page"]').get_attribute("href") == "?lang=fi&day=sat"
    title = page.locator("svg.day-chart title").first.text_content()
    today_is_saturday = page.evaluate(
        "new Intl.DateTimeFormat('en', {weekday: 'short', timeZone: 'Europe/Helsinki'})"
        ".format(new Date()) === 'Sat'"
    )
    assert title == (
        "Tänään ja tavallinen lauantai" if today_is_saturday else "Tavallinen lauantai"
    )
    # The typical line covers the whole day: the table has the night and the busy hours.
    page.get_by_text("Näytä taulukkona").click()
    rows = dict(
        page.eval_on_selector_all(
            "details table tbody tr",
            "rows => rows.map(r => [r.querySelector('th').textContent,"
            " r.querySelector('td:last-child').textContent])",
        )
    )
    assert rows.get("3.00") == "4" and rows.get("16.00") == "160", rows


def test_the_language_switch_and_accept_language(site: Site, browser: Browser) -> None:
    ctx = browser.new_context(viewport=PHONE, locale="sv-FI")  # sends Accept-Language: sv-FI
    try:
        page = site.page(ctx)
        page.goto(site.hub.url + "/")
        assert page.locator("html").get_attribute("lang") == "sv"
        assert page.locator("h1").inner_text() == translations("sv").gettext("How busy is it now?")
        page.get_by_role("link", name="In English").click()
        page.wait_for_url("**/?lang=en")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("h1").inner_text() == "How busy is it now?"
        wait_live(page, "en")
        page.get_by_role("link", name="Swimming hall").click()
        page.wait_for_url("**/facilities/pool?lang=en")  # the choice carries over
        assert page.locator("h1").inner_text().startswith("Swimming hall")
        page.get_by_role("link", name="Suomeksi").click()
        page.wait_for_url("**/facilities/pool?lang=fi")
        assert page.locator("h1").inner_text().startswith("Uimahalli")
        assert page.locator("#f-pool .pct-text").inner_text().endswith("kapasiteetista (100)")
    finally:
        ctx.close()


AXE_PAGES = ("/", "/facilities/pool", "/facilities/rink", "/facilities/carpets", "/about")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_in_any_language(site: Site, browser: Browser, scheme: str) -> None:
    # First as a visitor sees them, under the pages' own CSP: no errors, no violations.
    ctx = browser.new_context(viewport=PHONE, color_scheme=scheme)
    try:
        page = site.page(ctx)
        for lang in LANGUAGES:
            for path in AXE_PAGES:
                page.goto(f"{site.hub.url}{path}?lang={lang}")
                wait_live(page, lang)
    finally:
        ctx.close()
    # Then again for axe-core, whose injected script the CSP would (rightly) refuse.
    ctx = browser.new_context(viewport=PHONE, color_scheme=scheme, bypass_csp=True)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        page = site.page(ctx)
        for lang in LANGUAGES:
            for path in AXE_PAGES:
                page.goto(f"{site.hub.url}{path}?lang={lang}")
                wait_live(page, lang)
                page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
                violations = axe_violations(page)
                if violations:
                    found[f"{path}?lang={lang}"] = violations
        # The harness itself can fail: an image without a text alternative is found.
        page.evaluate("document.querySelector('main').append(document.createElement('img'))")
        assert "image-alt" in {v["id"] for v in axe_violations(page)}
    finally:
        ctx.close()
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)


def test_keyboard_only_navigation(site: Site, context: BrowserContext) -> None:
    page = site.page(context)
    page.goto(site.hub.url + "/?lang=en")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to content"
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0  # shown when focused
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    reached = []
    for _ in range(15):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if reached[-1] == "Ice rink":
            break
    # The filters first (their button last), then the cards in the list's order.
    assert "Show" in reached and "Swimming hall" in reached, reached
    first = reached.index("Swimming hall")
    assert reached.index("Show") < first and reached[first:] == ["Swimming hall", "Ice rink"]
    # The card's link covers the whole card, and its focus ring is drawn around the card.
    ring = "getComputedStyle(document.activeElement, '::after').outlineStyle"
    assert page.evaluate(ring) == "solid"
    page.keyboard.press("Enter")
    page.wait_for_url("**/facilities/rink?lang=en")
    # On the facility page the table behind the chart opens from the keyboard.
    page.goto(site.hub.url + "/facilities/pool?lang=en")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    page.keyboard.press("Enter")
    assert page.locator("details").get_attribute("open") is not None
    assert page.locator("details table").is_visible()


def test_reduced_motion_and_dark_mode_are_respected(site: Site, browser: Browser) -> None:
    animations = {}
    for motion in ("no-preference", "reduce"):
        ctx = browser.new_context(viewport=PHONE, reduced_motion=motion, color_scheme="dark")
        try:
            page = site.page(ctx)
            page.goto(site.hub.url + "/?lang=en")
            wait_live(page, "en")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(18, 20, 22)", background
            site.gate(40 if motion == "reduce" else 45)
            page.wait_for_selector("#f-pool.changed")
            animations[motion] = page.evaluate(
                "getComputedStyle(document.querySelector('#f-pool .occupancy')).animationName"
            )
        finally:
            ctx.close()
    assert animations == {"no-preference": "flash", "reduce": "none"}
    ctx = browser.new_context(viewport=PHONE, color_scheme="light")
    try:
        page = site.page(ctx)
        page.goto(site.hub.url + "/?lang=en")
        assert (
            page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
        )
    finally:
        ctx.close()


def test_the_pages_work_without_javascript(site: Site, browser: Browser) -> None:
    ctx = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = site.page(ctx)
        page.goto(site.hub.url + "/?lang=en")
        status = page.locator("#connection").inner_text()
        assert status.startswith("Figures as of ") and "Reload" in status
        assert occupancy_of(page, "pool") == str(site.hub.facility("pool")["occupancy"])
        assert page.locator("#f-rink .ice").inner_text().startswith("ice ")
        page.get_by_role("link", name="Swimming hall").click()
        assert page.locator("svg.day-chart").count() == 1
        page.get_by_role("link", name="About this service").click()
        assert page.locator("h1").inner_text() == "About this service"
    finally:
        ctx.close()


def test_the_connection_drop_is_shown_and_the_page_reconnects(
    site: Site, context: BrowserContext
) -> None:
    # Its failed reconnects log errors on purpose; any other error fails the test.
    page = site.page(context, expected=r"WebSocket connection to 'ws://[^']+' failed")
    page.goto(site.hub.url + "/?lang=en")
    wait_live(page, "en")
    site.hub.stop()
    try:
        status = page.locator("#connection.is-offline")
        status.wait_for(timeout=30_000)
        assert status.inner_text().startswith("Connection lost: figures are not updating.")
        # Backoff: the announced wait grows while the hub stays away (1 s, 2 s, 4 s ± jitter).
        waits: list[int] = []
        deadline = time.monotonic() + 60
        while len(set(waits)) < 3 and time.monotonic() < deadline:
            text = status.inner_text() if status.count() else ""
            if "in " in text:
                value = int(text.rsplit("in ", 1)[1].split()[0])
                if not waits or value != waits[-1]:
                    waits.append(value)
            page.wait_for_timeout(100)
        assert len(set(waits)) >= 3 and max(waits) >= 3, waits
    finally:
        site.hub.start()
    wait_live(page, "en")  # reconnected by itself, no reload
    site.gate(33)
    page.wait_for_function(
        "() => document.querySelector('#f-pool .occupancy').textContent === '33'"
    )


def test_first_load_is_light_first_party_and_cookie_free(site: Site, browser: Browser) -> None:
    ctx = browser.new_context(viewport=PHONE)
    sizes: list[tuple[str, int]] = []
    try:
        page = site.page(ctx)

        def finished(request: Any) -> None:
            s = request.sizes()
            sizes.append((request.url, s["responseBodySize"] + s["responseHeadersSize"]))

        page.on("requestfinished", finished)
        page.goto(site.hub.url + "/?lang=fi")
        wait_live(page, "fi")
        page.wait_for_load_state("networkidle")
        total = sum(size for url, size in sizes if not url.endswith(".jpg"))
        print(f"\nfirst load of the list page: {total} bytes in {len(sizes)} responses")
        for url, size in sizes:
            print(f"  {size:6d}  {url}")
        assert 0 < total <= FIRST_LOAD_BUDGET, total
        assert all(url.startswith(site.hub.url) for url, _ in sizes), sizes
        assert ctx.cookies() == []
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0
        # Readable at 360 px: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.goto(site.hub.url + "/facilities/pool?lang=fi")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        ctx.close()


def test_screenshots_at_phone_and_desktop_widths(site: Site, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, viewport, scheme in (
        ("phone", PHONE, "light"),
        ("desktop", DESKTOP, "light"),
        ("phone-dark", PHONE, "dark"),
    ):
        ctx = browser.new_context(viewport=viewport, color_scheme=scheme)
        try:
            page = site.page(ctx)
            for slug, path, shown in (
                ("list", "/?lang=fi", "#f-pool .occupancy"),
                ("facility", "/facilities/field?lang=en", "svg.day-chart"),
                ("rink", "/facilities/rink?lang=sv", "#f-rink .ice"),
                ("camera", "/facilities/carpets?lang=fi", "img.camera-image"),
                ("about", "/about?lang=en", "main h1"),
            ):
                page.goto(site.hub.url + path)
                wait_live(page, path.rsplit("=", 1)[1])
                assert page.locator(shown).first.is_visible(), (path, shown)
                target = ARTIFACTS / f"{slug}-{name}.png"
                picture = page.screenshot(path=str(target), full_page=True)
                width, height = png_size(picture)
                assert width == viewport["width"] and height >= viewport["height"], target
                # The page as drawn differs from the same page with nothing shown.
                page.evaluate("document.body.style.visibility = 'hidden'")
                assert page.screenshot(full_page=True) != picture, target
        finally:
            ctx.close()


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_a_policy_violation_is_seen(site: Site, context: BrowserContext) -> None:
    """The harness itself can fail: an inline script the CSP refuses is reported."""
    page = site.page(context)
    page.goto(site.hub.url + "/?lang=en")
    page.evaluate(
        "document.head.append(Object.assign(document.createElement('script'),"
        " {textContent: 'window.ran = true'}))"
    )
    wait_for(lambda: site.console_errors, 10, "the CSP report in the console")
    assert page.evaluate("window.ran") is None
    assert "Content Security Policy" in site.console_errors[0], site.console_errors
    site.console_errors.clear()


def test_the_api_docs_render_under_the_hub_s_policy(site: Site, context: BrowserContext) -> None:
    """Swagger UI and ReDoc from the hub's own files, with no CSP report (the autouse
    check) and nothing fetched from anywhere else."""
    # ReDoc's sidebar shows its maker's logo from their server; the policy refuses it.
    page = site.page(context, expected=r"Loading the image 'https://cdn\.redoc\.ly/")
    elsewhere: list[str] = []
    page.on(
        "requestfinished",
        lambda r: (
            None
            if r.url.startswith((site.hub.url, "blob:" + site.hub.url))
            else elsewhere.append(r.url)
        ),
    )
    page.goto(site.hub.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert "/api/v1/facilities/{facility_id}/history" in page.inner_text("#swagger-ui")
    page.goto(site.hub.url + "/redoc")
    page.wait_for_selector("h1", timeout=20_000)
    page.wait_for_function(
        "() => document.body.innerText.includes('/api/v1/facilities/{facility_id}/history')",
        timeout=20_000,
    )
    assert "Ruuhka open data API" in page.inner_text("h1")
    assert elsewhere == []
