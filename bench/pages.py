"""Page weight of the public pages at city scale: what a phone downloads at first load.

A hub with a made-up city (150 facilities of six kinds, ruuhka.city, and one
carpet-washing place whose camera has sent a picture) on a private broker, with a
local tile server for the map; Debian's Chromium (Playwright) loads each page with
an empty cache and this script adds up the bytes on the wire of every response
(headers and encoded body, as the browser's network log reports them). The list
page, with its camera thumbnail, must stay within 60 KB (HTML+CSS+JS+picture,
gzip); the map view (Leaflet and the tiles, loaded only when asked for) is
reported, not budgeted. The process exits 1 when a budget is not met.

    ruuhka-bench pages [--facilities 150] [--budget-kb 60]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import urllib.request

from cityhub import CAMERA_FACILITY, city_hub  # bench/, next to this file
from playwright.sync_api import sync_playwright

from tests.tile_server import tile_server  # the tests' local tile server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PHONE = {"width": 360, "height": 780}


def first_load(url: str) -> list[tuple[str, int]]:
    """(URL, bytes on the wire) of every response of one first visit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport=PHONE, locale="fi-FI")
            page = context.new_page()
            sizes: list[tuple[str, int]] = []

            def finished(request: object) -> None:
                s = request.sizes()  # type: ignore[attr-defined]
                sizes.append((request.url, s["responseBodySize"] + s["responseHeadersSize"]))  # type: ignore[attr-defined]

            page.on("requestfinished", finished)
            page.goto(url)
            page.wait_for_load_state("networkidle")
            context.close()
            return sizes
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facilities", type=int, default=150)
    parser.add_argument("--budget-kb", type=float, default=60.0)
    args = parser.parse_args()
    budget = args.budget_kb * 1024
    with tile_server() as tiles, city_hub(args.facilities, tiles.site_toml()) as (hub, places):
        met = True
        kinds = len({p.kind for p in places})
        print(f"{len(places)} facilities of {kinds} kinds and a camera place; "
              f"budget {args.budget_kb:g} KB")  # fmt: skip
        for name, path, limit in (
            ("list", "/?lang=fi", budget),
            ("list, filtered", "/?lang=fi&kind=ice_rink&open=1&sort=quiet", budget),
            ("facility", f"/facilities/{places[0].id}?lang=fi", budget),
            ("camera place", f"/facilities/{CAMERA_FACILITY}?lang=fi", budget),
            ("about", "/about?lang=fi", budget),
            ("map view", "/?lang=fi&view=map", None),
        ):
            sizes = first_load(hub.url + path)
            total = sum(size for _, size in sizes)
            with urllib.request.urlopen(hub.url + path) as response:
                raw = response.read()  # uncompressed, for comparison
            ok = limit is None or total <= limit
            if path == "/?lang=fi":
                missing = [p.id for p in places if p.names[0] not in raw.decode()]
                ok &= not missing  # every name is in the server-rendered HTML
                thumbnails = [u for u, _ in sizes if "snapshot.jpg" in u]
                ok &= len(thumbnails) == 1  # the camera's thumbnail is part of the load
                print(f"names server-rendered: {len(places) - len(missing)}/{len(places)}; "
                      f"camera thumbnails loaded: {len(thumbnails)}")  # fmt: skip
            met &= ok
            verdict = "not budgeted" if limit is None else "ok" if ok else "OVER BUDGET"
            print(f"{name:16s} {total / 1024:6.1f} KB on the wire in {len(sizes)} "
                  f"responses (HTML {len(raw) / 1024:.1f} KB uncompressed, "
                  f"{len(gzip.compress(raw)) / 1024:.1f} KB gzipped) {verdict}")  # fmt: skip
            for url, size in sizes:
                print(f"    {size:7d}  {url.removeprefix(hub.url)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
