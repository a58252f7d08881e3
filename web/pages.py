"""The public pages, server-rendered so that they are right without JavaScript.

``/`` lists every facility, ``/facilities/{id}`` shows one with today's curve
and the forecast, ``/about`` says what is collected and how accessible the
service is. ``static/live.js`` then keeps the figures live over the WebSocket.
No cookies, no third-party resources, no inline scripts or styles.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from hub.config import WEEKDAYS, Facility, FacilityKind, Location, parse_hours
from hub.crew.conditions import label as action_label
from hub.crew.maintenance import Latest
from hub.crew.service import latest_for
from hub.crew.vocabulary import ACTIONS_BY_KIND
from hub.facilities import FacilityOut, present
from hub.forecast import (
    Forecast,
    ForecastPoint,
    TypicalDay,
    facility_forecast,
    typical_day,
    typical_now,
)
from web import TEMPLATES_DIR
from web.assets import ASSETS
from web.charts import ChartText, day_chart
from web.i18n import LOCALES, Formatter, fill, negotiate

log = logging.getLogger("ruuhka.pages")
router = APIRouter()
templates = Jinja2Templates(directory=TEMPLATES_DIR)


def _fill_markup(template: str, **values: object) -> Markup:
    """``fill`` for templates: the catalog text is escaped, Markup values go in as they are."""
    return Markup(fill(str(escape(template)), **{k: escape(v) for k, v in values.items()}))


def contact_link(contact: str) -> Markup:
    """An e-mail address or a web address as a link; anything else (a phone number) as text."""
    if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", contact):
        return Markup('<a href="mailto:{0}">{0}</a>').format(contact)
    if re.fullmatch(r"https?://\S+", contact):
        return Markup('<a href="{0}">{0}</a>').format(contact)
    return escape(contact)


templates.env.filters["fill"] = _fill_markup
templates.env.filters["contact_link"] = contact_link
templates.env.globals["static"] = ASSETS.url
LANGUAGE_LABELS = (("fi", "Suomeksi"), ("sv", "På svenska"), ("en", "In English"))
BUCKET_S = 15 * 60
TREND_ARROWS = {"rising": "↗", "steady": "→", "falling": "↘"}
# The catalog entries live.js needs; the rest of the catalog stays on the server.
CLIENT_STRINGS = (
    "level_quiet",
    "level_moderate",
    "level_busy",
    "level_full",
    "trend_rising",
    "trend_steady",
    "trend_falling",
    "updated_ago",
    "just_now",
    "no_data",
    "pct_of_capacity",
    "people",
    "people_seen",
    "people_on_camera",
    "camera_taken",
    "ice_temp",
    "air_temp",
    "open_now",
    "closed_now",
    "cond_good",
    "cond_satisfactory",
    "cond_unusable",
    "live",
    "connecting",
    "offline",
    "places_free",
    "usual_busier",
    "usual_quieter",
    "usual_same",
    "distance",
    "location_failed",
    "sorted_near",
)
MAX_QUERY_CHARS = 100
SORTS = ("", "quiet", "near")


@dataclass
class Card:
    """One facility's figures, formatted for the page (the template adds markup)."""

    out: FacilityOut
    zone: str
    occupancy: str
    unit: str
    pct: str
    pct_value: float
    level: str
    trend_arrow: str
    trend: str
    age: str
    open_text: str
    hours_text: str
    ice: str
    air: str
    people: str
    condition: str
    notice: str
    free: str
    versus: str
    typical: float | None
    margin: float
    unknown_condition: str
    location: Location | None


def _language(request: Request, lang: str | None) -> str:
    site = request.app.state.hub.settings.site
    return negotiate(lang, request.headers.get("accept-language"), site.default_language)


def _hours_text(out: FacilityOut, fmt: Formatter) -> str:
    if out.hours_today is None:
        return ""
    span = parse_hours(out.hours_today)
    if span is None:
        return fmt.t["closed_today"]
    opens, closes = span
    if opens == time(0) and closes.second:
        return fmt.t["all_day_today"]
    # parse_hours reads "24:00" as 23:59:59; say midnight.
    return fill(fmt.t["hours_today"], hours=fmt.span(opens, time(0) if closes.second else closes))


def condition_text(out: FacilityOut, t: dict[str, str]) -> str:
    """ "Iced today 06:30 · good condition" while the crew's entry is fresh, else ""."""
    if out.condition_state != "known" or not out.condition_text:
        return ""
    quality = t.get(f"cond_{out.condition_quality}") if out.condition_quality else None
    return f"{out.condition_text} · {quality}" if quality else out.condition_text


def unknown_condition_text(
    facility: Facility, latest: Latest | None, fmt: Formatter, now: datetime
) -> str:
    """What to say when no fresh condition is known, for kinds a crew keeps: the
    last entry and how long ago it was, or that there is none; "" without crews."""
    if latest is None or facility.kind.value not in ACTIONS_BY_KIND:
        return ""
    entry = latest.condition
    if entry is None:
        return fmt.t["cond_none"]
    what = action_label(entry.action, fmt.lang)
    ago = fmt.ago((now - entry.performed_at).total_seconds())
    return fill(fmt.t["cond_expired"], what=what.lower(), ago=ago)


def versus_margin(typical: float, capacity: int | None) -> float:
    """How far from the typical figure "now" must be to count as busier or quieter:
    a tenth of the capacity, or a quarter of the typical figure, and at least 3 people."""
    return max(3.0, 0.1 * capacity if capacity else 0.25 * typical)


def versus_usual(occupancy: float | None, typical: float | None, margin: float) -> str | None:
    """ "busier", "quieter" or "same" than the typical moment; None when either is unknown.
    live.js compares the same way with the margin the page carries."""
    if occupancy is None or typical is None:
        return None
    if occupancy > typical + margin:
        return "busier"
    if occupancy < typical - margin:
        return "quieter"
    return "same"


def card(
    facility: Facility,
    out: FacilityOut,
    fmt: Formatter,
    typical: float | None = None,
    unknown_condition: str = "",
) -> Card:
    t = fmt.t
    pct = ""
    if out.occupancy_pct is not None and out.capacity:
        pct = fill(
            t["pct_of_capacity"],
            pct=fmt.percent(out.occupancy_pct),
            capacity=fmt.number(out.capacity),
        )
    # A place counted only by its camera: the camera's count is the figure.
    camera_only = out.occupancy is None and out.people is not None
    figure = out.people if camera_only else out.occupancy
    open_text = ""
    if out.open_now is not None:
        open_text = t["open_now"] if out.open_now else t["closed_now"]
    free = ""
    if out.occupancy is not None and out.capacity:
        free = fill(t["places_free"], n=fmt.number(max(0, out.capacity - out.occupancy)))
    margin = versus_margin(typical, out.capacity) if typical is not None else 0.0
    known_condition = condition_text(out, t)
    if known_condition:
        unknown_condition = ""  # live.js shows nothing if it expires while the page is open
    versus = versus_usual(None if out.stale else out.occupancy, typical, margin)
    return Card(
        out=out,
        zone=facility.timezone,
        occupancy=fmt.number(figure) if figure is not None else "–",
        unit=t["people_seen"] if camera_only else t["people"],
        pct=pct,
        pct_value=min(100.0, out.occupancy_pct or 0.0),
        level=t[f"level_{out.level}"] if out.level else "",
        trend_arrow=TREND_ARROWS[out.trend] if out.trend else "",
        trend=t[f"trend_{out.trend}"] if out.trend else "",
        age=fmt.age(out.age_s),
        open_text=open_text,
        hours_text=_hours_text(out, fmt),
        ice=fill(t["ice_temp"], temp=fmt.temperature(out.ice_temp_c))
        if out.ice_temp_c is not None
        else "",
        air=fill(t["air_temp"], temp=fmt.temperature(out.air_temp_c))
        if out.air_temp_c is not None
        else "",
        people=fill(t["people_on_camera"], n=fmt.number(out.people))
        if out.people is not None and not camera_only
        else "",
        condition=known_condition or unknown_condition,
        notice=out.notice or "",
        free=free,
        versus=t[f"usual_{versus}"] if versus else "",
        typical=typical,
        margin=margin,
        unknown_condition=unknown_condition,
        location=facility.location,
    )


def _render(
    request: Request, name: str, fmt: Formatter, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    hub = request.app.state.hub
    lang = fmt.lang
    strings = {key: fmt.t[key] for key in CLIENT_STRINGS}
    response = templates.TemplateResponse(
        request,
        name,
        {
            "lang": lang,
            "locale": LOCALES[lang],
            "t": fmt.t,
            "strings_json": json.dumps(strings, ensure_ascii=False),
            "languages": LANGUAGE_LABELS,
            "path": request.url.path,
            "site_title": hub.settings.site.title.get(lang, "Ruuhka"),
            "as_of": fill(fmt.t["as_of"], time=fmt.clock(datetime.now(UTC))),
            **context,
        },
        status_code=status,
    )
    response.headers["Vary"] = "Accept-Language"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Language"] = lang
    return response


def _present(request: Request, facility: Facility, lang: str, now: datetime) -> FacilityOut:
    live = request.app.state.hub.live
    trend = live.trend(facility.id, facility.capacity)
    condition = latest_for(request.app, facility.id)
    state = live.states.get(facility.id)
    return present(facility, state, lang, now, trend=trend, condition=condition)


@dataclass
class ListFilter:
    """The list page's query: shareable, and applied on the server so that it works
    without JavaScript. Unknown values are ignored rather than refused: a stale link
    still shows the list."""

    kind: str
    q: str
    open: bool
    sort: str

    @classmethod
    def of(cls, kind: str | None, q: str | None, open_: str | None, sort: str | None) -> ListFilter:
        kinds = {k.value for k in FacilityKind}
        return cls(
            kind=kind if kind in kinds else "",
            q=" ".join((q or "")[:MAX_QUERY_CHARS].split()),
            open=open_ in ("1", "on", "true"),
            sort=sort if sort in SORTS else "",
        )

    @property
    def active(self) -> bool:
        return bool(self.kind or self.q or self.open or self.sort)

    def admits(self, facility: Facility, out: FacilityOut) -> bool:
        if self.kind and facility.kind.value != self.kind:
            return False
        if self.open and out.open_now is not True:
            return False
        wanted = self.q.casefold()
        return not wanted or any(wanted in name.casefold() for name in facility.name.values())


def _quietest(entry: tuple[Facility, FacilityOut]) -> tuple[bool, float, float]:
    """Known and fresh first, by share of capacity, then by people."""
    out = entry[1]
    unknown = out.stale or out.occupancy is None
    pct = out.occupancy_pct if out.occupancy_pct is not None else math.inf
    return (unknown, pct, float(out.occupancy if out.occupancy is not None else math.inf))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(
    request: Request,
    lang: str | None = Query(default=None),
    kind: str | None = Query(default=None),
    q: str | None = Query(default=None),
    open_: str | None = Query(default=None, alias="open"),
    sort: str | None = Query(default=None),
) -> HTMLResponse:
    hub = request.app.state.hub
    language = _language(request, lang)
    fmt = Formatter(language)
    now = datetime.now(UTC)
    query = ListFilter.of(kind, q, open_, sort)
    facilities = hub.settings.facilities
    shown = [(f, _present(request, f, language, now)) for f in facilities]
    shown = [(f, out) for f, out in shown if query.admits(f, out)]
    if query.sort == "quiet":
        shown.sort(key=_quietest)
    cards = [
        card(f, out, fmt, _typical(request, f, now), _unknown_condition(request, f, fmt, now))
        for f, out in shown
    ]
    counts: dict[str, int] = {}
    for f in facilities:
        counts[f.kind.value] = counts.get(f.kind.value, 0) + 1
    kinds = [(k, fmt.t[f"kind_{k}"], n) for k, n in sorted(counts.items())]
    context = {
        "cards": cards,
        "filters": query,
        "kinds": kinds,
        "count_text": fill(fmt.t["filter_count"], shown=len(cards), total=len(facilities)),
        "sorts": [
            ("", fmt.t["sort_default"]),
            ("quiet", fmt.t["sort_quiet"]),
            ("near", fmt.t["sort_near"]),
        ],
    }
    response = _render(request, "index.html", fmt, context)
    # Only the list sorts by distance, in the browser: nothing is sent to the hub.
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(self)"
    return response


def _typical(request: Request, facility: Facility, now: datetime) -> float | None:
    """The typical figure now, or None (also when the forecast fails: the card stays)."""
    hub = request.app.state.hub
    try:
        return typical_now(hub.store, facility, now, hub.settings.forecast)
    except Exception:
        log.exception("typical figure for %s failed", facility.id)
        return None


def _unknown_condition(request: Request, facility: Facility, fmt: Formatter, now: datetime) -> str:
    return unknown_condition_text(facility, latest_for(request.app, facility.id), fmt, now)


def _day_range(facility: Facility, day: date) -> tuple[datetime, datetime]:
    """The day's opening hours, or the whole local day when they are not known."""
    midnight = datetime.combine(day, time(0), facility.zone)
    hours = facility.opening_hours.get(WEEKDAYS[day.weekday()])
    span = parse_hours(hours) if hours else None
    if span is None:
        return midnight, midnight + timedelta(days=1)
    return (
        datetime.combine(day, span[0], facility.zone),
        datetime.combine(day, span[1], facility.zone),
    )


def _forecast(request: Request, facility: Facility, now: datetime) -> Forecast | None:
    """The forecast, or None when it fails: the page then shows everything else."""
    try:
        hub = request.app.state.hub
        return facility_forecast(hub.store, facility, now, hub.settings.forecast)
    except Exception:
        log.exception("forecast for %s failed", facility.id)
        return None


def _point_near(points: list[ForecastPoint], when: datetime) -> ForecastPoint | None:
    usable = [p for p in points if p.occupancy is not None]
    if not usable:
        return None
    best = min(usable, key=lambda p: abs((p.at - when).total_seconds()))
    return best if abs((best.at - when).total_seconds()) <= 900 else None


def _table(
    today: list[tuple[datetime, float]],
    typical: list[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    fmt: Formatter,
    zone: Any,
) -> list[tuple[str, str, str]]:
    """Hourly rows (time, today, typical) for the table beside the chart."""

    def at_hour(series: list[tuple[datetime, float]], hour: datetime) -> str:
        values = [v for at, v in series if hour <= at < hour + timedelta(hours=1)]
        return fmt.number(sum(values) / len(values)) if values else "–"

    rows = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        row = (fmt.clock(hour, zone), at_hour(today, hour), at_hour(typical, hour))
        if row[1:] != ("–", "–"):
            rows.append(row)
        hour += timedelta(hours=1)
    return rows


def _insights(forecast: Forecast | None, fmt: Formatter, zone: Any, now: datetime) -> list[str]:
    if forecast is None:
        return []
    t = fmt.t
    lines = []
    if forecast.usually_busy_at:
        spans = ", ".join(fmt.span(r.start, r.end, zone) for r in forecast.usually_busy_at)
        lines.append(fill(t["usually_busy"], times=spans))
    if forecast.best_time_today is not None:
        best = forecast.best_time_today
        lines.append(fill(t["best_time"], span=fmt.span(best.start, best.end, zone)))
    for hours in (1, 2):
        point = _point_near(forecast.next_2h, now + timedelta(hours=hours))
        if point is not None and point.occupancy is not None:
            lines.append(fill(t["expected_in"], h=hours, n=fmt.number(point.occupancy)))
    return lines


def _day_tabs(today: date, chosen: date, fmt: Formatter) -> list[tuple[str, str, bool]]:
    """A week of links from today, (day code, label, is the chosen one)."""
    tabs = []
    for offset in range(7):
        day = today + timedelta(days=offset)
        text = fmt.t["day_today"] if offset == 0 else fmt.standalone_weekday(day)
        tabs.append((WEEKDAYS[day.weekday()], text, day == chosen))
    return tabs


@router.get("/facilities/{facility_id}", response_class=HTMLResponse, include_in_schema=False)
def facility_page(
    request: Request,
    facility_id: str,
    lang: str | None = Query(default=None),
    day: str | None = Query(default=None),
) -> HTMLResponse:
    hub = request.app.state.hub
    language = _language(request, lang)
    fmt = Formatter(language)
    t = fmt.t
    facility = hub.settings.facility(facility_id)
    if facility is None:
        return _render(request, "not_found.html", fmt, {}, status=404)
    now = datetime.now(UTC)
    out = _present(request, facility, language, now)
    zone = facility.zone
    local_today = now.astimezone(zone).date()
    chosen = local_today
    if day in WEEKDAYS:
        chosen += timedelta(days=(WEEKDAYS.index(day) - local_today.weekday()) % 7)
    is_today = chosen == local_today
    start, end = _day_range(facility, chosen)
    today: list[tuple[datetime, float]] = []
    if is_today:
        buckets = hub.store.history(facility.id, start.astimezone(UTC), now, BUCKET_S)
        middle = timedelta(seconds=BUCKET_S / 2)
        today = [
            (min(b.start + middle, now), b.occupancy_avg)
            for b in buckets
            if b.occupancy_avg is not None
        ]
        if out.occupancy is not None and not out.stale and start <= now <= end:
            today.append((now, float(out.occupancy)))
    forecast = _forecast(request, facility, now)
    typical_points = forecast.typical_today if forecast else []
    busy_other_day: list[str] = []
    if not is_today:
        other = _typical_day(request, facility, chosen, now)
        typical_points = other.points if other else []
        if other and other.usually_busy_at:
            spans = ", ".join(fmt.span(r.start, r.end, zone) for r in other.usually_busy_at)
            busy_other_day.append(fill(t["usually_busy"], times=spans))
    typical = [(p.at, p.occupancy) for p in typical_points if p.occupancy is not None]
    weekday = fmt.standalone_weekday(datetime.combine(chosen, time(12), zone))
    legend_typical = fill(t["legend_typical"], weekday=weekday)
    chart: Markup | None = None
    if today or typical:
        typical_at_now = _point_near(typical_points, now) if is_today else None
        description = [t["chart_desc"] if is_today else t["chart_desc_day"]]
        if out.occupancy is not None and is_today:
            description.append(fill(t["chart_desc_now"], n=fmt.number(out.occupancy)))
        if typical_at_now is not None and typical_at_now.occupancy is not None:
            description.append(
                fill(t["chart_desc_typical"], n=fmt.number(typical_at_now.occupancy))
            )
        chart = day_chart(
            today=today,
            typical=typical,
            start=start,
            end=end,
            now=now,
            capacity=facility.capacity,
            text=ChartText(
                title=fill(t["chart_title"] if is_today else t["chart_title_day"], weekday=weekday),
                description=" ".join(description),
                clock=lambda at: fmt.clock(at, zone),
                number=lambda v: fmt.number(v),
                now_label=t["now"],
            ),
        )
    typical_value = typical_at_moment(typical_points, now)
    context = {
        "c": card(
            facility, out, fmt, typical_value, _unknown_condition(request, facility, fmt, now)
        ),
        "chart": chart,
        "legend_typical": legend_typical,
        "table": _table(today, typical, start, end, fmt, zone) if chart else [],
        "insights": _insights(forecast, fmt, zone, now) if is_today else busy_other_day,
        "learning": forecast is not None and not forecast.typical_today,
        "snapshot": _snapshot(request, facility, fmt),
        "camera_note": _camera_note(out, t),
        "quality": out.quality,
        "is_today": is_today,
        "day_tabs": _day_tabs(local_today, chosen, fmt),
    }
    return _render(request, "facility.html", fmt, context)


def typical_at_moment(points: list[ForecastPoint], now: datetime) -> float | None:
    """The typical figure of the 15 minutes ``now`` falls in, from today's curve."""
    point = _point_near(points, now)
    return point.occupancy if point is not None else None


def _typical_day(
    request: Request, facility: Facility, day: date, now: datetime
) -> TypicalDay | None:
    hub = request.app.state.hub
    try:
        return typical_day(hub.store, facility, day, now, hub.settings.forecast)
    except Exception:
        log.exception("typical day for %s failed", facility.id)
        return None


@dataclass
class Snapshot:
    """The latest anonymised camera picture, as the facility page shows it."""

    url: str
    taken_at: datetime
    time: str
    people: str
    width: int
    height: int


def _snapshot(request: Request, facility: Facility, fmt: Formatter) -> Snapshot | None:
    """The picture the hub serves now (within its retention), if any. The URL names
    the picture, so that a new one is fetched while the old one may be cached."""
    picture = request.app.state.hub.snapshots.latest(facility.id)
    if picture is None:
        return None
    version = int(picture.taken_at.timestamp() * 1000)
    return Snapshot(
        url=f"/api/v1/facilities/{facility.id}/snapshot.jpg?v={version}",
        taken_at=picture.taken_at,
        time=fill(fmt.t["camera_taken"], time=fmt.clock(picture.taken_at, facility.zone)),
        people=fill(fmt.t["people_on_camera"], n=fmt.number(picture.people))
        if picture.people is not None
        else "",
        width=picture.width,
        height=picture.height,
    )


def _camera_note(out: FacilityOut, t: dict[str, str]) -> str:
    """Why the camera sends no new picture now (it fails closed), or ""."""
    if out.camera_status is None or out.camera_status == "ok":
        return ""
    reason = t.get(f"camera_{out.camera_status}", t["camera_error"])
    return fill(t["camera_paused"], reason=reason)


@router.get("/about", response_class=HTMLResponse, include_in_schema=False)
def about(request: Request, lang: str | None = Query(default=None)) -> HTMLResponse:
    site = request.app.state.hub.settings.site
    snapshots = request.app.state.hub.settings.snapshots
    language = _language(request, lang)
    fmt = Formatter(language)
    reviewed = ""
    if site.accessibility_reviewed is not None:
        reviewed = fill(fmt.t["a11y_reviewed"], date=fmt.date(site.accessibility_reviewed))
    context = {
        "contact": site.contact,
        "a11y_contact": site.accessibility_contact or site.contact,
        "operator": site.operator.get(language) or next(iter(site.operator.values()), ""),
        "reviewed": reviewed,
        "keep_history": snapshots.history,
        "retention": fmt.duration(snapshots.retention_h * 3600),
        "stale_after": [
            (fmt.t[f"kind_{kind}"], fmt.duration(seconds))
            for kind, seconds in sorted(
                {(f.kind.value, f.stale_after) for f in request.app.state.hub.settings.facilities}
            )
        ],
    }
    return _render(request, "about.html", fmt, context)
