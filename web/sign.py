"""``/facilities/{id}/sign``: the camera sign to print and put up where a camera watches.

Finnish and EU rules ask that people know, before they walk in front of a
camera, who watches, why, and what is kept. One A4 sheet says it in Finnish,
Swedish and English: the operator and contact from ``[site]``, what leaves the
camera and how often (``[snapshots] interval_s`` or the facility's
``snapshot_interval_s``), how long pictures are kept (``[snapshots]``), and a
QR code to the facility's page, drawn here (segno), so no outside service sees
who prints or scans it.
"""

from __future__ import annotations

from dataclasses import dataclass

import segno
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from hub.config import LANGUAGES, Facility, HubSettings
from web.i18n import Formatter, fill
from web.pages import _language, _render, templates

router = APIRouter()


@dataclass
class SignBlock:
    """The sign's text in one language."""

    lang: str
    title: str
    heading: str
    name: str
    lines: list[str]


def facility_url(settings: HubSettings, request: Request, facility: Facility) -> str:
    base = settings.site.public_url or str(request.base_url)
    return base.rstrip("/") + f"/facilities/{facility.id}"


def qr_svg(url: str, title: str) -> Markup:
    """The QR code as inline SVG, scaled by the stylesheet (viewBox, no size)."""
    code = segno.make(url, error="m")
    return Markup(code.svg_inline(scale=1, border=4, omitsize=True, title=title, light="#fff"))


def block(settings: HubSettings, facility: Facility, lang: str) -> SignBlock:
    fmt = Formatter(lang)
    t = fmt.t
    site = settings.site
    snapshots = settings.snapshots
    every = facility.snapshot_interval_s or snapshots.interval_s
    retention = fmt.duration(snapshots.retention_h * 3600)
    operator = site.operator.get(lang) or next(iter(site.operator.values()), "")
    lines = []
    if operator:
        lines.append(fill(t["sign_operator"], operator=operator))
    if site.contact:
        lines.append(fill(t["sign_contact"], contact=site.contact))
    lines += [
        fill(t["sign_purpose"], name=facility.display_name(lang)),
        t["sign_privacy"],
        fill(t["sign_published"], every=fmt.duration(every)),
        fill(
            t["sign_kept_history" if snapshots.history else "sign_kept_latest"], duration=retention
        ),
        t["sign_rights"],
    ]
    return SignBlock(lang, t["sign_title"], t["sign_heading"], facility.display_name(lang), lines)


@router.get("/facilities/{facility_id}/sign", response_class=HTMLResponse, include_in_schema=False)
def sign(
    request: Request, facility_id: str, lang: str | None = Query(default=None)
) -> HTMLResponse:
    settings: HubSettings = request.app.state.hub.settings
    language = _language(request, lang)
    fmt = Formatter(language)
    facility = settings.facility(facility_id)
    if facility is None or not any(s.camera for s in facility.sources):
        return _render(request, "not_found.html", fmt, {}, status=404)
    url = facility_url(settings, request, facility)
    # The reader's language first, then the other two.
    order = [language, *(code for code in LANGUAGES if code != language)]
    context = {
        "blocks": [block(settings, facility, code) for code in order],
        "url": url,
        "qr": qr_svg(url, url),
        "scan": " · ".join(Formatter(code).t["sign_scan"] for code in order) + ":",
        "facility": facility,
    }
    response = templates.TemplateResponse(
        request, "sign.html", {"lang": language, "t": fmt.t, **context}
    )
    response.headers["Content-Language"] = language
    response.headers["Cache-Control"] = "no-cache"
    return response
