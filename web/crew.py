"""The crew page and its login: server-rendered forms that work without JavaScript.

``crew.js`` makes the same forms work offline: it queues entries in the browser
with the time of the tap and sends them when the connection returns.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from babel.support import Translations
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from hub.crew.accounts import MAX_PASSWORD, LoginResult
from hub.crew.auth import (
    DEVICE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Caller,
    authenticate,
    check_csrf,
    login_csrf_ok,
    same_origin,
    service,
    set_cookie,
)
from hub.crew.routes import EntryIn, announce, log_entry, overview
from hub.crew.service import CrewService
from hub.crew.vocabulary import NOTICE, Quality
from web import STATIC_DIR, TEMPLATES_DIR
from web.i18n import client_strings, negotiate, translations
from web.messages import CREW_CLIENT, CREW_QUALITIES, KINDS, NOTICE_LANGUAGES

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)

AGO_MINUTES = (0, 15, 30, 60, 120, 180, 360, 720, 1440)
# What the page's own links and forms send: plain ASCII digits of a sensible length
# (str.isdigit() admits "²", which int() refuses).
ENTRY_ID = re.compile(r"[0-9]{1,18}")
MINUTES = re.compile(r"[0-9]{1,5}")
MAX_FORM = 16 * 1024


def _lang(request: Request, lang: str | None) -> str:
    default = request.app.state.hub.settings.site.default_language
    return negotiate(lang, request.headers.get("accept-language"), default)


def _strings(lang: str) -> dict[str, Any]:
    return client_strings(lang, CREW_CLIENT)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(status_code=413, detail="form too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _words(catalog: Translations) -> dict[str, Any]:
    """The templates' ways to say things: ``_``, ``pgettext`` and the words picked at run time."""
    return {
        "_": catalog.gettext,
        "pgettext": catalog.pgettext,
        "kind_word": lambda kind: catalog.gettext(KINDS[kind]) if kind in KINDS else kind,
        "quality_word": lambda quality: catalog.gettext(CREW_QUALITIES[quality]),
        "notice_language": lambda code: catalog.gettext(NOTICE_LANGUAGES[code]),
    }


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept-Language, Cookie"
    return response


def _ago_label(minutes: int, lang: str) -> str:
    gettext = translations(lang).gettext
    if minutes == 0:
        return gettext("now")
    amount = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
    return gettext("{amount} ago").replace("{amount}", amount)


def _render_crew(
    request: Request,
    svc: CrewService,
    caller: Caller,
    lang: str,
    *,
    flash: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    now = datetime.now(UTC)
    catalog = translations(lang)
    facilities = overview(request, svc, caller, lang, now)
    assert caller.session is not None
    response = templates.TemplateResponse(
        request,
        "crew.html",
        {
            "lang": lang,
            **_words(catalog),
            "strings_json": json.dumps(_strings(lang), ensure_ascii=False),
            "crew": caller.crew.name,
            "csrf": caller.session.csrf,
            "facilities": facilities,
            "stale": [f for f in facilities if f.stale],
            "ago": [(m, _ago_label(m, lang)) for m in AGO_MINUTES],
            "qualities": [(q.value, catalog.gettext(CREW_QUALITIES[q.value])) for q in Quality],
            "notice": NOTICE,
            "flash": flash,
            "error": error,
            "languages": (("fi", "Suomeksi"), ("sv", "På svenska"), ("en", "In English")),
        },
        status_code=status_code,
    )
    # The crew page may ask where the phone is (nearest facilities first).
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(self)"
    return _no_store(response)


@router.get("/crew", response_class=HTMLResponse)
def crew_page(request: Request, lang: str | None = Query(default=None)) -> Response:
    svc = service(request)
    language = _lang(request, lang)
    caller = authenticate(request, svc, datetime.now(UTC))
    if caller is None or caller.session is None:
        return RedirectResponse(f"/crew/login?lang={language}", status_code=303)
    done = request.query_params.get("done", "")
    flash = None
    if ENTRY_ID.fullmatch(done):
        entry = svc.log.get(int(done))
        if entry is not None and entry.logged_by == caller.crew.name:
            flash = translations(language).gettext("Saved.")
    return _render_crew(request, svc, caller, language, flash=flash)


def _login_page(
    request: Request, svc: CrewService, lang: str, error: str | None, status_code: int
) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "crew_login.html",
        {
            "lang": lang,
            **_words(translations(lang)),
            "csrf": token,
            "error": error,
            "languages": (("fi", "Suomeksi"), ("sv", "På svenska"), ("en", "In English")),
        },
        status_code=status_code,
    )
    set_cookie(response, request, svc, LOGIN_CSRF_COOKIE, token, 3600, path="/crew/login")
    return _no_store(response)


async def _login_page_off_loop(
    request: Request, svc: CrewService, lang: str, error: str, status_code: int
) -> Response:
    """Rendered on a worker thread: a flood of refused logins must not hold up the
    event loop that serves everyone else."""
    return await run_in_threadpool(_login_page, request, svc, lang, error, status_code)


@router.get("/crew/sw.js")
def service_worker() -> Response:
    """The crew page's service worker, served from /crew so that it may control /crew."""
    return FileResponse(
        STATIC_DIR / "crew-sw.js",
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": "/crew", "Cache-Control": "no-cache"},
    )


@router.get("/crew/login", response_class=HTMLResponse)
def login_page(request: Request, lang: str | None = Query(default=None)) -> Response:
    svc = service(request)
    return _login_page(request, svc, _lang(request, lang), None, 200)


@router.post("/crew/login", response_class=HTMLResponse)
async def login(request: Request, lang: str | None = Query(default=None)) -> Response:
    svc = service(request)
    language = _lang(request, lang)
    gettext = translations(language).gettext
    form = await _form(request)
    if not same_origin(request) or not login_csrf_ok(request, form.get("csrf")):
        svc.metrics.csrf_rejected.inc()
        return await _login_page_off_loop(
            request, svc, language, gettext("The form expired. Please log in again."), 403
        )
    name = form.get("name", "")
    password = form.get("password", "")[: MAX_PASSWORD + 1]
    address = request.client.host if request.client else "unknown"
    device = request.cookies.get(DEVICE_COOKIE)
    outcome = await svc.login(name, password, address, device, datetime.now(UTC))
    svc.metrics.logins.labels(outcome.result.value).inc()
    if outcome.result is LoginResult.OK and outcome.crew is not None:
        token, _ = await run_in_threadpool(svc.sessions.create, outcome.crew, datetime.now(UTC))
        response = RedirectResponse(f"/crew?lang={language}", status_code=303)
        set_cookie(response, request, svc, SESSION_COOKIE, token, svc.settings.session_lifetime_s)
        if outcome.device_token:
            set_cookie(response, request, svc, DEVICE_COOKIE, outcome.device_token,
                       svc.settings.known_device_s, path="/crew/login")  # fmt: skip
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/crew/login")
        return response
    if outcome.result is LoginResult.WRONG:
        message = gettext("Wrong user name or password.")
        return await _login_page_off_loop(request, svc, language, message, 401)
    if outcome.result is LoginResult.BUSY:
        message = gettext("Many logins are being checked right now. Try again in a moment.")
        response = await _login_page_off_loop(request, svc, language, message, 503)
    else:
        minutes = max(1, -(-outcome.retry_after_s // 60))
        message = gettext("Too many attempts. Try again in {minutes} min.").replace(
            "{minutes}", str(minutes)
        )
        response = await _login_page_off_loop(request, svc, language, message, 429)
    response.headers["Retry-After"] = str(outcome.retry_after_s)
    return response


@router.post("/crew/logout")
async def logout(request: Request, lang: str | None = Query(default=None)) -> Response:
    svc = service(request)
    form = await _form(request)
    caller = authenticate(request, svc, datetime.now(UTC))
    if caller is not None:
        check_csrf(request, svc, caller, form.get("csrf"))
        svc.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"/crew/login?lang={_lang(request, lang)}", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _form_entry(form: dict[str, str], now: datetime, svc: CrewService) -> dict[str, Any]:
    """The plain form's fields as an entry: "done N minutes ago", or a local time."""
    facility = svc.hub_settings.facility(form.get("facility", ""))
    zone = facility.zone if facility is not None else UTC
    at, ago = form.get("at", "").strip(), form.get("ago", "0").strip() or "0"
    performed: str = at  # a value the form cannot have made is refused by the model, saying why
    if at:
        with contextlib.suppress(ValueError):
            performed = datetime.fromisoformat(at).replace(tzinfo=zone).isoformat()
    elif MINUTES.fullmatch(ago):
        performed = (now - timedelta(minutes=int(ago))).isoformat()
    else:
        performed = ago
    notice = {
        lang: form[f"notice_{lang}"] for lang in ("fi", "sv", "en") if form.get(f"notice_{lang}")
    }
    return {
        "facility": form.get("facility", ""),
        "action": form.get("action", ""),
        "quality": form.get("quality") or None,
        "performed_at": performed,
        "notice": notice or None,
    }


@router.post("/crew/log")
async def log_form(request: Request, lang: str | None = Query(default=None)) -> Response:
    """The no-JavaScript way to log: the same checks as the JSON API."""
    svc = service(request)
    language = _lang(request, lang)
    form = await _form(request)
    now = datetime.now(UTC)
    caller = authenticate(request, svc, now)
    if caller is None or caller.session is None:
        return RedirectResponse(f"/crew/login?lang={language}", status_code=303)
    check_csrf(request, svc, caller, form.get("csrf"))
    try:
        body = EntryIn.model_validate(_form_entry(form, now, svc))
    except ValidationError as exc:
        svc.metrics.refused("invalid", str(exc.errors(include_url=False))[:300])
        error = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
        return _render_crew(request, svc, caller, language, error=error, status_code=422)
    try:
        entry, facility, _ = await run_in_threadpool(log_entry, svc, caller, body, now)
    except HTTPException as exc:
        return _render_crew(
            request, svc, caller, language, error=str(exc.detail), status_code=exc.status_code
        )
    announce(request, facility.id)
    return RedirectResponse(
        f"/crew?lang={language}&done={entry.id}#f-{facility.id}", status_code=303
    )
