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
from urllib.parse import urlencode

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
from hub.renditions import WIDTHS
from hub.snapshots import Picture, ms
from hub.store import Store
from web import TEMPLATES_DIR
from web.assets import ASSETS
from web.charts import ChartText, day_chart
from web.i18n import LOCALES, Formatter, client_strings, fill, negotiate
from web.map import map_of, map_policy
from web.messages import (
    CAMERA_REASONS,
    CLIENT,
    CONDITIONS,
    KINDS,
    LEVELS,
    N_,
    TRENDS,
    VERSUS,
)

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
MAX_QUERY_CHARS = 100
SORTS = ("", "quiet", "near")
THUMB_CSS_W = 120


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
    camera: CameraView | None = None


@dataclass
class CameraView:
    """The camera's part of a card and of the facility page, formatted. A picture is
    shown only while it is current: the camera has not failed closed since, and it
    is not older than the facility's stale threshold."""

    current: bool
    version: int | None
    url: str
    thumb: str
    medium: str
    srcset: str
    width: int
    height: int
    thumb_height: int
    taken_at: str
    age: str
    alt: str
    spots: str
    waiting: str
    note: str
    simulated: str


def _versioned(url: str, width: int | None) -> str:
    return f"{url}&w={width}" if width else url


def camera_view(
    facility: Facility, out: FacilityOut, picture: Picture | None, fmt: Formatter, now: datetime
) -> CameraView | None:
    """None for a place without a camera."""
    if (
        out.camera_status is None
        and picture is None
        and not any(s.camera for s in facility.sources)
    ):
        return None
    _ = fmt.gettext
    zone = facility.zone
    spots = ""
    if out.spots and out.spots_in_use is not None:
        spots = fill(
            fmt.ngettext(
                "{n} of {total} washing spot in use",
                "{n} of {total} washing spots in use",
                out.spots,
            ),
            n=fmt.number(out.spots_in_use),
            total=fmt.number(out.spots),
        )
    waiting = ""
    if out.people_waiting is not None:
        waiting = fill(_("waiting for a spot: {n}"), n=fmt.number(out.people_waiting))
    failed = out.camera_status is not None and out.camera_status != "ok"
    age_s = (now - picture.taken_at).total_seconds() if picture is not None else None
    current = age_s is not None and age_s <= facility.stale_after and not failed
    note = ""
    if failed:
        reason = _(CAMERA_REASONS.get(out.camera_status or "", CAMERA_REASONS["error"]))
        note = fill(_("Camera paused: {reason}"), reason=reason)
    elif picture is not None and not current:
        note = fill(
            _("No current picture: the newest is from {time}."),
            time=fmt.clock(picture.taken_at, zone),
        )
    simulated = ""
    if out.count_simulated:
        simulated = _("Demo: the figures come from a simulated camera, not from people counted.")
    if picture is None:
        return CameraView(False, None, "", "", "", "", 0, 0, 0, "", "", "", spots, waiting,
                          note, simulated)  # fmt: skip
    version = ms(picture.taken_at)
    url = f"/api/v1/facilities/{facility.id}/snapshot.jpg?v={version}"
    widths = [w for w in WIDTHS if w < picture.width]
    srcset = ", ".join([f"{_versioned(url, w)} {w}w" for w in widths] + [f"{url} {picture.width}w"])
    clock = fmt.clock(picture.taken_at, zone)
    people = fmt.number(picture.people) if picture.people is not None else "–"
    if picture.spots and picture.spots_in_use is not None:
        used, total = fmt.number(picture.spots_in_use), fmt.number(picture.spots)
        alt = fill(
            _(
                "Anonymised camera picture, {time}: people {people}, "
                "spots in use {used} of {total}."
            ),
            time=clock,
            people=people,
            used=used,
            total=total,
        )
    else:
        alt = fill(
            _("Anonymised camera picture, {time}: people {people}."), time=clock, people=people
        )
    return CameraView(
        current=current,
        version=version,
        url=url,
        thumb=_versioned(url, WIDTHS[0]),
        medium=_versioned(url, WIDTHS[1]),
        srcset=srcset,
        width=picture.width,
        height=picture.height,
        thumb_height=max(1, round(THUMB_CSS_W * picture.height / picture.width)),
        taken_at=picture.taken_at.isoformat(),
        age=fmt.age(age_s, N_("picture {ago}"), N_("picture just now")),
        alt=alt,
        spots=spots,
        waiting=waiting,
        note=note,
        simulated=simulated,
    )


def _language(request: Request, lang: str | None) -> str:
    site = request.app.state.hub.settings.site
    return negotiate(lang, request.headers.get("accept-language"), site.default_language)


def _hours_text(out: FacilityOut, fmt: Formatter) -> str:
    if out.hours_today is None:
        return ""
    span = parse_hours(out.hours_today)
    if span is None:
        return fmt.gettext("closed today")
    opens, closes = span
    if opens == time(0) and closes.second:
        return fmt.gettext("today open round the clock")
    # parse_hours reads "24:00" as 23:59:59; say midnight.
    return fill(
        fmt.gettext("today {hours}"), hours=fmt.span(opens, time(0) if closes.second else closes)
    )


def condition_text(out: FacilityOut, fmt: Formatter) -> str:
    """ "Iced today 06:30 · good condition" while the crew's entry is fresh, else ""."""
    if out.condition_state != "known" or not out.condition_text:
        return ""
    quality = CONDITIONS.get(out.condition_quality or "")
    return f"{out.condition_text} · {fmt.gettext(quality)}" if quality else out.condition_text


def unknown_condition_text(
    facility: Facility, latest: Latest | None, fmt: Formatter, now: datetime
) -> str:
    """What to say when no fresh condition is known, for kinds a crew keeps: the
    last entry and how long ago it was, or that there is none; "" without crews."""
    if latest is None or facility.kind.value not in ACTIONS_BY_KIND:
        return ""
    entry = latest.condition
    if entry is None:
        return fmt.gettext("No maintenance logged yet.")
    what = action_label(entry.action, fmt.lang)
    ago = fmt.ago((now - entry.performed_at).total_seconds())
    return fill(
        fmt.gettext("No recent maintenance logged — last: {what} {ago}"), what=what.lower(), ago=ago
    )


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


def unit(fmt: Formatter, figure: float | None, camera_only: bool) -> str:
    """The word after the figure, in the figure's plural form ("1 person", "2 people")."""
    n = round(figure) if figure is not None else 0
    if camera_only:
        # Translators: after a number of people, which is shown large.
        return fmt.ngettext("person on the camera image", "people on the camera image", n)
    # Translators: after a number of people, which is shown large.
    return fmt.ngettext("person", "people", n)


def card(
    facility: Facility,
    out: FacilityOut,
    fmt: Formatter,
    typical: float | None = None,
    unknown_condition: str = "",
    camera: CameraView | None = None,
) -> Card:
    _ = fmt.gettext
    pct = ""
    # Counted by a camera that watches spots: the bar shows spots in use, said in words
    # by the camera's line ("2 of 3 washing spots in use"), not as a share of capacity.
    by_spots = out.occupancy is None and bool(out.spots)
    if out.occupancy_pct is not None and out.capacity and not by_spots:
        pct = fill(
            _("{pct} of capacity ({capacity})"),
            pct=fmt.percent(out.occupancy_pct),
            capacity=fmt.number(out.capacity),
        )
    # A place counted only by its camera: the camera's count is the figure.
    camera_only = out.occupancy is None and out.people is not None
    figure = out.people if camera_only else out.occupancy
    open_text = ""
    if out.open_now is not None:
        open_text = _("open now") if out.open_now else _("closed now")
    free = ""
    if out.occupancy is not None and out.capacity:
        places = max(0, out.capacity - out.occupancy)
        free = fill(fmt.ngettext("{n} place free", "{n} places free", places), n=fmt.number(places))
    margin = versus_margin(typical, out.capacity) if typical is not None else 0.0
    known_condition = condition_text(out, fmt)
    if known_condition:
        unknown_condition = ""  # live.js shows nothing if it expires while the page is open
    versus = versus_usual(None if out.stale else out.occupancy, typical, margin)
    return Card(
        out=out,
        zone=facility.timezone,
        occupancy=fmt.number(figure) if figure is not None else "–",
        unit=unit(fmt, figure, camera_only),
        pct=pct,
        pct_value=min(100.0, out.occupancy_pct or 0.0),
        level=_(LEVELS[out.level]) if out.level else "",
        trend_arrow=TREND_ARROWS[out.trend] if out.trend else "",
        trend=_(TRENDS[out.trend]) if out.trend else "",
        age=fmt.age(out.age_s),
        open_text=open_text,
        hours_text=_hours_text(out, fmt),
        ice=fill(_("ice {temp}"), temp=fmt.temperature(out.ice_temp_c))
        if out.ice_temp_c is not None
        else "",
        air=fill(_("air {temp}"), temp=fmt.temperature(out.air_temp_c))
        if out.air_temp_c is not None
        else "",
        people=fill(
            fmt.ngettext(
                "{n} person on the camera image", "{n} people on the camera image", out.people
            ),
            n=fmt.number(out.people),
        )
        if out.people is not None and not camera_only
        else "",
        condition=known_condition or unknown_condition,
        notice=out.notice or "",
        free=free,
        versus=_(VERSUS[versus]) if versus else "",
        typical=typical,
        margin=margin,
        unknown_condition=unknown_condition,
        location=facility.location,
        camera=camera,
    )


def _render(
    request: Request, name: str, fmt: Formatter, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    hub = request.app.state.hub
    lang = fmt.lang
    strings = client_strings(lang, CLIENT)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "lang": lang,
            "locale": LOCALES[lang],
            "_": fmt.gettext,
            "pgettext": fmt.pgettext,
            "kind_word": lambda kind: fmt.gettext(KINDS[kind]),
            "strings_json": json.dumps(strings, ensure_ascii=False),
            "languages": LANGUAGE_LABELS,
            "path": request.url.path,
            "site_title": hub.settings.site.title.get(lang, "Ruuhka"),
            "as_of": fill(
                fmt.gettext("Figures as of {time}. Reload the page for newer ones."),
                time=fmt.clock(datetime.now(UTC)),
            ),
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
    view: str = ""
    """ "map" for the map view (only where a tile server is configured), else ""."""

    @classmethod
    def of(
        cls,
        kind: str | None,
        q: str | None,
        open_: str | None,
        sort: str | None,
        view: str | None = None,
    ) -> ListFilter:
        kinds = {k.value for k in FacilityKind}
        return cls(
            kind=kind if kind in kinds else "",
            q=" ".join((q or "")[:MAX_QUERY_CHARS].split()),
            open=open_ in ("1", "on", "true"),
            sort=sort if sort in SORTS else "",
            view="map" if view == "map" else "",
        )

    @property
    def active(self) -> bool:
        return bool(self.kind or self.q or self.open or self.sort)

    def url(self, lang: str, **changes: str) -> str:
        """This query as a link, with ``changes`` (e.g. view="map"); empty values left out."""
        values = {"lang": lang, "q": self.q, "kind": self.kind, "sort": self.sort,
                  "open": "1" if self.open else "", "view": self.view} | changes  # fmt: skip
        return "/?" + urlencode({k: v for k, v in values.items() if v})

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
    view: str | None = Query(default=None),
) -> HTMLResponse:
    hub = request.app.state.hub
    site = hub.settings.site
    language = _language(request, lang)
    fmt = Formatter(language)
    now = datetime.now(UTC)
    query = ListFilter.of(kind, q, open_, sort, view if site.tile_url else None)
    facilities = hub.settings.facilities
    shown = [(f, _present(request, f, language, now)) for f in facilities]
    shown = [(f, out) for f, out in shown if query.admits(f, out)]
    if query.sort == "quiet":
        shown.sort(key=_quietest)
    cards = [
        card(
            f,
            out,
            fmt,
            _typical(request, f, now),
            _unknown_condition(request, f, fmt, now),
            camera_view(f, out, hub.snapshots.latest(f.id), fmt, now),
        )
        for f, out in shown
    ]
    counts: dict[str, int] = {}
    for f in facilities:
        counts[f.kind.value] = counts.get(f.kind.value, 0) + 1
    kinds = [(k, fmt.gettext(KINDS[k]), n) for k, n in sorted(counts.items())]
    context = {
        "cards": cards,
        "filters": query,
        "kinds": kinds,
        "count_text": fill(
            fmt.ngettext("{shown} of {total} place", "{shown} of {total} places", len(facilities)),
            shown=len(cards),
            total=len(facilities),
        ),
        "sorts": [
            ("", fmt.gettext("Usual order")),
            ("quiet", fmt.gettext("Quietest first")),
            ("near", fmt.gettext("Nearest first")),
        ],
        "map": map_of(site, fmt) if query.view == "map" else None,
        "map_available": site.tile_url is not None,
    }
    response = _render(request, "index.html", fmt, context)
    if query.view == "map":
        response.headers["Content-Security-Policy"] = map_policy(request, site)
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
        return facility_forecast(
            hub.store, facility, now, hub.settings.forecast, tuple(hub.settings.facilities)
        )
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
    _ = fmt.gettext
    lines = []
    if forecast.usually_busy_at:
        spans = ", ".join(fmt.span(r.start, r.end, zone) for r in forecast.usually_busy_at)
        lines.append(fill(_("Usually busy at {times}"), times=spans))
    if forecast.best_time_today is not None:
        best = forecast.best_time_today
        lines.append(
            fill(_("Best time to go today: {span}"), span=fmt.span(best.start, best.end, zone))
        )
    for hours in (1, 2):
        point = _point_near(forecast.next_2h, now + timedelta(hours=hours))
        if point is not None and point.occupancy is not None:
            n = round(point.occupancy)
            about = fmt.ngettext(
                "Expected in {h} h: about {n} person", "Expected in {h} h: about {n} people", n
            )
            text = fill(about, h=hours, n=fmt.number(n))
            step = next(k for k, p in enumerate(forecast.next_2h) if p is point)
            errors = forecast.next_2h_error
            error = errors[step] if step < len(errors) else None
            if error is not None and round(error) >= 1:
                text += " " + fill(_("(usually within ±{e})"), e=fmt.number(round(error)))
            lines.append(text)
    if forecast.basis_days:
        days = forecast.basis_days
        lines.append(
            fill(
                fmt.ngettext(
                    "Forecast from {n} day of history", "Forecast from {n} days of history", days
                ),
                n=fmt.number(days),
            )
        )
    return lines


def _day_tabs(today: date, chosen: date, fmt: Formatter) -> list[tuple[str, str, bool]]:
    """A week of links from today, (day code, label, is the chosen one)."""
    tabs = []
    for offset in range(7):
        day = today + timedelta(days=offset)
        text = fmt.gettext("Today") if offset == 0 else fmt.standalone_weekday(day)
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
    _ = fmt.gettext
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
    # Counted by a camera that watches spots: the day in spots in use.
    by_spots = out.occupancy is None and bool(out.spots)
    today: list[tuple[datetime, float]] = []
    if is_today:
        buckets = hub.store.history(facility.id, start.astimezone(UTC), now, BUCKET_S)
        middle = timedelta(seconds=BUCKET_S / 2)
        for b in buckets:
            value = b.spots_in_use_avg if by_spots else b.occupancy_avg
            if value is not None:
                today.append((min(b.start + middle, now), value))
        live = out.spots_in_use if by_spots else out.occupancy
        if live is not None and not out.stale and start <= now <= end:
            today.append((now, float(live)))
    forecast = _forecast(request, facility, now)
    weekday = fmt.standalone_weekday(datetime.combine(chosen, time(12), zone))
    legend_typical = fill(_("typical {weekday}"), weekday=weekday)
    typical_points: list[ForecastPoint] = []
    busy_other_day: list[str] = []
    if by_spots:
        typical = typical_spots(hub.store, facility, start, end)
        typical_now_value = _value_near(typical, now) if is_today else None
        title = fill(_("Washing spots in use: today and a typical {weekday}"), weekday=weekday)
        description = [
            _(
                "Washing spots in use by time of day: today as a solid line, "
                "a typical day as a dashed line."
            )
        ]
        if out.spots_in_use is not None and is_today:
            description.append(
                fill(
                    _("Now {n} of {total} in use."),
                    n=fmt.number(out.spots_in_use),
                    total=fmt.number(out.spots or 0),
                )
            )
        scale = out.spots
    else:
        typical_points = forecast.typical_today if forecast else []
        if not is_today:
            other = _typical_day(request, facility, chosen, now)
            typical_points = other.points if other else []
            if other and other.usually_busy_at:
                spans = ", ".join(fmt.span(r.start, r.end, zone) for r in other.usually_busy_at)
                busy_other_day.append(fill(_("Usually busy at {times}"), times=spans))
        typical = [(p.at, p.occupancy) for p in typical_points if p.occupancy is not None]
        typical_at_now = _point_near(typical_points, now) if is_today else None
        typical_now_value = typical_at_now.occupancy if typical_at_now else None
        title = fill(
            _("Today and a typical {weekday}") if is_today else _("A typical {weekday}"),
            weekday=weekday,
        )
        description = [
            _("People by time of day: today as a solid line, a typical day as a dashed line.")
            if is_today
            else _("People by time of day on a typical day, as a dashed line.")
        ]
        if out.occupancy is not None and is_today:
            n = out.occupancy
            now_text = fmt.ngettext("Now {n} person.", "Now {n} people.", n)
            description.append(fill(now_text, n=fmt.number(n)))
        scale = facility.capacity
    chart: Markup | None = None
    if today or typical:
        if typical_now_value is not None and not by_spots:
            description.append(
                fill(_("Usually {n} at this time."), n=fmt.number(typical_now_value))
            )
        chart = day_chart(
            today=today,
            typical=typical,
            start=start,
            end=end,
            now=now,
            capacity=scale,
            text=ChartText(
                title=title,
                description=" ".join(description),
                clock=lambda at: fmt.clock(at, zone),
                number=lambda v: fmt.number(v),
                now_label=_("now"),
            ),
        )
    typical_value = typical_at_moment(typical_points, now)
    camera = camera_view(facility, out, hub.snapshots.latest(facility.id), fmt, now)
    context = {
        "c": card(
            facility,
            out,
            fmt,
            typical_value,
            _unknown_condition(request, facility, fmt, now),
            camera,
        ),
        "chart": chart,
        "legend_typical": legend_typical,
        "table": _table(today, typical, start, end, fmt, zone) if chart else [],
        "insights": _insights(forecast, fmt, zone, now) if is_today else busy_other_day,
        "learning": forecast is not None and not forecast.typical_today,
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


def _value_near(series: list[tuple[datetime, float]], when: datetime) -> float | None:
    near = [(abs((at - when).total_seconds()), v) for at, v in series]
    best = min(near, default=None)
    return best[1] if best is not None and best[0] <= 900 else None


def typical_spots(
    store: Store, facility: Facility, start: datetime, end: datetime, weeks: int = 4
) -> list[tuple[datetime, float]]:
    """Spots in use on this weekday over the last ``weeks`` weeks, per 15 minutes:
    the mean of each interval over the weeks that have it."""
    middle = timedelta(seconds=BUCKET_S / 2)
    slots: dict[timedelta, list[float]] = {}
    for week in range(1, weeks + 1):
        since, until = start - timedelta(weeks=week), end - timedelta(weeks=week)
        for b in store.history(facility.id, since.astimezone(UTC), until.astimezone(UTC), BUCKET_S):
            if b.spots_in_use_avg is not None:
                slots.setdefault(b.start - since, []).append(b.spots_in_use_avg)
    return sorted((start + offset + middle, sum(v) / len(v)) for offset, v in slots.items())


@router.get("/about", response_class=HTMLResponse, include_in_schema=False)
def about(request: Request, lang: str | None = Query(default=None)) -> HTMLResponse:
    site = request.app.state.hub.settings.site
    snapshots = request.app.state.hub.settings.snapshots
    language = _language(request, lang)
    fmt = Formatter(language)
    reviewed = ""
    if site.accessibility_reviewed is not None:
        reviewed = fill(
            fmt.gettext("This statement was last reviewed on {date}."),
            date=fmt.date(site.accessibility_reviewed),
        )
    context = {
        "contact": site.contact,
        "a11y_contact": site.accessibility_contact or site.contact,
        "operator": site.operator.get(language) or next(iter(site.operator.values()), ""),
        "reviewed": reviewed,
        "tile_server": site.tile_origin.split("://", 1)[1] if site.tile_origin else None,
        "tile_attribution": site.tile_attribution,
        "keep_history": snapshots.history,
        "retention": fmt.duration(snapshots.retention_h * 3600),
        "stale_after": [
            (fmt.gettext(KINDS[kind]), fmt.duration(seconds))
            for kind, seconds in sorted(
                {(f.kind.value, f.stale_after) for f in request.app.state.hub.settings.facilities}
            )
        ],
    }
    return _render(request, "about.html", fmt, context)
