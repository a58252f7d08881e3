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
    _ = fmt.gettext
    site = settings.site
    snapshots = settings.snapshots
    every = facility.snapshot_interval_s or snapshots.interval_s
    retention = fmt.duration(snapshots.retention_h * 3600)
    operator = site.operator.get(lang) or next(iter(site.operator.values()), "")
    lines = []
    if operator:
        lines.append(fill(_("Operator: {operator}"), operator=operator))
    if site.contact:
        lines.append(fill(_("Contact: {contact}"), contact=site.contact))
    lines += [
        fill(
            _(
                "Purpose: to show residents online how busy {name} is, "
                "so that they can come when there is room."
            ),
            name=facility.display_name(lang),
        ),
        _(
            "People are hidden in the picture on the camera itself: "
            "no picture in which a person could be recognised leaves the device."
        ),
        fill(
            _(
                "Published: a picture with people hidden, and the number of people "
                "and washing spots in use, at intervals of about {every}."
            ),
            every=fmt.duration(every),
        ),
        fill(
            _("Kept: the pictures for {duration}, then deleted.")
            if snapshots.history
            else _("Kept: only the newest picture, never for longer than {duration}."),
            duration=retention,
        ),
        _("You have the right to ask the operator what is kept about you."),
    ]
    return SignBlock(
        lang,
        _("Camera surveillance"),
        _("This area is watched by a camera"),
        facility.display_name(lang),
        lines,
    )


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
        "scan": " · ".join(Formatter(code).gettext("See it online") for code in order) + ":",
        "facility": facility,
    }
    response = templates.TemplateResponse(
        request, "sign.html", {"lang": language, "_": fmt.gettext, **context}
    )
    response.headers["Content-Language"] = language
    response.headers["Cache-Control"] = "no-cache"
    return response
