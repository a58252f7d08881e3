"""Forecasts learned from a real (SQLite) store, and the forecast endpoint of a running hub."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise
from pathlib import Path

import pytest

from hub.config import Facility, ForecastSettings
from hub.forecast import SLOTS, day_slots, facility_forecast, learn_profile
from hub.state import Tracker
from hub.store import SavedState, Store
from hub.store.sqlite import SQLiteStore
from ruuhka.broker import Broker
from ruuhka.contract import FacilityState
from tests.conftest import HubProcess, faketime_env, http_get, mosquitto_pub, wait_for
from tests.seed import HELSINKI, past_days, pool_day, seed

WEDNESDAY = date(2026, 11, 18)


def pool(**extra: object) -> Facility:
    return Facility.model_validate(
        {"id": "pool", "kind": "swimming_hall", "capacity": 100, "name": {"en": "Pool"}, **extra}
    )


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), HELSINKI)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = SQLiteStore(tmp_path / "store.db")
    yield opened
    opened.close()


def test_typical_day_busy_hours_and_the_best_time(store: Store) -> None:
    seed(store, "pool", past_days(WEDNESDAY, 21), pool_day)
    forecast = facility_forecast(store, pool(), local(WEDNESDAY, 9, 5))
    assert forecast.basis_days == 21 and not forecast.holiday
    assert len(forecast.typical_today) == SLOTS
    typical = {p.local_time: p.occupancy for p in forecast.typical_today}
    assert typical["17:00"] == 80 and typical["12:00"] == 10 and typical["03:00"] == 0
    (busy,) = forecast.usually_busy_at
    assert "15:45" <= busy.local_start <= "16:30" and "17:30" <= busy.local_end <= "18:15"
    # Quiet all morning: the earliest quiet hour still ahead, not the one under way.
    assert forecast.best_time_today is not None
    assert (forecast.best_time_today.local_start, forecast.best_time_today.local_end) == (
        "09:15",
        "10:15",
    )
    steps = [p.at for p in forecast.next_2h]
    assert [p.local_time for p in forecast.next_2h][:2] == ["09:15", "09:30"]
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(steps))
    assert len(steps) == 8 and all(p.occupancy == 10 for p in forecast.next_2h)
    assert forecast.next_2h[0].occupancy_pct == 10.0


def test_the_next_two_hours_carry_todays_deviation(store: Store) -> None:
    """Every third day of the past was busier all day long: a deviation lasts, and
    the blend fitted on the last week carries a busy morning on."""
    history = past_days(WEDNESDAY, 21)
    busy = set(history[::3])
    seed(store, "pool", history, lambda at: pool_day(at) * (3 if at.date() in busy else 1))
    now = local(WEDNESDAY, 10)
    live = FacilityState(
        facility="pool", revision=1, occupancy=30, updated_at=now - timedelta(minutes=2)
    )
    store.commit([], [SavedState(live, Tracker())], [])
    forecast = facility_forecast(store, pool(), now)
    ahead = [p.occupancy for p in forecast.next_2h]
    assert ahead[0] is not None and ahead[0] >= 28, ahead  # follows it at first
    assert all(o is not None and 20 <= o <= 30 for o in ahead), ahead
    assert all(e is not None and e >= 0 for e in forecast.next_2h_error)


def test_a_step_change_nobody_saw_before_fades_back(store: Store) -> None:
    """A pure weekly pattern shows no deviation: the fit has no evidence on how long
    one lasts, and today's step fades back towards the typical curve."""
    seed(store, "pool", past_days(WEDNESDAY, 21), pool_day)
    now = local(WEDNESDAY, 10)
    live = FacilityState(
        facility="pool", revision=1, occupancy=50, updated_at=now - timedelta(minutes=2)
    )
    store.commit([], [SavedState(live, Tracker())], [])
    ahead = [p.occupancy for p in facility_forecast(store, pool(), now).next_2h]
    assert all(o is not None and 10 < o <= 50 for o in ahead), ahead
    assert ahead == sorted(ahead, reverse=True) and ahead[-1] < 40, ahead  # fading back


def test_best_time_keeps_to_opening_hours(store: Store) -> None:
    seed(store, "pool", past_days(WEDNESDAY, 21), pool_day)
    hours = {"opening_hours": {"wed": "12:00-20:00", "thu": "closed"}}
    forecast = facility_forecast(store, pool(**hours), local(WEDNESDAY, 7))
    best = forecast.best_time_today
    assert best is not None and (best.local_start, best.local_end) == ("12:00", "13:00")
    typical = {p.local_time: p.occupancy for p in forecast.typical_today}
    assert typical["11:45"] == 0 and typical["20:00"] == 0  # closed by the hours
    late = facility_forecast(store, pool(**hours), local(WEDNESDAY, 19, 10))
    assert late.best_time_today is None  # under an hour left
    closed = facility_forecast(store, pool(**hours), local(WEDNESDAY + timedelta(days=1), 9))
    assert closed.best_time_today is None
    assert all(p.occupancy == 0 for p in closed.typical_today)


def test_without_history_nothing_is_made_up(store: Store) -> None:
    forecast = facility_forecast(store, pool(), local(WEDNESDAY, 9))
    assert forecast.basis_days == 0 and forecast.typical_today == []
    assert forecast.usually_busy_at == [] and forecast.best_time_today is None
    assert len(forecast.next_2h) == 8 and all(p.occupancy is None for p in forecast.next_2h)


def test_a_holiday_is_forecast_like_a_sunday(store: Store) -> None:
    def week(at: datetime) -> int:
        if at.weekday() == 6:
            return 60 if 12 <= at.hour < 14 else 5
        return pool_day(at)

    independence_day = date(2026, 12, 6)  # a Sunday in 2026; take a weekday one
    tuesday = date(2026, 12, 8)
    seed(store, "pool", past_days(tuesday, 21), week)
    settings = ForecastSettings(extra_holidays=[tuesday])
    forecast = facility_forecast(store, pool(), local(tuesday, 8), settings)
    assert forecast.holiday
    typical = {p.local_time: p.occupancy for p in forecast.typical_today}
    assert typical["13:00"] == 60 and typical["17:00"] == 5
    # Finland's holidays are the default; Independence Day was left out of Sundays' learning.
    sunday = facility_forecast(store, pool(), local(independence_day, 8))
    assert sunday.holiday


def test_closed_days_and_gaps_do_not_bend_the_typical_day() -> None:
    wednesdays = [WEDNESDAY - timedelta(weeks=n) for n in range(1, 5)]
    points: list[tuple[datetime, float]] = []
    for n, day in enumerate(wednesdays):
        for slot in range(SLOTS):
            at = local(day, 0) + timedelta(minutes=15 * slot)
            if n in (1, 2):
                value = 0.0  # closed for maintenance two weeks running
            elif n == 3 and 40 <= slot < 56:
                continue  # the counter was offline 10-14
            else:
                value = float(pool_day(at))
            points.append((at.astimezone(UTC), value))
    days = day_slots(points, HELSINKI, max_gap=1)
    assert days[wednesdays[3]][40] == 10 and days[wednesdays[3]][41] is None
    profile = learn_profile(days, lambda d: False, WEDNESDAY, weeks=8)
    curve = profile.for_day(WEDNESDAY, holiday=False)
    assert curve[17 * 4] == 80 and curve[12 * 4] == 10
    assert profile.basis_days == 2


# Against a running hub --------------------------------------------------------------------


# The hub's wall clock starts here (libfaketime), whenever the test runs.
NOON = local(WEDNESDAY, 12)


@pytest.fixture
def seeded_hub(tmp_path: Path, hub_config: Path, hub_port: int) -> Iterator[HubProcess]:
    """The test hub, its clock at noon, with three weeks of the pool's history."""
    db = SQLiteStore(tmp_path / "hub.db")
    seed(db, "pool", past_days(WEDNESDAY, 21), pool_day)
    db.close()
    env = faketime_env(NOON)
    process = HubProcess(hub_config, hub_port, tmp_path / "hub.log", env).start()
    try:
        yield process
    finally:
        process.stop()


def test_the_forecast_endpoint(seeded_hub: HubProcess, broker: Broker) -> None:
    forecast = seeded_hub.get("/api/v1/facilities/pool/forecast")
    assert forecast["facility"] == "pool" and forecast["basis_days"] == 21
    typical = {p["local_time"]: p["occupancy"] for p in forecast["typical_today"]}
    assert typical["17:00"] == 80 and typical["12:00"] == 10
    assert [r["local_start"] for r in forecast["usually_busy_at"]] == ["16:15"]
    assert len(forecast["next_2h"]) == 8
    assert forecast["next_2h"][0]["at"].endswith("Z")
    assert forecast["next_2h"][0]["local_time"] in ("12:00", "12:15")  # the pinned clock
    # At noon the quietest hour is ahead, never in the busy 16-18, and the page says so.
    best = forecast["best_time_today"]
    assert best is not None and "12:00" <= best["local_start"] < "21:00", best
    assert not (best["local_start"] < "18:00" and best["local_end"] > "16:00"), best
    _, page = http_get(seeded_hub.url + "/facilities/pool?lang=en")
    # The hub's clock runs on: in the first second after noon the hour under way
    # still counts, so the page may have been made a step later than the API's answer.
    later = seeded_hub.get("/api/v1/facilities/pool/forecast")["best_time_today"]
    said = {f"Best time to go today: {b['local_start']}–{b['local_end']}" for b in (best, later)}
    assert any(text in page for text in said), said
    # A live reading far above the usual lifts the next two hours.
    with urllib.request.urlopen(seeded_hub.url + "/healthz", timeout=10) as response:
        hub_now = parsedate_to_datetime(response.headers["Date"])  # the hub's own clock
    assert abs(hub_now - NOON) < timedelta(minutes=5)
    now = hub_now.isoformat().replace("+00:00", "Z")
    mosquitto_pub(
        broker,
        "ruuhka/v1/devices/test-gate/count",
        json.dumps({"seq": 1, "ts": now, "counter": "main", "occupancy": 99}),
    )
    wait_for(lambda: seeded_hub.facility("pool")["occupancy"] == 99, 15, "the live reading")
    lifted = seeded_hub.get("/api/v1/facilities/pool/forecast")["next_2h"]
    assert all(p["occupancy"] > typical[p["local_time"]] for p in lifted)
    rink = seeded_hub.get("/api/v1/facilities/rink/forecast")
    assert rink["basis_days"] == 0 and rink["typical_today"] == []
    status, _ = http_get(seeded_hub.url + "/api/v1/facilities/nowhere/forecast")
    assert status == 404


def test_the_page_gives_the_expected_error_and_the_history_in_words(store: Store) -> None:
    from web.i18n import Formatter
    from web.pages import _insights

    history = past_days(WEDNESDAY, 21)
    busy = set(history[::3])
    seed(store, "pool", history, lambda at: pool_day(at) * (3 if at.date() in busy else 1))
    now = local(WEDNESDAY, 10)
    forecast = facility_forecast(store, pool(), now)
    forecast.next_2h_error = [4.6] * len(forecast.next_2h)
    lines = _insights(forecast, Formatter("en"), HELSINKI, now.astimezone(UTC))
    assert any(line.endswith("(usually within ±5)") for line in lines), lines
    assert "Forecast from 21 days of history" in lines
    fi = _insights(forecast, Formatter("fi"), HELSINKI, now.astimezone(UTC))
    assert "Arvio perustuu 21 päivän historiaan" in fi
    forecast.next_2h_error = [0.4] * len(forecast.next_2h)  # under one person: not worth saying
    lines = _insights(forecast, Formatter("en"), HELSINKI, now.astimezone(UTC))
    assert not any("usually within" in line for line in lines)


def test_a_facility_with_a_week_of_history_leans_on_its_kind(store: Store) -> None:
    """Its one week had no evening peak (say, a school group cancelled); three weeks
    of another pool show one: the young pool's typical day gets part of it, at its
    own level, and the forecast says whose shape it borrowed."""
    seed(store, "pool", past_days(WEDNESDAY, 21), pool_day)
    seed(store, "young", past_days(WEDNESDAY, 7), lambda at: 5 if 6 <= at.hour < 21 else 0)
    young = Facility.model_validate(
        {"id": "young", "kind": "swimming_hall", "capacity": 100, "name": {"en": "Young"}}
    )
    rink = Facility.model_validate(
        {"id": "rink", "kind": "ice_rink", "capacity": 100, "name": {"en": "Rink"}}
    )
    alone = facility_forecast(store, young, local(WEDNESDAY, 9))
    leaning = facility_forecast(store, young, local(WEDNESDAY, 9), peers=(pool(), young, rink))
    assert alone.borrowed_from == [] and leaning.borrowed_from == ["pool"]
    assert leaning.basis_days == 7
    typical = {p.local_time: p.occupancy for p in leaning.typical_today}
    assert typical["12:00"] is not None and 2 < typical["12:00"] < 5
    assert typical["17:00"] is not None and 10 < typical["17:00"] < 40
    assert typical["03:00"] == 0


def test_a_daylight_saving_change_keeps_the_typical_day_on_local_time() -> None:
    """Four weeks across the autumn change (25 October 2026, a 25-hour Sunday):
    the Sunday after it is still busy at 17 local and quiet before 6."""
    sunday = date(2026, 11, 1)
    points: list[tuple[datetime, float]] = []
    for day in past_days(sunday, 28):
        at = local(day, 0).astimezone(UTC)
        end = local(day + timedelta(days=1), 0).astimezone(UTC)
        while at < end:
            points.append((at, float(pool_day(at.astimezone(HELSINKI)))))
            at += timedelta(minutes=15)
    days = day_slots(points, HELSINKI, max_gap=1)
    curve = learn_profile(days, lambda d: False, sunday, weeks=8).for_day(sunday, holiday=False)
    assert curve[17 * 4] == 80 and curve[12 * 4] == 10 and curve[5 * 4] == 0


def _pool_days(days: list[date], scale: dict[date, float]) -> dict[date, list[float | None]]:
    points = [
        (at.astimezone(UTC), pool_day(at) * scale.get(day, 1.0))
        for day in days
        for at in (local(day, 0) + timedelta(minutes=15 * slot) for slot in range(SLOTS))
    ]
    return day_slots(points, HELSINKI, max_gap=1)


def test_a_busier_stretch_carries_over_to_the_typical_day() -> None:
    """Five weeks of one weekly pattern, the last four days half as busy again (a
    school holiday began): no earlier Wednesday was busier, but the last week shows
    the level carrying over from day to day, so today's typical day follows it part
    of the way."""
    history = past_days(WEDNESDAY, 35)
    busier = {day: 1.5 for day in history[-4:]}
    profile = learn_profile(_pool_days(history, busier), lambda d: False, WEDNESDAY, weeks=8)
    assert 1.1 < profile.level <= 1.5, profile.level
    peak = profile.for_day(WEDNESDAY, holiday=False)[17 * 4]
    assert peak is not None and 88 < peak <= 120, peak


def test_a_steady_week_or_one_odd_day_leaves_the_level_alone() -> None:
    history = past_days(WEDNESDAY, 35)
    steady = learn_profile(_pool_days(history, {}), lambda d: False, WEDNESDAY, weeks=8)
    assert steady.level == 1.0
    odd = {history[-1]: 2.0}  # yesterday only: nothing shows that a level carries over
    profile = learn_profile(_pool_days(history, odd), lambda d: False, WEDNESDAY, weeks=8)
    assert profile.level == 1.0
    assert profile.for_day(WEDNESDAY, holiday=False)[17 * 4] == 80
