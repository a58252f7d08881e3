"""Take the documentation's screenshots from the running demo: `python docs/screenshots.py`.

Starts `ruuhka demo` on a free port in a scratch directory, waits until every
facility has a figure, logs a piece of crew work so the pages show one, then drives
Debian's Chromium (Playwright, never its own browser download) through the pages and
writes the PNGs the docs use into docs/images/, reduced to a 256-colour palette so
they stay small. Needs `make test` (or the dev and docs extras, and `apt-get install
chromium`) done once.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1100, "height": 720}
PHONE = {"width": 360, "height": 720}
PASSWORD_RE = re.compile(r"crew '(\w+)', password (\S+)")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def demo(port: int) -> Iterator[tuple[str, str, str]]:
    """The demo as a user starts it; yields its URL and the crew account it printed."""
    with tempfile.TemporaryDirectory(prefix="ruuhka-shots-") as scratch:
        process = subprocess.Popen(
            [sys.executable, "-m", "ruuhka", "demo", "--state-dir", scratch, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 120
            for line in process.stdout:
                match = PASSWORD_RE.search(line)
                if match:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the demo printed no crew account within 2 minutes")
            else:
                raise SystemExit("the demo stopped before it was up")
            yield f"http://127.0.0.1:{port}", match.group(1), match.group(2)
        finally:
            process.terminate()
            process.wait(30)


def wait_for_figures(url: str, timeout_s: float) -> None:
    """Until every facility has a measured figure: an empty page shows nothing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/api/v1/facilities", timeout=5) as response:
            facilities = json.load(response)
        if facilities and all(f["updated_at"] for f in facilities):
            return
        time.sleep(1)
    raise SystemExit(f"no figures from every facility within {timeout_s:.0f} s")


def shoot(page: Page, name: str, out: Path) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB", flush=True)


def log_in(page: Page, url: str, crew: str, password: str, lang: str) -> None:
    page.goto(f"{url}/crew/login?lang={lang}")
    page.fill("#name", crew)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("form.crew-log", state="attached")


def crew_pages(page: Page, url: str, crew: str, password: str, out: Path) -> None:
    page.goto(f"{url}/crew/login?lang=en")
    shoot(page, "crew-login", out)
    page.goto(f"{url}/crew/login?lang=fi")
    shoot(page, "crew-login-fi", out)
    log_in(page, url, crew, password, "en")
    shoot(page, "crew-list", out)
    rink = page.locator("details", has=page.locator("input[name=facility][value=koulun-kentta]"))
    rink.first.locator("summary").first.click()
    rink.first.locator("button.crew-action[value=iced]").click()
    page.wait_for_load_state("networkidle")
    rink = page.locator("details", has=page.locator("input[name=facility][value=koulun-kentta]"))
    if rink.first.get_attribute("open") is None:
        rink.first.locator("summary").first.click()
    rink.first.locator("details.crew-more summary").click()
    shoot(page, "crew-facility", out)
    page.goto(f"{url}/crew?lang=fi")
    shoot(page, "crew-list-fi", out)


def public_pages(page: Page, url: str, out: Path) -> None:
    page.goto(f"{url}/?lang=en")
    shoot(page, "public-list", out)
    page.goto(f"{url}/facilities/uimahalli?lang=en")
    shoot(page, "public-facility", out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNGs go")
    parser.add_argument(
        "--wait", type=float, default=90, help="seconds to wait for every facility's figures"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with demo(free_port()) as (url, crew, password), sync_playwright() as playwright:
        wait_for_figures(url, args.wait)
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(
                viewport=PHONE, reduced_motion="reduce", color_scheme="light", locale="en-GB"
            )
            crew_pages(context.new_page(), url, crew, password, args.out)
            context.close()
            context = browser.new_context(
                viewport=DESKTOP, reduced_motion="reduce", color_scheme="light", locale="en-GB"
            )
            public_pages(context.new_page(), url, args.out)
            context.close()
            context = browser.new_context(
                viewport=PHONE, reduced_motion="reduce", color_scheme="light", locale="sv-FI"
            )
            phone = context.new_page()
            phone.goto(f"{url}/?lang=sv")
            shoot(phone, "public-phone-sv", args.out)
            context.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
