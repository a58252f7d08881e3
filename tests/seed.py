"""Synthetic history written straight into a real store, for history and forecast tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.state import Tracker
from hub.store import SavedState, Store
from ruuhka.contract import FacilityState

HELSINKI = ZoneInfo("Europe/Helsinki")


def pool_day(local: datetime) -> int:
    """Open 06-21 with 10 people, 80 from 16 to 18; nobody at night."""
    hour = local.hour + local.minute / 60
    if 16 <= hour < 18:
        return 80
    return 10 if 6 <= hour < 21 else 0


def seed(
    store: Store,
    facility: str,
    days: Iterable[date],
    occupancy: Callable[[datetime], int | None],
    zone: ZoneInfo = HELSINKI,
    every: timedelta = timedelta(minutes=5),
) -> int:
    """One derived-state point every ``every`` over each local day; returns the count."""
    states = []
    for day in days:
        at = datetime.combine(day, time(), zone)
        while at.date() == day:
            value = occupancy(at)
            if value is not None:
                state = FacilityState(
                    facility=facility,
                    revision=len(states) + 1,
                    occupancy=value,
                    updated_at=at.astimezone(UTC),
                )
                states.append(SavedState(state, Tracker()))
            at = (at.astimezone(UTC) + every).astimezone(zone)
    store.commit([], states, [])
    return len(states)


def past_days(today: date, count: int) -> list[date]:
    return [today - timedelta(days=n) for n in range(count, 0, -1)]
