"""The public page, server-rendered so that it is correct without JavaScript."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from hub.facilities import FacilityOut, present
from web import TEMPLATES_DIR
from web.i18n import catalog, negotiate

router = APIRouter()
templates = Jinja2Templates(directory=TEMPLATES_DIR)
LANGUAGE_LABELS = (("fi", "Suomeksi"), ("sv", "På svenska"), ("en", "In English"))


def age_text(f: FacilityOut, t: dict[str, str]) -> str:
    if f.age_s is None:
        return t["no_data"]
    if f.age_s < 60:
        return f"{t['updated']} {t['just_now']}"
    minutes = int(f.age_s // 60)
    amount = f"{minutes} {t['min']}" if minutes < 60 else f"{minutes // 60} {t['h']}"
    return f"{t['updated']} {amount} {t['ago']}"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, lang: str | None = Query(default=None)) -> HTMLResponse:
    hub = request.app.state.hub
    language = negotiate(
        lang, request.headers.get("accept-language"), hub.settings.site.default_language
    )
    t = catalog(language)
    now = datetime.now(UTC)
    facilities = []
    for facility in hub.settings.facilities:
        out = present(facility, hub.live.states.get(facility.id), language, now)
        facilities.append({**out.model_dump(), "age_text": age_text(out, t)})
    response = templates.TemplateResponse(
        request,
        "index.html",
        {
            "lang": language,
            "t": t,
            "strings_json": json.dumps(t, ensure_ascii=False),
            "facilities": facilities,
            "languages": LANGUAGE_LABELS,
            "site_title": hub.settings.site.title.get(language, "Ruuhka"),
        },
    )
    response.headers["Vary"] = "Accept-Language"
    response.headers["Cache-Control"] = "no-cache"
    return response
