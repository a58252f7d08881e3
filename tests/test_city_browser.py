"""A whole city in a real browser: 150 facilities of six kinds, and a resident
who wants the nearest open rink that was iced today, in a few taps."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page

from ruuhka.city import CENTRE, Place
from tests.browser_support import PHONE, axe_violations, chromium
from tests.city_support import Work, city_hub
from tests.conftest import HubProcess, http_get
from tests.web_support import HELSINKI
from web.i18n import LANGUAGES, translations

HERE = {"latitude": CENTRE[0], "longitude": CENTRE[1]}


def km(place: Place) -> float:
    """The test's own great-circle distance, to check the page's order against."""
    rad = math.pi / 180
    a = (
        math.sin((place.lat - CENTRE[0]) * rad / 2) ** 2
        + math.cos(CENTRE[0] * rad)
        * math.cos(place.lat * rad)
        * math.sin((place.lon - CENTRE[1]) * rad / 2) ** 2
    )
    return 12742 * math.asin(math.sqrt(a))


class City:
    def __init__(self, hub: HubProcess, places: list[Place]) -> None:
        self.hub = hub
        self.places = places
        rinks = sorted((p for p in places if p.kind == "ice_rink"), key=km)
        self.open_rinks = [p for p in rinks if p.open]
        self.closed_rinks = [p for p in rinks if not p.open]
        # The nearest open rink was iced days ago (expired); the next one today.
        self.expired = self.open_rinks[0]
        self.iced_today = self.open_rinks[1]
        self.errors: list[str] = []

    def page(self, browser: Browser, **options: Any) -> Page:
        context = browser.new_context(viewport=PHONE, **options)
        page = context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        return page


def _earlier_today() -> timedelta:
    """Five minutes ago, or local midnight if that was sooner: "today" at any hour."""
    local = datetime.now(HELSINKI)
    return min(timedelta(minutes=5), local - datetime.combine(local.date(), time(), HELSINKI))


def _work(places: list[Place]) -> list[Work]:
    rinks = sorted((p for p in places if p.kind == "ice_rink"), key=km)
    open_rinks = [p for p in rinks if p.open]
    closed = [p for p in rinks if not p.open]
    today = _earlier_today()
    return [
        Work(open_rinks[0].id, "iced", timedelta(days=3)),
        Work(open_rinks[1].id, "iced", today),
        Work(open_rinks[2].id, "iced", today),
        Work(closed[0].id, "iced", today),  # iced, but closed: filtered out
    ]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    from ruuhka.city import city as make_city

    with city_hub(tmp_path_factory.mktemp("city"), work=_work(make_city())) as (hub, places, _):
        yield City(hub, places)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(autouse=True)
def no_script_errors(city: City) -> Iterator[None]:
    """Every test fails on an error any of its pages logged (CSP violations included)."""
    city.errors.clear()
    yield
    assert city.errors == [], city.errors


def cards(page: Page) -> list[str]:
    return page.eval_on_selector_all("#facilities .facility", "els => els.map(e => e.dataset.id)")


def test_the_nearest_open_rink_iced_today_in_a_few_taps(city: City, browser: Browser) -> None:
    page = city.page(browser, geolocation=HERE, permissions=["geolocation"], locale="en-GB")
    try:
        page.goto(city.hub.url + "/?lang=en")
        assert len(cards(page)) == 150
        page.get_by_label("Kind").select_option("ice_rink")
        page.get_by_label("Open now only").check()
        page.get_by_label("Order").select_option("near")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**/?lang=en&q=&kind=ice_rink&sort=near&open=1")
        page.wait_for_function(
            "text => document.getElementById('sort-status').textContent === text",
            arg="Nearest first. Your location is used only on your device.",
        )
        shown = cards(page)
        assert shown == [p.id for p in city.open_rinks], shown  # open rinks only, nearest first
        assert not set(shown) & {p.id for p in city.closed_rinks}
        count = page.locator("#result-count").inner_text()
        assert count == f"{len(city.open_rinks)} of 150 places", count
        first = page.locator(f"#f-{city.expired.id}")
        assert first.locator(".condition").inner_text() == (
            "No recent maintenance logged — last: iced 3 days ago"
        )
        distance = first.locator(".distance").inner_text()
        assert distance.endswith(" km away"), distance
        iced = page.locator("#facilities .facility", has_text="Iced today").first
        assert iced.get_attribute("data-id") == city.iced_today.id
        # The whole card is the tap target: every corner of it is the card's link...
        iced.scroll_into_view_if_needed()
        corners = iced.evaluate(
            """card => { const r = card.getBoundingClientRect();
                return [[r.left + 3, r.top + 3], [r.right - 3, r.top + 3],
                        [r.left + 3, r.bottom - 3], [r.right - 3, r.bottom - 3]].map(([x, y]) =>
                    document.elementFromPoint(x, y).closest('a.card-link') ===
                    card.querySelector('a.card-link')); }"""
        )
        assert corners == [True] * 4, corners
        # ...and a tap on its figures opens the place.
        iced.locator(".age").scroll_into_view_if_needed()
        box = iced.locator(".age").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_url(f"**/facilities/{city.iced_today.id}?lang=en")
        heading = page.get_by_role("heading", level=1)
        assert heading.inner_text() == city.iced_today.names[2]  # the kind word is not in it
    finally:
        page.context.close()


def test_without_javascript_the_filters_work_on_the_server(city: City, browser: Browser) -> None:
    page = city.page(browser, java_script_enabled=False)
    try:
        page.goto(city.hub.url + "/?lang=fi")
        _ = translations("fi").gettext
        page.get_by_label(_("Name")).fill("kallio")
        page.get_by_role("button", name=_("Show")).click()
        page.wait_for_url("**/?lang=fi&q=kallio**")
        names = page.eval_on_selector_all("#facilities h2", "els => els.map(e => e.textContent)")
        assert names and all(name.startswith("Kallio") for name in names), names
        page.goto(city.hub.url + "/?lang=fi&kind=ice_rink&open=1&sort=quiet")
        shown = cards(page)
        assert sorted(shown) == sorted(p.id for p in city.open_rinks)
        occupancy = [
            next(p.occupancy / p.capacity for p in city.places if p.id == i)  # type: ignore[operator]
            for i in shown
        ]
        assert occupancy == sorted(occupancy)  # quietest first, by share of capacity
    finally:
        page.context.close()


def test_a_refused_location_keeps_the_order_and_says_so(city: City, browser: Browser) -> None:
    page = city.page(browser, locale="sv-FI")  # no geolocation permission given
    try:
        page.goto(city.hub.url + "/?lang=sv&kind=ice_rink&sort=near")
        page.wait_for_function(
            "text => document.getElementById('sort-status').textContent === text",
            arg=translations("sv").gettext(
                "Could not get your location, so the list is in the usual order."
            ),
        )
        rinks = [p.id for p in city.places if p.kind == "ice_rink"]
        assert cards(page) == rinks  # the usual order
    finally:
        page.context.close()


def test_only_the_list_may_ask_for_the_location(city: City) -> None:
    from tests.test_web import get_page

    _, _, headers = get_page(city.hub, "/?lang=en")
    assert headers["Permissions-Policy"] == "camera=(), microphone=(), geolocation=(self)"
    for path in ("/facilities/gym-003", "/about", "/api/v1/facilities"):
        _, _, headers = get_page(city.hub, path)
        assert "geolocation=()" in headers["Permissions-Policy"], path
    odd = urlencode({"kind": "\x00", "q": "x" * 5000, "open": "maybe", "sort": "' or 1"})
    status, _ = http_get(f"{city.hub.url}/?{odd}")
    assert status == 200  # odd filters are ignored, never an error


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_the_filtered_city(city: City, browser: Browser, scheme: str) -> None:
    paths = [
        path
        for lang in LANGUAGES
        for path in (
            f"/?lang={lang}&kind=ice_rink&open=1&sort=quiet",
            f"/?lang={lang}&q=zzz",  # nothing matches
            f"/facilities/{city.expired.id}?lang={lang}&day=sat",
        )
    ]
    # First as a visitor sees them, under the pages' own CSP (errors fail the test).
    page = city.page(browser, color_scheme=scheme)
    try:
        for path in paths:
            page.goto(city.hub.url + path)
    finally:
        page.context.close()
    # Then for axe-core, whose injected script the CSP would (rightly) refuse.
    page = city.page(browser, color_scheme=scheme, bypass_csp=True)
    found: dict[str, Any] = {}
    try:
        for path in paths:
            page.goto(city.hub.url + path)
            violations = axe_violations(page)
            if violations:
                found[path] = violations
    finally:
        page.context.close()
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)


def _get(url: str, **headers: str) -> tuple[int, bytes, Any]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def test_public_responses_are_gzipped_and_the_crew_pages_never(city: City) -> None:
    import gzip
    import re

    url = city.hub.url
    status, body, headers = _get(url + "/?lang=en", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    html = gzip.decompress(body).decode()
    assert len(body) < len(html) / 5  # 150 cards compress well
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert {a.rsplit("/", 1)[1].split(".")[0] for a in assets} >= {"style", "live", "near"}
    for asset in assets:
        status, body, headers = _get(url + asset, **{"Accept-Encoding": "gzip"})
        assert status == 200 and "immutable" in headers["Cache-Control"], asset
        if not asset.endswith(".svg") or len(body) > 500:
            assert headers.get("Content-Encoding") == "gzip", asset
    _, _, headers = _get(url + "/static/style.css")  # the plain name: asked again each time
    assert headers["Cache-Control"] == "no-cache"
    status, _, _ = _get(url + "/static/style.000000000000.css")
    assert status == 404
    _, _, headers = _get(url + "/api/v1/facilities", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    # The login form carries a CSRF token: never compressed (BREACH).
    status, body, headers = _get(url + "/crew/login?lang=en", **{"Accept-Encoding": "gzip"})
    assert status == 200 and b'name="csrf"' in body
    assert headers.get("Content-Encoding") is None


def test_without_a_tile_server_there_is_no_map(city: City, browser: Browser) -> None:
    from tests.test_web import get_page

    for path in ("/?lang=en", "/?lang=en&view=map"):
        _, html, headers = get_page(city.hub, path)
        assert "leaflet" not in html and 'id="map"' not in html and "view=map" not in html
        assert "img-src 'self' data:;" in headers["Content-Security-Policy"]
    _, html, _ = get_page(city.hub, "/about?lang=en")
    assert "loads nothing from other servers." in html and "The map" not in html
    page = city.page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(city.hub.url + "/?lang=fi&view=map")
        page.wait_for_load_state("networkidle")
        assert requests and all(u.startswith(city.hub.url) for u in requests), requests
    finally:
        page.context.close()
