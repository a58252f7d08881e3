"""Forecasts: typical occupancy by weekday and time of day, learned from history.

The typical day is the per-slot (15 minutes) median over the same weekday of the
last weeks, which shrugs off a few odd days; closed days (the facility stayed
near empty while that weekday is usually busy) and public holidays are left out
of the weekdays and holidays get their own profile (Sunday's until enough have
been seen). Short gaps are filled with the last value for as long as the
facility's values count as fresh; longer gaps stay unknown. The next two hours
start from the value now and follow the typical curve's change as far as the
facility's own last week bears it out (see ``Blend``).

The learned profile and its fitted blend depend only on complete past days, so
they are computed once per facility and local day and cached.
"""

from __future__ import annotations

import math
import statistics
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from hub.config import WEEKDAYS, Facility, ForecastSettings, parse_hours
from hub.store import Store

STEP = timedelta(minutes=15)
STEP_S = 15 * 60
SLOTS = 96
HOLIDAY = 7  # the profile index after the seven weekdays
SUNDAY = 6
_WORKDAYS = (0, 1, 2, 3, 4)
MIN_DAYS = 3  # fewer same-type days than this are blended with similar days
CLOSED_FRACTION = 0.1  # a day whose peak stays under this share of its weekday's is closed
BEST_WINDOW = timedelta(hours=1)
BUSY_SHARE = 0.8  # "usually busy": within this share of the day's typical peak
BUSY_MIN_PCT = 35.0  # ... and at least moderately full, when the capacity is known
DECAY_MIN = 240.0  # today's deviation from the typical curve fades with this time constant
NEXT_STEPS = 8
HALF_LIVES = (1e9, 14.0, 7.0)  # days; candidates for how fast old weeks fade
BACKTEST_DAYS = 7
SMOOTH = 2
RECENT_DAYS = 2  # the last open days whose level against the typical curve carries over
RECENT_WEIGHTS = (0.0, 0.25, 0.5, 0.75)  # candidates for how much of that level carries over

Day = list[float | None]


class ForecastPoint(BaseModel):
    """Expected occupancy at one moment."""

    at: datetime = Field(description="UTC.")
    local_time: str = Field(description="HH:MM in the facility's time zone.")
    occupancy: float | None = Field(description="Expected people; null when unknown.")
    occupancy_pct: float | None = Field(description="Expected % of capacity; null without one.")


class TimeRange(BaseModel):
    """A stretch of time, [start, end)."""

    start: datetime = Field(description="UTC.")
    end: datetime = Field(description="UTC.")
    local_start: str = Field(description="HH:MM local.")
    local_end: str = Field(description="HH:MM local.")


class Forecast(BaseModel):
    """What the page and the API say about when a facility is busy."""

    facility: str
    generated_at: datetime
    timezone: str
    capacity: int | None
    basis_days: int = Field(description="Days of history the typical profile was learned from.")
    borrowed_from: list[str] = Field(
        default_factory=list,
        description="With under three weeks of its own history, the facilities of its kind"
        " whose typical day's shape it leans on (scaled to its own level and hours).",
    )
    holiday: bool = Field(default=False, description="Today is a holiday (its own profile).")
    typical_today: list[ForecastPoint] = Field(
        description="Typical occupancy for today's weekday, every 15 minutes."
    )
    usually_busy_at: list[TimeRange] = Field(description="Today's usually busy stretches.")
    best_time_today: TimeRange | None = Field(
        description="The quietest hour within opening hours in the rest of today; null if none."
    )
    next_2h: list[ForecastPoint] = Field(description="The next two hours in 15-minute steps.")
    next_2h_error: list[float | None] = Field(
        default_factory=list,
        description="Per step of next_2h, the error in people that 4 in 5 of this facility's"
        " forecasts that far ahead stayed within over its last week; null where unknown.",
    )


# Learning (pure: the evaluation in bench/ runs the same code) ---------------------------


def slot_of(local: datetime) -> int:
    return (local.hour * 60 + local.minute) // 15


def day_slots(
    points: Iterable[tuple[datetime, float]], zone: ZoneInfo, max_gap: int
) -> dict[date, Day]:
    """Per local day, the mean value in each 15-minute slot; a slot without values
    takes the last one when at most ``max_gap`` slots have passed since it."""
    sums: dict[tuple[date, int], list[float]] = {}
    for at, value in points:
        local = at.astimezone(zone)
        sums.setdefault((local.date(), slot_of(local)), []).append(value)
    if not sums:
        return {}
    days: dict[date, Day] = {}
    first = min(day for day, _ in sums)
    last = max(day for day, _ in sums)
    held: float | None = None
    since = 0
    day = first
    while day <= last:
        slots: Day = [None] * SLOTS
        measured = False
        for slot in range(SLOTS):
            values = sums.get((day, slot))
            if values:
                held, since, measured = sum(values) / len(values), 0, True
                slots[slot] = held
            else:
                since += 1
                if held is not None and since <= max_gap:
                    slots[slot] = held
        if measured:
            days[day] = slots
        day += timedelta(days=1)
    return days


@dataclass
class Profile:
    """Typical value per slot for each weekday (0 = Monday) and for holidays (7)."""

    by_type: list[Day]
    basis_days: int
    blend: Blend | None = None  # None: not fitted (the unfitted blend applies)
    borrowed_from: tuple[str, ...] = ()  # peers whose shape a young facility leans on
    # How busy the last days were against their typical curves, as much of it as
    # the facility's own last week says carries over (a school holiday, a cold spell).
    level: float = 1.0

    def for_day(self, day: date, holiday: bool) -> Day:
        return _scaled(self.shape(day, holiday), self.level)

    def shape(self, day: date, holiday: bool) -> Day:
        """The learned curve for the day, before the recent level."""
        curve = self.by_type[HOLIDAY if holiday else day.weekday()]
        if all(v is None for v in curve) and holiday:
            return self.by_type[SUNDAY]
        return curve


def _peak(day: Day) -> float:
    return max((v for v in day if v is not None), default=0.0)


def learn_profile(
    days: Mapping[date, Day], is_holiday: Callable[[date], bool], until: date, weeks: int
) -> Profile:
    """The typical day per weekday and for holidays, from the days in
    [until - weeks, until).

    How fast old weeks fade is chosen per facility: each candidate half-life
    forecasts the last week's days from the days before each, and the one with
    the smallest error wins. A pool with a steady week keeps its long memory; a
    rink whose session times changed with the season forgets the old ones.

    The same days then choose how much of the last days' level (busier or quieter
    than typical) carries over to the next: none, unless that forecasts better."""
    tests: dict[float, list[tuple[date, Day, Profile]]] = {}
    for half_life in HALF_LIVES:
        tests[half_life] = []
        for back in range(1, BACKTEST_DAYS + 1):
            day = until - timedelta(days=back)
            actual = days.get(day)
            if actual is not None:
                learned = _learn(days, is_holiday, day, weeks, half_life)
                tests[half_life].append((day, actual, learned))
    best = min(
        HALF_LIVES,
        key=lambda h: sum(_error(a, p.for_day(d, is_holiday(d))) for d, a, p in tests[h]),
    )
    levels = [(d, a, p, recent_level(p, days, is_holiday, d)) for d, a, p in tests[best]]

    def with_weight(weight: float) -> float:
        return sum(
            _error(actual, _scaled(learned.shape(day, is_holiday(day)), 1 + weight * (level - 1)))
            for day, actual, learned, level in levels
        )

    weight = min(RECENT_WEIGHTS, key=with_weight)
    profile = _learn(days, is_holiday, until, weeks, best)
    profile.level = 1.0 + weight * (recent_level(profile, days, is_holiday, until) - 1.0)
    return profile


def _scaled(curve: Day, level: float) -> Day:
    return curve if level == 1.0 else [None if v is None else v * level for v in curve]


def _error(actual: Day, curve: Day) -> float:
    return sum(
        abs(c - a) for a, c in zip(actual, curve, strict=True) if a is not None and c is not None
    )


def recent_level(
    profile: Profile, days: Mapping[date, Day], is_holiday: Callable[[date], bool], until: date
) -> float:
    """Measured over typical on the last ``RECENT_DAYS`` open days before ``until``
    (within a week), bounded to [0.5, 2]; 1 without such days."""
    measured = typical = 0.0
    found = 0
    for back in range(1, BACKTEST_DAYS + 1):
        day = until - timedelta(days=back)
        actual = days.get(day)
        if actual is None:
            continue
        curve = profile.shape(day, is_holiday(day))
        pairs = [(a, c) for a, c in zip(actual, curve, strict=True) if a is not None and c]
        day_measured = sum(a for a, _ in pairs)
        day_typical = sum(c for _, c in pairs)
        if day_typical <= 0 or day_measured < CLOSED_FRACTION * day_typical:
            continue  # closed, or the counter was out: says nothing of the level
        measured += day_measured
        typical += day_typical
        found += 1
        if found == RECENT_DAYS:
            break
    if not found:
        return 1.0
    return min(2.0, max(0.5, measured / typical))


def _learn(
    days: Mapping[date, Day],
    is_holiday: Callable[[date], bool],
    until: date,
    weeks: int,
    half_life: float,
) -> Profile:
    start = until - timedelta(weeks=weeks)
    window = {d: v for d, v in days.items() if start <= d < until}
    kinds: dict[int, list[tuple[date, Day]]] = {k: [] for k in range(8)}
    peaks: dict[int, list[float]] = {k: [] for k in range(7)}
    for day, values in window.items():
        if not is_holiday(day):
            peaks[day.weekday()].append(_peak(values))
    usual = {k: statistics.median(v) if v else 0.0 for k, v in peaks.items()}
    used = 0
    for day, values in window.items():
        holiday = is_holiday(day)
        usual_peak = usual[SUNDAY if holiday else day.weekday()]
        if usual_peak > 0 and _peak(values) < CLOSED_FRACTION * usual_peak:
            continue  # closed, or the counter was out: not a typical day
        kinds[HOLIDAY if holiday else day.weekday()].append((day, values))
        used += 1
    medians = {k: _slot_medians(v, until, half_life) for k, v in kinds.items()}
    pooled_workday = _slot_medians([d for k in _WORKDAYS for d in kinds[k]], until, half_life)
    by_type: list[Day] = []
    for kind in range(8):
        similar = pooled_workday if kind in _WORKDAYS else medians[SUNDAY if kind == 5 else 5]
        if kind == HOLIDAY:
            similar = medians[SUNDAY]
        by_type.append(_blend(medians[kind], len(kinds[kind]), similar))
    return Profile([_smooth(curve) for curve in by_type], used)


def _slot_medians(days: list[tuple[date, Day]], until: date, half_life: float) -> Day:
    """Per slot, the median weighted by recency (half the weight every ``half_life`` days)."""
    weights = [0.5 ** ((until - day).days / half_life) for day, _ in days]
    out: Day = []
    for slot in range(SLOTS):
        pairs = sorted(
            (values[slot], w)
            for (_, values), w in zip(days, weights, strict=True)
            if values[slot] is not None
        )
        out.append(_weighted_median(pairs) if pairs else None)
    return out


def _weighted_median(pairs: list[tuple[float, float]]) -> float:
    half = sum(w for _, w in pairs) / 2
    seen = 0.0
    for i, (value, weight) in enumerate(pairs):
        seen += weight
        if seen > half + 1e-12:
            return value
        if abs(seen - half) <= 1e-12 and i + 1 < len(pairs):
            return (value + pairs[i + 1][0]) / 2
    return pairs[-1][0]


def _blend(own: Day, count: int, similar: Day) -> Day:
    """Few days of a kind lean on similar days (workdays together, the weekend together)."""
    if count >= MIN_DAYS:
        return own
    weight = count / MIN_DAYS
    out: Day = []
    for mine, other in zip(own, similar, strict=True):
        if mine is None or other is None:
            out.append(mine if mine is not None else (other if count == 0 else None))
        else:
            out.append(weight * mine + (1 - weight) * other)
    return out


def _smooth(curve: Day) -> Day:
    """A triangular moving average over SMOOTH slots either side (noise in a
    per-slot median otherwise shows up as false slopes in the next two hours).
    Empty slots (closed) stay empty and do not pull their open neighbours down."""
    out: Day = []
    for slot, value in enumerate(curve):
        if not value:
            out.append(value)
            continue
        total, weight = 0.0, 0.0
        for offset in range(-SMOOTH, SMOOTH + 1):
            near = slot + offset
            if 0 <= near < SLOTS and curve[near]:
                w = SMOOTH + 1 - abs(offset)
                total += w * curve[near]  # type: ignore[operator]
                weight += w
        out.append(total / weight)
    return out


def carry(typical_then: float, typical_now: float, current: float, minutes_ahead: float) -> float:
    """Expected value ``minutes_ahead`` from now: the typical curve plus today's
    deviation from it, fading (a busier than usual morning stays busier a while).
    The blend a facility has not yet fitted (see ``Blend``)."""
    return max(0.0, typical_then + (current - typical_now) * math.exp(-minutes_ahead / DECAY_MIN))


# How the next steps mix the value now with the typical curve ----------------------------

MIN_FIT_SAMPLES = 30  # fewer backtest samples at a horizon than this keep the unfitted blend
FIT_DAYS = 7  # the hub fits its blend on the last week, forecast from a profile learned before it
MARGIN = 1.03  # a blend must beat persistence by this much on the week it is fitted on
FLAT = 0.05  # the typical curve counts as flat where it moves less than this share of its peak
USUALLY = 0.8  # "usually within": the share of backtest errors the stated error covers

Sample = tuple[float, float, float, float]  # value now, typical now, typical then, actual then


@dataclass(frozen=True)
class Blend:
    """Per horizon (1 = 15 minutes ahead ... NEXT_STEPS): the forecast is the value
    now, plus ``slope`` times the typical curve's change from now to then, plus
    ``pull`` times the gap from the value now back to the typical curve.

    ``carry`` is slope 1 and pull 1 - exp(-minutes / DECAY_MIN), persistence is 0
    and 0. Fifteen minutes ahead the carry trusted the typical curve's slope fully,
    and that slope, a median over weeks smoothed over an hour, rises and falls where
    this day's visitors do not: the fit learns how much of it a facility's own past
    bears out. ``error`` is the backtest's absolute error (people) that ``USUALLY``
    of the forecasts stayed within, None where there were too few."""

    slope: tuple[float, ...]
    pull: tuple[float, ...]
    error: tuple[float | None, ...]
    samples: int = 0

    def value(self, steps: int, current: float, typical_now: float, typical_then: float) -> float:
        k = min(max(steps, 1), len(self.slope)) - 1
        return max(
            0.0,
            current
            + self.slope[k] * (typical_then - typical_now)
            + self.pull[k] * (typical_now - current),
        )


def unfitted_blend(steps: int = NEXT_STEPS) -> Blend:
    """The carry, as a blend: what a facility gets until its own past can choose."""
    return Blend(
        tuple(1.0 for _ in range(steps)),
        tuple(1 - math.exp(-15 * (k + 1) / DECAY_MIN) for k in range(steps)),
        tuple(None for _ in range(steps)),
    )


def blend_samples(
    days: Mapping[date, Day],
    curve_of: Callable[[date], Day | None],
    test: Iterable[date],
    steps: int,
) -> dict[int, list[Sample]]:
    """Per horizon, (value now, typical now, typical then, actual) over the open span
    of each day in ``test`` (first to last non-zero slot), the typical curve of each
    day from ``curve_of`` (learned before that day)."""
    out: dict[int, list[Sample]] = {h: [] for h in range(1, steps + 1)}
    for day in test:
        actual = days.get(day)
        curve = curve_of(day) if actual is not None else None
        if actual is None or curve is None:
            continue
        busy = [s for s, v in enumerate(actual) if v]
        if not busy:
            continue
        for origin in range(busy[0], busy[-1] + 1):
            now, c_now = actual[origin], curve[origin]
            if now is None or c_now is None:
                continue
            for h in out:
                target = origin + h
                if target > busy[-1]:
                    break
                a, c = actual[target], curve[target]
                if a is not None and c is not None:
                    out[h].append((now, c_now, c, a))
    return out


def fit_blend(samples: Mapping[int, list[Sample]], steps: int = NEXT_STEPS) -> Blend:
    """Per horizon, the slope and pull fitted by least squares on ``samples`` (each
    kept within 0..1, see ``_least_squares``), then whichever of that fit, the
    unfitted blend and persistence has the smallest mean absolute error on them; too
    few samples keep the unfitted blend at that horizon."""
    base = unfitted_blend(steps)
    slope, pull, error = list(base.slope), list(base.pull), list(base.error)
    total = 0
    for h in range(1, steps + 1):
        rows = samples.get(h, [])
        if len(rows) < MIN_FIT_SAMPLES:
            continue
        total += len(rows)
        candidates = [(slope[h - 1], pull[h - 1]), (0.0, 0.0), _least_squares(rows, pull[h - 1])]
        best = min(candidates, key=lambda c: _cost(rows, *c) * (1.0 if c == (0.0, 0.0) else MARGIN))
        slope[h - 1], pull[h - 1] = best
        misses = sorted(
            abs(max(0.0, now + best[0] * (then - c_now) + best[1] * (c_now - now)) - actual)
            for now, c_now, then, actual in rows
        )
        error[h - 1] = misses[min(len(misses) - 1, int(USUALLY * len(misses)))]
    return Blend(tuple(slope), tuple(pull), tuple(error), total)


def _cost(rows: list[Sample], slope: float, pull: float) -> float:
    return sum(
        abs(max(0.0, now + slope * (then - c_now) + pull * (c_now - now)) - actual)
        for now, c_now, then, actual in rows
    )


def _least_squares(rows: list[Sample], prior_pull: float) -> tuple[float, float]:
    """actual - now ~ slope * (then - typical now) + pull * (typical now - now).

    The pull (how fast a deviation fades) is learned where the typical curve is
    flat only: at its ramps the smoothed curve is off by itself, and that would
    read as deviations that vanish at once. Without real deviations on a flat
    curve there is no evidence, and the prior stays. The slope follows, given it."""
    scale = max((max(c_now, then) for _, c_now, then, _ in rows), default=0.0) or 1.0
    syy = syr = 0.0
    flat = 0
    for now, c_now, then, actual in rows:
        if abs(then - c_now) <= FLAT * scale:
            y = c_now - now
            syy, syr, flat = syy + y * y, syr + y * (actual - now - (then - c_now)), flat + 1
    pull = prior_pull
    if flat and syy > flat * (FLAT * scale) ** 2:
        pull = min(1.0, max(0.0, syr / syy))
    sxx = sxr = 0.0
    for now, c_now, then, actual in rows:
        x = then - c_now
        sxx, sxr = sxx + x * x, sxr + x * (actual - now - pull * (c_now - now))
    slope = min(1.0, max(0.0, sxr / sxx)) if sxx > 0 else 1.0
    return slope, pull


COLD_DAYS = 21  # until this many days of its own, a facility leans on its peers' shape


def borrow_shape(own: Profile, peers: list[Profile]) -> Profile:
    """A young facility's profile, leaning on the shape of peers of the same kind.

    Each weekday's curve is the median of the peers' curves, each scaled to this
    facility's level (its own curve's total over the peer's, on the slots both
    have), kept to the slots this facility was open on that weekday, and blended
    with its own curve by how much history it has (all its own from ``COLD_DAYS``)."""
    if not peers or own.basis_days >= COLD_DAYS or own.basis_days == 0:
        return own
    weight = own.basis_days / COLD_DAYS
    by_type: list[Day] = []
    for kind, mine in enumerate(own.by_type):
        scaled: list[Day] = []
        for peer in peers:
            theirs = peer.by_type[kind]
            pairs = [(m, t) for m, t in zip(mine, theirs, strict=True) if m and t]
            total = sum(t for _, t in pairs)
            if total > 0:
                ratio = sum(m for m, _ in pairs) / total
                scaled.append([None if t is None else t * ratio for t in theirs])
        curve: Day = []
        for slot, value in enumerate(mine):
            borrowed = [c[slot] for c in scaled if c[slot] is not None]
            if not value or not borrowed:
                curve.append(value)
            else:
                curve.append(weight * value + (1 - weight) * statistics.median(borrowed))  # type: ignore[arg-type]
        by_type.append(curve)
    return Profile(by_type, own.basis_days, own.blend, level=own.level)


# Holidays ---------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _holiday_set(country: str, subdivision: str | None, extra: tuple[date, ...]) -> frozenset[date]:
    import holidays

    found: set[date] = set(extra)
    if country:
        today = datetime.now(UTC).year
        calendar = holidays.country_holidays(
            country, subdiv=subdivision, years=range(today - 3, today + 2)
        )
        found.update(calendar.keys())
    return frozenset(found)


def holiday_checker(settings: ForecastSettings) -> Callable[[date], bool]:
    days = _holiday_set(
        settings.holidays_country, settings.holidays_subdivision, tuple(settings.extra_holidays)
    )
    return days.__contains__


# The forecast -----------------------------------------------------------------------------

_cache: weakref.WeakKeyDictionary[Store, dict[tuple[str, str, date], Profile]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def _profile(
    store: Store,
    facility: Facility,
    settings: ForecastSettings,
    today: date,
    peers: tuple[Facility, ...] = (),
) -> Profile:
    """The facility's profile for ``today``; under ``COLD_DAYS`` of its own history
    it leans on the shape of ``peers`` of its kind that have that much."""
    peers = tuple(p for p in peers if p.kind == facility.kind and p.id != facility.id)
    key = (
        facility.model_dump_json(),
        settings.model_dump_json(),
        today,
        tuple(p.id for p in peers),
    )
    with _cache_lock:
        found = _cache.get(store, {}).get(key)
    if found is not None:
        return found
    zone = facility.zone
    start = datetime.combine(today - timedelta(weeks=settings.history_weeks), time(), zone)
    end = datetime.combine(today, time(), zone)
    buckets = store.history(facility.id, start.astimezone(UTC), end.astimezone(UTC), STEP_S)
    points = [(b.start, b.occupancy_avg) for b in buckets if b.occupancy_avg is not None]
    max_gap = max(1, facility.stale_after // STEP_S)
    days = day_slots(points, zone, max_gap)
    is_holiday = holiday_checker(settings)
    profile = learn_profile(days, is_holiday, today, settings.history_weeks)
    if profile.basis_days:
        before = learn_profile(
            days, is_holiday, today - timedelta(days=FIT_DAYS), settings.history_weeks
        )
        week = [today - timedelta(days=k) for k in range(FIT_DAYS, 0, -1)]
        samples = blend_samples(days, lambda d: before.for_day(d, is_holiday(d)), week, NEXT_STEPS)
        profile.blend = fit_blend(samples)
    if 0 < profile.basis_days < COLD_DAYS and peers:
        grown = [(p.id, _profile(store, p, settings, today)) for p in peers]
        grown = [(name, q) for name, q in grown if q.basis_days >= COLD_DAYS]
        if grown:
            blend = profile.blend
            profile = borrow_shape(profile, [q for _, q in grown])
            profile.blend, profile.borrowed_from = blend, tuple(name for name, _ in grown)
    with _cache_lock:
        per_store = _cache.setdefault(store, {})
        if len(per_store) > 256:
            per_store.clear()
        per_store[key] = profile
    return profile


@dataclass(frozen=True)
class _Hours:
    """A day's opening hours: ``known`` False when none are configured for that
    weekday; ``span`` None when closed all day."""

    known: bool
    span: tuple[time, time] | None

    @classmethod
    def of(cls, facility: Facility, day: date) -> _Hours:
        value = facility.opening_hours.get(WEEKDAYS[day.weekday()])
        return cls(False, None) if value is None else cls(True, parse_hours(value))

    def open_at(self, local: datetime) -> bool | None:
        if not self.known:
            return None
        return self.span is not None and self.span[0] <= local.time() < self.span[1]


def _current(store: Store, facility: Facility, now: datetime) -> float | None:
    """The latest measured occupancy, if it is still fresh."""
    fresh = timedelta(seconds=min(facility.stale_after, 3600))
    buckets = store.history(facility.id, now - fresh, now + timedelta(seconds=1), 60)
    for bucket in reversed(buckets):
        if bucket.occupancy_avg is not None:
            return bucket.occupancy_avg
    return None


def _clock(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%H:%M")


def _floor(at: datetime) -> datetime:
    return at - timedelta(seconds=at.timestamp() % STEP_S)


def facility_forecast(
    store: Store,
    facility: Facility,
    now: datetime,
    settings: ForecastSettings | None = None,
    peers: tuple[Facility, ...] = (),
) -> Forecast:
    """The forecast for ``facility`` as seen at ``now`` (aware datetime); ``settings``
    (the hub's ``[forecast]``) gives the holidays, Finland's by default; ``peers``
    (the deployment's facilities) lend a young facility their shape."""
    settings = settings or ForecastSettings()
    zone = facility.zone
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    is_holiday = holiday_checker(settings)
    profile = _profile(store, facility, settings, today, peers)
    capacity = facility.capacity

    def typical(at: datetime) -> float | None:
        """The typical value at ``at`` (today or tomorrow): 0 while closed."""
        local = at.astimezone(zone)
        if _Hours.of(facility, local.date()).open_at(local) is False:
            return 0.0
        return profile.for_day(local.date(), is_holiday(local.date()))[slot_of(local)]

    def point(at: datetime, value: float | None) -> ForecastPoint:
        if value is not None and capacity:
            value = min(value, float(capacity))
        return ForecastPoint(
            at=at,
            local_time=_clock(at, zone),
            occupancy=round(value, 1) if value is not None else None,
            occupancy_pct=round(100 * value / capacity, 1)
            if value is not None and capacity
            else None,
        )

    midnight = datetime.combine(today, time(), zone).astimezone(UTC)
    next_midnight = datetime.combine(today + timedelta(days=1), time(), zone).astimezone(UTC)
    steps = [midnight + k * STEP for k in range(int((next_midnight - midnight) / STEP))]
    known = profile.basis_days > 0
    typical_today = [point(at, typical(at)) for at in steps] if known else []

    current = _current(store, facility, now)
    typical_now = typical(now) if known else None
    blend = profile.blend or unfitted_blend()
    next_2h: list[ForecastPoint] = []
    for k in range(1, NEXT_STEPS + 1):
        at = _floor(now) + k * STEP
        value = typical(at) if known else None
        local = at.astimezone(zone)
        still_open = _Hours.of(facility, local.date()).open_at(local) is not False
        if value is not None and current is not None and typical_now is not None and still_open:
            value = blend.value(k, current, typical_now, value)
        next_2h.append(point(at, value))

    hours = _Hours.of(facility, today)
    expected = {p.at: p.occupancy for p in next_2h}
    return Forecast(
        facility=facility.id,
        generated_at=now,
        timezone=facility.timezone,
        capacity=capacity,
        basis_days=profile.basis_days,
        borrowed_from=list(profile.borrowed_from),
        holiday=is_holiday(today),
        typical_today=typical_today,
        usually_busy_at=_busy(typical_today, capacity, zone),
        best_time_today=_best(typical_today, expected, hours, now, zone),
        next_2h=next_2h,
        next_2h_error=[
            None if p.occupancy is None or e is None else round(e, 1)
            for p, e in zip(next_2h, blend.error, strict=True)
        ],
    )


def _range(start: datetime, end: datetime, zone: ZoneInfo) -> TimeRange:
    return TimeRange(
        start=start, end=end, local_start=_clock(start, zone), local_end=_clock(end, zone)
    )


def _busy(points: list[ForecastPoint], capacity: int | None, zone: ZoneInfo) -> list[TimeRange]:
    """Stretches of 30 minutes or more within ``BUSY_SHARE`` of the typical peak,
    when that peak is at least moderately full."""
    peak = max((p.occupancy for p in points if p.occupancy is not None), default=0.0)
    if peak <= 0 or (capacity and 100 * peak / capacity < BUSY_MIN_PCT):
        return []
    ranges: list[TimeRange] = []
    run: list[ForecastPoint] = []
    for p in [*points, None]:
        if p is not None and p.occupancy is not None and p.occupancy >= BUSY_SHARE * peak:
            run.append(p)
            continue
        if len(run) >= 2:
            ranges.append(_range(run[0].at, run[-1].at + STEP, zone))
        run = []
    return ranges


def _best(
    points: list[ForecastPoint],
    expected: Mapping[datetime, float | None],
    hours: _Hours,
    now: datetime,
    zone: ZoneInfo,
) -> TimeRange | None:
    """The quietest ``BEST_WINDOW`` from now to closing, by the next-two-hours
    forecast where it reaches and the typical day after; within opening hours
    (or, where none are configured, within the hours with usual visitors)."""
    if not points:
        return None
    if hours.known:
        if hours.span is None:
            return None
        today = now.astimezone(zone).date()
        opens = datetime.combine(today, hours.span[0], zone).astimezone(UTC)
        closes = datetime.combine(today, hours.span[1], zone).astimezone(UTC)
        closes = _floor(closes + timedelta(seconds=STEP_S - 1))  # 23:59:59 closes at 24:00
    else:
        visited = [p.at for p in points if p.occupancy]
        if not visited:
            return None
        opens, closes = visited[0], visited[-1] + STEP
    typical = {p.at: p.occupancy for p in points}
    slots = int(BEST_WINDOW / STEP)
    best: tuple[float, datetime] | None = None
    start = max(opens, _floor(now + STEP - timedelta(seconds=1)))
    while start + BEST_WINDOW <= closes:
        values = [expected.get(start + k * STEP) for k in range(slots)]
        values = [
            v if v is not None else typical.get(start + k * STEP) for k, v in enumerate(values)
        ]
        if all(v is not None for v in values):
            score = sum(values) / slots  # type: ignore[arg-type]
            if best is None or score < best[0] - 1e-9:
                best = (score, start)
        start += STEP
    return _range(best[1], best[1] + BEST_WINDOW, zone) if best else None


# Any day, and the moment now: the page's weekday tabs and "busier than usual" ---------


class TypicalDay(BaseModel):
    """The typical curve of one date, whatever the weekday."""

    day: date
    points: list[ForecastPoint] = Field(description="Every 15 minutes, local midnight to midnight.")
    usually_busy_at: list[TimeRange]


def _typical_value(
    profile: Profile, facility: Facility, local: datetime, holiday: bool
) -> float | None:
    """0 while closed by the opening hours, else the profile's slot (None if unknown)."""
    if _Hours.of(facility, local.date()).open_at(local) is False:
        return 0.0
    return profile.for_day(local.date(), holiday)[slot_of(local)]


def typical_day(
    store: Store, facility: Facility, day: date, now: datetime, settings: ForecastSettings
) -> TypicalDay:
    """The typical ``day`` (any date) as learned by ``now``; no points before any history."""
    zone = facility.zone
    profile = _profile(store, facility, settings, now.astimezone(zone).date())
    if profile.basis_days == 0:
        return TypicalDay(day=day, points=[], usually_busy_at=[])
    holiday = holiday_checker(settings)(day)
    capacity = facility.capacity
    at = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    points: list[ForecastPoint] = []
    while at < end:
        value = _typical_value(profile, facility, at.astimezone(zone), holiday)
        if value is not None and capacity:
            value = min(value, float(capacity))
        points.append(
            ForecastPoint(
                at=at,
                local_time=_clock(at, zone),
                occupancy=round(value, 1) if value is not None else None,
                occupancy_pct=round(100 * value / capacity, 1)
                if value is not None and capacity
                else None,
            )
        )
        at += STEP
    return TypicalDay(day=day, points=points, usually_busy_at=_busy(points, capacity, zone))


def typical_now(
    store: Store, facility: Facility, now: datetime, settings: ForecastSettings
) -> float | None:
    """The typical occupancy at this moment of this weekday; None before any history."""
    zone = facility.zone
    local = now.astimezone(zone)
    profile = _profile(store, facility, settings, local.date())
    if profile.basis_days == 0:
        return None
    return _typical_value(profile, facility, local, holiday_checker(settings)(local.date()))
