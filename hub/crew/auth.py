"""Who is asking: a session cookie (with CSRF protection) or an API token.

Cookies are HttpOnly and SameSite=Strict, and Secure whenever the request came
over https. A request authenticated by its cookie must also carry the session's
CSRF token and must not come from a foreign origin; a bearer token carries no
ambient authority, so it needs neither.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import Response

from hub.crew.accounts import Crew
from hub.crew.service import CrewService
from hub.crew.sessions import Session

SESSION_COOKIE = "ruuhka_crew"
LOGIN_CSRF_COOKIE = "ruuhka_login_csrf"
# Set by a successful login, sent back only to the login form: this browser is
# known to the account (hub/crew/throttle.py).
DEVICE_COOKIE = "ruuhka_device"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Caller:
    crew: Crew
    via: str
    session: Session | None


def service(request: Request) -> CrewService:
    svc: CrewService | None = getattr(request.app.state, "crew", None)
    if svc is None:
        raise HTTPException(status_code=404, detail="crew features are off ([crew] not configured)")
    return svc


def authenticate(request: Request, svc: CrewService, now: datetime) -> Caller | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found = svc.accounts.by_token(header[7:].strip(), now)
        return Caller(found[0], "token:" + found[1], None) if found else None
    session = svc.sessions.get(request.cookies.get(SESSION_COOKIE), now)
    return Caller(session.crew, "session", session) if session else None


def require_caller(request: Request, svc: CrewService, now: datetime) -> Caller:
    caller = authenticate(request, svc, now)
    if caller is None:
        raise HTTPException(
            status_code=401,
            detail="log in first (or send Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site.

    Browsers send Sec-Fetch-Site; with it, Origin is not needed (and under the
    hub's no-referrer policy a same-origin form post says ``Origin: null``).
    Without it (an old browser, or not a browser), a real Origin must match."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def check_csrf(request: Request, svc: CrewService, caller: Caller, supplied: str | None) -> None:
    if caller.session is None:
        return
    if not same_origin(request) or not caller.session.csrf_ok(supplied):
        svc.metrics.csrf_rejected.inc()
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong; reload the page")


def login_csrf_ok(request: Request, supplied: str | None) -> bool:
    """Double submit: the login form's token must match its cookie."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie and supplied) and hmac.compare_digest(cookie, supplied or "")


def secure(request: Request, svc: CrewService) -> bool:
    mode = svc.settings.secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def set_cookie(
    response: Response,
    request: Request,
    svc: CrewService,
    name: str,
    value: str,
    max_age: int,
    path: str = "/",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=secure(request, svc),
    )


def scope(caller: Caller, svc: CrewService) -> set[str]:
    settings = svc.hub_settings
    return caller.crew.facilities((f.id for f in settings.facilities), svc.settings.teams)
