"""Page weight of the public pages at city scale: what a phone downloads at first load.

A hub with a made-up city (150 facilities of six kinds, ruuhka.city) on a private
broker; Debian's Chromium (Playwright) loads each page with an empty cache and
this script adds up the bytes on the wire of every response (headers and encoded
body, as the browser's network log reports them). The list page must stay within
60 KB (HTML+CSS+JS, gzip); the process exits 1 when a budget is not met.

    ruuhka-bench pages [--facilities 150] [--budget-kb 60]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from hubrun import HubProcess, write_hub_config  # bench/, next to this file
from playwright.sync_api import sync_playwright

from ruuhka.broker import free_port, start_broker
from ruuhka.city import city, facilities_toml, seed_states

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
    places = city(args.facilities)
    with tempfile.TemporaryDirectory(prefix="ruuhka-pages-") as tmp:
        base = Path(tmp)
        port = free_port()
        with start_broker(base / "broker", prefer="mosquitto") as broker:
            config = base / "hub.toml"
            write_hub_config(config, broker.url, base / "hub.db", port, "bench-pages",
                             facilities_toml(places))  # fmt: skip
            seed_states(base / "hub.db", places, datetime.now(UTC))
            hub = HubProcess(config, port, base / "hub.log")
            try:
                hub.wait_connected()
                met = True
                kinds = len({p.kind for p in places})
                print(f"{len(places)} facilities of {kinds} kinds; budget {args.budget_kb:g} KB")
                for name, path, limit in (
                    ("list", "/?lang=fi", budget),
                    ("list, filtered", "/?lang=fi&kind=ice_rink&open=1&sort=quiet", budget),
                    ("facility", f"/facilities/{places[0].id}?lang=fi", budget),
                    ("about", "/about?lang=fi", budget),
                ):
                    sizes = first_load(hub.url + path)
                    total = sum(size for _, size in sizes)
                    with urllib.request.urlopen(hub.url + path) as response:
                        raw = response.read()  # uncompressed, for comparison
                    ok = total <= limit
                    if path.startswith("/?") and "kind=" not in path:
                        missing = [p.id for p in places if p.names[0] not in raw.decode()]
                        ok &= not missing  # every name is in the server-rendered HTML
                        print(f"names server-rendered: {len(places) - len(missing)}/{len(places)}")
                    met &= ok
                    print(f"{name:16s} {total / 1024:6.1f} KB on the wire in {len(sizes)} "
                          f"responses (HTML {len(raw) / 1024:.1f} KB uncompressed, "
                          f"{len(gzip.compress(raw)) / 1024:.1f} KB gzipped) "
                          f"{'ok' if ok else 'OVER BUDGET'}")  # fmt: skip
                    for url, size in sizes:
                        print(f"    {size:7d}  {url.removeprefix(hub.url)}")
            finally:
                hub.stop()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
