"""What the API, the WebSocket and the page say about a facility: one shape."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from hub.config import WEEKDAYS, Facility
from hub.crew.conditions import condition_fields
from hub.crew.maintenance import Latest
from hub.state import is_open
from hub.trend import Trend
from ruuhka.contract import CameraStatus, FacilityState, Quality


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
    occupancy_pct: float | None = Field(
        description="Occupancy as % of capacity; for a place counted only by a camera that "
        "watches spots, spots in use as % of spots."
    )
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
    snapshot_at: datetime | None = Field(
        default=None, description="When the latest anonymised camera picture was taken (UTC)."
    )
    snapshot_url: str | None = Field(
        default=None,
        description="The latest picture; the v parameter names it, so a new picture has a "
        "new URL (404 once older than the hub's picture retention).",
    )
    camera_status: CameraStatus | None = Field(
        default=None, description="ok, or why the camera publishes no picture (it fails closed)."
    )
    spots: int | None = Field(default=None, description="Washing spots the camera watches.")
    spots_in_use: int | None = Field(
        default=None, description="Washing spots in use on the latest picture; null when unknown."
    )
    people_waiting: int | None = Field(
        default=None,
        description="People on the picture who are not at a spot (people beyond one per spot "
        "in use); null unless the camera watches spots and counted.",
    )
    count_simulated: bool = Field(
        default=False, description="The camera's figures come from a simulation (a demo)."
    )
    trend: Trend | None = Field(
        default=None,
        description="Occupancy now against ten minutes ago; null when unknown or stale.",
    )
    hours_today: str | None = Field(
        default=None,
        description='Opening hours today, local time: "06:00-21:00" or "closed"; null if unknown.',
    )
    condition: str | None = Field(
        default=None, description="The newest maintenance logged (e.g. iced); null when unknown."
    )
    condition_label: str | None = Field(default=None, description="condition, in words.")
    condition_quality: str | None = Field(
        default=None, description="good / satisfactory / unusable."
    )
    condition_at: datetime | None = Field(default=None, description="When the work was done.")
    condition_expires_at: datetime | None = Field(
        default=None, description="After this the condition reads as unknown (kind-specific)."
    )
    condition_state: str = Field(
        default="unknown", description='"known", or "unknown" when none or too old.'
    )
    condition_text: str | None = Field(
        default=None, description='E.g. "Iced today 06:30", in the facility\'s time zone.'
    )
    notice: str | None = Field(default=None, description="The crew's current notice.")
    notice_at: datetime | None = None


def present(
    facility: Facility,
    state: FacilityState | None,
    lang: str,
    now: datetime | None = None,
    trend: Trend | None = None,
    condition: Latest | None = None,
) -> FacilityOut:
    now = now or datetime.now(UTC)
    state = state or FacilityState(facility=facility.id)
    pct = None
    if state.occupancy is not None and facility.capacity:
        pct = round(100 * state.occupancy / facility.capacity, 1)
    waiting = None
    if state.people is not None and state.spots_in_use is not None and state.spots:
        waiting = max(0, state.people - state.spots_in_use)
    level = level_for(pct)
    if state.occupancy is None and state.spots and state.spots_in_use is not None:
        # Counted only by a camera that watches spots: how full is how many spots are taken,
        # and anyone waiting for one means full.
        pct = round(100 * min(state.spots_in_use, state.spots) / state.spots, 1)
        level = Level.FULL if waiting else level_for(pct)
    snapshot_url = None
    if state.snapshot_at is not None:
        version = round(state.snapshot_at.timestamp() * 1000)
        snapshot_url = f"/api/v1/facilities/{facility.id}/snapshot.jpg?v={version}"
    age = (now - state.updated_at).total_seconds() if state.updated_at else None
    stale = age is None or age > facility.stale_after
    weekday = WEEKDAYS[now.astimezone(facility.zone).weekday()]
    return FacilityOut(
        id=facility.id,
        name=facility.display_name(lang),
        kind=facility.kind.value,
        occupancy=state.occupancy,
        capacity=facility.capacity,
        occupancy_pct=pct,
        level=level,
        updated_at=state.updated_at.astimezone(UTC) if state.updated_at else None,
        age_s=round(age, 1) if age is not None else None,
        stale=stale,
        stale_after_s=facility.stale_after,
        open_now=is_open(facility, now),
        quality=state.quality,
        ice_temp_c=state.ice_temp_c,
        air_temp_c=state.air_temp_c,
        people=state.people,
        snapshot_at=state.snapshot_at.astimezone(UTC) if state.snapshot_at else None,
        snapshot_url=snapshot_url,
        camera_status=state.camera_status,
        spots=state.spots,
        spots_in_use=state.spots_in_use,
        people_waiting=waiting,
        count_simulated=state.count_simulated,
        trend=None if stale else trend,
        hours_today=facility.opening_hours.get(weekday),
        **condition_fields(condition, lang, facility.zone, now),
    )
