"""What the API, the WebSocket and the page say about a facility: one shape."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from hub.config import Facility
from hub.state import is_open
from ruuhka.contract import FacilityState, Quality


class Level(StrEnum):
    QUIET = "quiet"
    MODERATE = "moderate"
    BUSY = "busy"
    FULL = "full"


def level_for(pct: float | None) -> Level | None:
    if pct is None:
        return None
    if pct < 35:
        return Level.QUIET
    if pct < 65:
        return Level.MODERATE
    if pct < 90:
        return Level.BUSY
    return Level.FULL


class FacilityOut(BaseModel):
    """A facility as the public API shows it."""

    id: str
    name: str = Field(description="In the requested language.")
    kind: str
    occupancy: int | None = Field(description="People there now; null when unknown.")
    capacity: int | None
    occupancy_pct: float | None = Field(description="Occupancy as % of capacity.")
    level: Level | None = Field(description="quiet / moderate / busy / full.")
    updated_at: datetime | None = Field(description="When the newest value was measured (UTC).")
    age_s: float | None = Field(description="Seconds since updated_at, at response time.")
    stale: bool = Field(description="True when updated_at is older than the kind's threshold.")
    stale_after_s: int
    open_now: bool | None = Field(description="By the configured opening hours; null if unknown.")
    quality: list[Quality] = Field(description="Corrections applied to the derived figures.")
    ice_temp_c: float | None = None
    air_temp_c: float | None = None
    people: int | None = Field(default=None, description="People counted on the camera image.")


def present(
    facility: Facility, state: FacilityState | None, lang: str, now: datetime | None = None
) -> FacilityOut:
    now = now or datetime.now(UTC)
    state = state or FacilityState(facility=facility.id)
    pct = None
    if state.occupancy is not None and facility.capacity:
        pct = round(100 * state.occupancy / facility.capacity, 1)
    age = (now - state.updated_at).total_seconds() if state.updated_at else None
    return FacilityOut(
        id=facility.id,
        name=facility.display_name(lang),
        kind=facility.kind.value,
        occupancy=state.occupancy,
        capacity=facility.capacity,
        occupancy_pct=pct,
        level=level_for(pct),
        updated_at=state.updated_at.astimezone(UTC) if state.updated_at else None,
        age_s=round(age, 1) if age is not None else None,
        stale=age is None or age > facility.stale_after,
        stale_after_s=facility.stale_after,
        open_now=is_open(facility, now),
        quality=state.quality,
        ice_temp_c=state.ice_temp_c,
        air_temp_c=state.air_temp_c,
        people=state.people,
    )
