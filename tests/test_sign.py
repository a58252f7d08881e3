"""The camera sign, printed by a real browser: one A4 page in three languages,
whose QR code leads to the facility's page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser

from tests.browser_support import axe_violations, chromium
from tests.conftest import HubProcess, http_get
from tests.web_support import web_hub

# An A4 page in PDF points (210 x 297 mm), and how a PDF names each of its pages.
A4_POINTS = (595.3, 841.9)
PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with web_hub(tmp_path_factory.mktemp("sign")) as (_, process):
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_sign_prints_on_one_a4_page_and_its_code_opens_the_facility(
    hub: HubProcess, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(device_scale_factor=3)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(hub.url + "/facilities/carpets/sign?lang=sv")
        assert page.locator("html").get_attribute("lang") == "sv"
        headings = page.locator("section.language").evaluate_all(
            "s => s.map(e => e.getAttribute('lang'))"
        )
        assert headings == ["sv", "fi", "en"]  # the reader's language first
        pdf = page.pdf(format="A4", print_background=True)
        (tmp_path / "sign.pdf").write_bytes(pdf)
        assert len(PAGE_OBJECT.findall(pdf)) == 1, "the sign must fit one sheet"
        ((width, height),) = MEDIA_BOX.findall(pdf)
        assert abs(float(width) - A4_POINTS[0]) < 2 and abs(float(height) - A4_POINTS[1]) < 2
        # The QR code as drawn (at print-like resolution): a phone must read the address.
        code = page.locator(".qr svg")
        picture = cv2.imdecode(np.frombuffer(code.screenshot(), np.uint8), cv2.IMREAD_GRAYSCALE)
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(picture)
        assert text == hub.url + "/facilities/carpets"
        assert page.locator("a.url").get_attribute("href") == text
        assert errors == []  # nothing refused by the page's own policy
    finally:
        context.close()
    context = browser.new_context(bypass_csp=True)  # axe is a script of its own
    try:
        page = context.new_page()
        for lang in ("fi", "sv", "en"):
            page.goto(hub.url + f"/facilities/carpets/sign?lang={lang}")
            assert axe_violations(page) == [], lang
    finally:
        context.close()


def test_only_a_camera_has_a_sign(hub: HubProcess) -> None:
    status, _ = http_get(hub.url + "/facilities/pool/sign")
    assert status == 404
    status, _ = http_get(hub.url + "/facilities/nowhere/sign")
    assert status == 404
