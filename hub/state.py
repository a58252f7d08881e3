"""Folding accepted readings into each facility's derived state.

Pure and synchronous so it can be tested without a broker, and so that the
ingest worker can fold a whole batch inside the same store transaction that
records the readings: the derived state and the readings never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hub.config import WEEKDAYS, Facility, parse_hours
from ruuhka.contract import (
    MAX_COUNT,
    CameraStatus,
    CountPayload,
    FacilityState,
    Quality,
    Reading,
    RinkPayload,
    SnapshotPayload,
)

_STICKY = (Quality.COUNTER_RESET, Quality.CLAMPED)


@dataclass
class Tracker:
    """Everything needed to continue deriving after a restart (persisted as JSON)."""

    day: str = ""
    net: int = 0
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    headcounts: dict[str, int] = field(default_factory=dict)
    sticky: list[str] = field(default_factory=list)
    # Newest seq folded in, per device; kept by an owner replica, which derives
    # from its own stream and must skip what it already applied (hub/replicas.py).
    seqs: dict[str, int] = field(default_factory=dict)
    # Set when a reading older than the state arrived: where the recompute that
    # folds it in at its own time must start (hub/rederive.py); ISO time or "".
    late_from: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "net": self.net,
            "counters": {k: list(v) for k, v in self.counters.items()},
            "headcounts": dict(self.headcounts),
            "sticky": list(self.sticky),
            "seqs": dict(self.seqs),
            "late_from": self.late_from,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tracker:
        return cls(
            day=str(data.get("day", "")),
            net=int(data.get("net", 0)),
            counters={k: (int(v[0]), int(v[1])) for k, v in data.get("counters", {}).items()},
            headcounts={k: int(v) for k, v in data.get("headcounts", {}).items()},
            sticky=[str(q) for q in data.get("sticky", [])],
            seqs={k: int(v) for k, v in data.get("seqs", {}).items()},
            late_from=str(data.get("late_from", "")),
        )


def local_midnight(facility: Facility, day: date) -> datetime:
    """The start of the facility's local ``day``, in UTC."""
    return datetime.combine(day, time(), facility.zone).astimezone(UTC)


def is_open(facility: Facility, when: datetime) -> bool | None:
    """Open at ``when`` by the configured hours; None when hours are not configured."""
    if not facility.opening_hours:
        return None
    local = when.astimezone(facility.zone)
    hours = facility.opening_hours.get(WEEKDAYS[local.weekday()])
    if hours is None:
        return None
    span = parse_hours(hours)
    return span is not None and span[0] <= local.time() < span[1]


class FacilityDeriver:
    """Derived state of one facility, updated reading by reading."""

    def __init__(self, facility: Facility, state: FacilityState | None, tracker: Tracker) -> None:
        self.facility = facility
        self.state = state or FacilityState(facility=facility.id)
        self.tracker = tracker
        # The local day in hand: [start, end) in UTC and its date, ISO (time zones
        # are slow to convert for every reading).
        self._day: tuple[datetime, datetime, str] | None = None

    def local_day(self, when: datetime) -> tuple[datetime, str]:
        """Local midnight of the day ``when`` falls in (in UTC), and that day's date."""
        day = self._day
        if day is None or not day[0] <= when < day[1]:
            local = when.astimezone(self.facility.zone).date()
            start = local_midnight(self.facility, local)
            end = local_midnight(self.facility, local + timedelta(days=1))
            day = self._day = (start, end, local.isoformat())
        return day[0], day[2]

    def apply(
        self, reading: Reading, source: str, when: datetime, clock_flags: list[Quality]
    ) -> bool:
        """Fold one reading (effective time ``when``); True when the state changed."""
        before = dict(vars(self.state))  # shallow: every field is replaced, not mutated
        if isinstance(reading, CountPayload):
            self._count(reading, source, when)
        elif isinstance(reading, RinkPayload):
            self.state.ice_temp_c = reading.ice_temp_c
            self.state.air_temp_c = reading.air_temp_c
        elif isinstance(reading, SnapshotPayload):
            # A camera that failed closed says why and counts nobody: unknown, not 0.
            self.state.camera_status = reading.status
            self.state.people = reading.people
            self.state.spots_in_use = reading.spots_in_use
            self.state.count_simulated = reading.count_simulated
            if reading.status is CameraStatus.OK:
                # A camera that failed closed still watches the same spots.
                self.state.spots = reading.spots
            if reading.jpeg_b64 is not None:
                self.state.snapshot_at = when
        else:
            return False
        if self.state.updated_at is None or when > self.state.updated_at:
            self.state.updated_at = when
        self.state.quality = [Quality(q) for q in self.tracker.sticky] + clock_flags
        changed = vars(self.state) != before
        if changed:
            self.state.revision += 1
        return changed

    def _count(self, reading: CountPayload, source: str, when: datetime) -> None:
        tracker = self.tracker
        _, day = self.local_day(when)
        closed = is_open(self.facility, when) is False
        if day != tracker.day or closed:
            self._rebaseline(day)
        if reading.occupancy is not None:
            tracker.headcounts[source] = reading.occupancy
        else:
            assert reading.entries is not None and reading.exits is not None
            previous = tracker.counters.get(source)
            # While closed, movement (staff, cleaners) is not occupancy: only the
            # counter values are kept, as the baseline for opening time.
            if previous is not None and not closed:
                entries0, exits0 = previous
                if reading.entries < entries0 or reading.exits < exits0:
                    # The counter restarted from zero: what it shows now happened since.
                    entries0, exits0 = 0, 0
                    self._flag(Quality.COUNTER_RESET)
                tracker.net += (reading.entries - entries0) - (reading.exits - exits0)
            tracker.counters[source] = (reading.entries, reading.exits)
        if tracker.net < 0 and not tracker.headcounts:
            tracker.net = 0
            self._flag(Quality.CLAMPED)
        if abs(tracker.net) > MAX_COUNT:
            # Only a broken or hostile counter gets here (e.g. one that "restarts" at
            # huge values again and again); the figures must stay storable.
            tracker.net = max(-MAX_COUNT, min(MAX_COUNT, tracker.net))
            self._flag(Quality.CLAMPED)
        total = tracker.net + sum(tracker.headcounts.values())
        if total < 0 or total > MAX_COUNT:
            total = max(0, min(MAX_COUNT, total))
            self._flag(Quality.CLAMPED)
        self.state.occupancy = total

    def _rebaseline(self, day: str) -> None:
        self.tracker.day = day
        self.tracker.net = 0
        self.tracker.sticky = []

    def _flag(self, quality: Quality) -> None:
        if quality in _STICKY and quality.value not in self.tracker.sticky:
            self.tracker.sticky.append(quality.value)
