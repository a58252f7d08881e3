"""The map view in a real browser, over a local tile server: 150 places of a made-up
city as markers that say their level in colour and in words, reachable by keyboard
and screen reader, live, under a policy that admits exactly the tile server."""

from __future__ import annotations

import html as html_module
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ruuhka.broker import Broker
from ruuhka.city import Place
from ruuhka.contract import FacilityState, facility_state_topic
from tests.browser_support import PHONE, axe_violations, chromium
from tests.city_support import city_hub
from tests.conftest import HubProcess, mosquitto_pub
from tests.tile_server import TileServer, tile_server
from web.i18n import LANGUAGES

ATTRIBUTION = "© Test map makers"


class MapSite:
    def __init__(self, hub: HubProcess, places: list[Place], broker: Broker, tiles: TileServer):
        self.hub = hub
        self.places = places
        self.broker = broker
        self.tiles = tiles
        self.errors: list[str] = []
        self.requests: list[str] = []

    def page(self, browser: Browser, **options: Any) -> Page:
        options.setdefault("viewport", PHONE)
        page = browser.new_context(**options).new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: self.requests.append(r.url))
        return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MapSite]:
    with tile_server() as tiles:
        base = tmp_path_factory.mktemp("map")
        with city_hub(base, site=tiles.site_toml(ATTRIBUTION)) as (hub, places, broker):
            yield MapSite(hub, places, broker, tiles)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(autouse=True)
def no_script_errors(site: MapSite) -> Iterator[None]:
    site.errors.clear()
    yield
    assert site.errors == [], site.errors


def open_map(page: Page, url: str) -> int:
    """Load the map view and wait for its markers; how many there are."""
    page.goto(url)
    page.wait_for_function("() => document.querySelectorAll('#map a.pin').length > 0")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#map img.leaflet-tile'))"
        ".some(i => i.complete && i.naturalWidth === 256)"
    )
    return page.locator("#map a.pin").count()


def pins(page: Page) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#map a.pin",
        """els => els.map(a => ({href: a.getAttribute('href'), text: a.textContent,
            label: a.getAttribute('aria-label'), cls: a.className,
            colour: getComputedStyle(a).borderTopColor}))""",
    )


def test_every_listed_place_is_a_marker_in_its_level_colour_and_word(
    site: MapSite, browser: Browser
) -> None:
    page = site.page(browser, locale="en-GB")
    try:
        assert open_map(page, site.hub.url + "/?lang=en&view=map&kind=ice_rink") == 25
        cards = page.eval_on_selector_all(
            "#facilities .facility",
            """els => els.map(e => ({href: e.querySelector('.card-link').getAttribute('href'),
                name: e.querySelector('h2').textContent.trim(),
                level: e.querySelector('.level-word').textContent,
                colour: getComputedStyle(e.querySelector('.level-word')).color}))""",
        )
        by_href = {c["href"]: c for c in cards}
        shown = pins(page)
        assert {p["href"] for p in shown} == set(by_href)  # the same places as the list
        colours: dict[str, set[str]] = {}
        for pin in shown:
            card = by_href[pin["href"]]
            level = re.search(r"level-(\w+)", pin["cls"])
            assert level is not None and pin["text"] == card["level"], (pin, card)
            assert pin["label"].startswith(card["name"] + ": " + card["level"] + ", "), pin
            assert pin["colour"] == card["colour"]  # the card's level colour
            colours.setdefault(level.group(1), set()).add(pin["colour"])
        assert len(colours) >= 3, colours  # several levels, each its own colour
        assert all(len(c) == 1 for c in colours.values())
        assert len({c.pop() for c in colours.values()}) == len(colours)
        attribution = page.locator(".leaflet-control-attribution").inner_text()
        assert ATTRIBUTION in attribution
        # Tiles came from the configured server only, with no more than our origin as referrer.
        hub_origin, tile_origin = site.hub.url, site.tiles.origin
        assert all(u.startswith((hub_origin, tile_origin, "data:")) for u in site.requests)
        assert site.tiles.requests
        for _, headers in site.tiles.requests:
            assert headers.get("Referer", hub_origin + "/") == hub_origin + "/", headers
    finally:
        page.context.close()


def test_a_marker_is_reached_by_keyboard_and_opens_its_place(
    site: MapSite, browser: Browser
) -> None:
    page = site.page(browser, locale="fi-FI")
    try:
        open_map(page, site.hub.url + "/?lang=fi&view=map&kind=library")
        first = pins(page)[0]
        page.locator("#map").focus()
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('pin')"):
                break
        focused = page.evaluate("document.activeElement.getAttribute('href')")
        assert focused == first["href"]
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
        tooltip = page.locator(".leaflet-tooltip")
        tooltip.wait_for()
        name = first["label"].split(":")[0]
        assert tooltip.inner_text().startswith(name)
        page.keyboard.press("Enter")
        page.wait_for_url("**" + first["href"])
        assert page.get_by_role("heading", level=1).inner_text() == name
        # The skip link jumps past the map to the list.
        open_map(page, site.hub.url + "/?lang=fi&view=map&kind=library")
        page.get_by_role("link", name="Ohita kartta").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "result-count"
    finally:
        page.context.close()


def test_a_marker_follows_its_card_live(site: MapSite, browser: Browser) -> None:
    gym = next(p for p in site.places if p.kind == "gym")
    assert gym.capacity is not None
    page = site.page(browser, locale="sv-FI")
    try:
        open_map(page, site.hub.url + "/?lang=sv&view=map&kind=gym")
        page.wait_for_function(
            "text => document.getElementById('connection').textContent === text",
            arg="Värdena uppdateras automatiskt.",
        )
        state = FacilityState(facility=gym.id, revision=50, occupancy=gym.capacity,
                              updated_at=datetime.now(UTC))  # fmt: skip
        mosquitto_pub(site.broker, facility_state_topic(gym.id), state.model_dump_json())
        pin = page.locator(f'#map a.pin[href^="/facilities/{gym.id}?"]')
        page.wait_for_function(
            'id => document.querySelector(`#map a.pin[href^="/facilities/${id}?"]`)'
            ".classList.contains('level-full')",
            arg=gym.id,
        )
        assert pin.inner_text() == "fullt"
        assert f"{gym.capacity} personer" in (pin.get_attribute("aria-label") or "")
    finally:
        page.context.close()


def test_the_policy_admits_exactly_the_tile_server_and_only_on_the_map(site: MapSite) -> None:
    from tests.test_web import get_page

    _, html, headers = get_page(site.hub, "/?lang=en&view=map")
    policy = dict(
        part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
    )
    assert policy["img-src"] == f"'self' data: {site.tiles.origin}"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert "leaflet" in html and 'id="map"' in html
    _, html, headers = get_page(site.hub, "/?lang=en")
    assert "img-src 'self' data:;" in headers["Content-Security-Policy"]
    assert "leaflet" not in html and 'id="map"' not in html  # the map loads only when asked
    assert 'href="/?lang=en&amp;view=map"' in html  # but it is offered
    _, html, _ = get_page(site.hub, "/about?lang=en")
    expected = f"The map's pictures come from 127.0.0.1:{site.tiles.port} ({ATTRIBUTION})"
    assert expected in html_module.unescape(html)


def test_without_javascript_the_map_view_is_the_list(site: MapSite, browser: Browser) -> None:
    page = site.page(browser, java_script_enabled=False)
    try:
        page.goto(site.hub.url + "/?lang=en&view=map&kind=gym")
        assert page.locator("#map").is_hidden() and page.locator(".skip-map").is_hidden()
        assert page.locator("#facilities .facility").count() == 25
        assert "The map needs JavaScript" in page.locator("main").inner_text()
    finally:
        page.context.close()


def test_the_list_view_asks_for_no_map_nor_tiles(site: MapSite, browser: Browser) -> None:
    before = len(site.tiles.requests)
    page = site.page(browser)
    site.requests.clear()
    try:
        page.goto(site.hub.url + "/?lang=fi")
        page.wait_for_load_state("networkidle")
        assert not [u for u in site.requests if "leaflet" in u or "map." in u], site.requests
        assert len(site.tiles.requests) == before
    finally:
        page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_the_map(site: MapSite, browser: Browser, scheme: str) -> None:
    page = site.page(browser, color_scheme=scheme, bypass_csp=True)
    found: dict[str, Any] = {}
    try:
        for lang in LANGUAGES:
            path = f"/?lang={lang}&view=map&kind=swimming_hall&sort=quiet"
            open_map(page, site.hub.url + path)
            violations = axe_violations(page)
            if violations:
                found[path] = violations
    finally:
        page.context.close()
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)
