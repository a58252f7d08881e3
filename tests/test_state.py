"""FacilityDeriver: folding readings into a facility's derived state."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.config import WEEKDAYS, Facility
from hub.state import FacilityDeriver, Tracker, is_open
from ruuhka.contract import (
    CountPayload,
    FacilityState,
    HeartbeatPayload,
    Quality,
    RinkPayload,
    SnapshotPayload,
    StatusPayload,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
# A Monday in winter: Helsinki is UTC+2, so local midnight is 22:00 UTC of the previous date.
NOON = datetime(2024, 1, 15, 12, 0, tzinfo=HELSINKI)


def facility(**extra: object) -> Facility:
    data: dict[str, object] = {
        "id": "uimahalli",
        "kind": "swimming_hall",
        "capacity": 300,
        "name": {"fi": "Uimahalli", "en": "Swimming hall"},
        "sources": [{"device": "gate", "counter": "main"}],
    }
    data.update(extra)
    return Facility.model_validate(data)


class Feed:
    """Builds contract payloads with a growing seq and folds them into a deriver."""

    def __init__(self, fac: Facility | None = None) -> None:
        self.deriver = FacilityDeriver(fac or facility(), None, Tracker())
        self.seq = 0

    @property
    def state(self):
        return self.deriver.state

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def count(
        self,
        entries: int,
        exits: int,
        when: datetime,
        source: str = "gate/main",
        flags: list[Quality] | None = None,
    ) -> bool:
        reading = CountPayload(
            seq=self._next(), ts=when, counter=source.split("/")[-1], entries=entries, exits=exits
        )
        return self.deriver.apply(reading, source, when, flags or [])

    def headcount(self, occupancy: int, when: datetime, source: str = "tickets/sales") -> bool:
        reading = CountPayload(
            seq=self._next(), ts=when, counter=source.split("/")[-1], occupancy=occupancy
        )
        return self.deriver.apply(reading, source, when, [])

    def rink(self, ice: float, air: float | None, when: datetime) -> bool:
        reading = RinkPayload(
            seq=self._next(), ts=when, sensor="ice", ice_temp_c=ice, air_temp_c=air
        )
        return self.deriver.apply(reading, "rink/ice", when, [])

    def snapshot(self, people: int, when: datetime) -> bool:
        # "/9j/4AAQ" is the base64 of a JPEG's first bytes: a picture, so snapshot_at moves.
        reading = SnapshotPayload(
            seq=self._next(),
            ts=when,
            camera="yard",
            people=people,
            jpeg_b64="/9j/4AAQ",
            width=8,
            height=8,
        )
        return self.deriver.apply(reading, "cam/yard", when, [])


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# --- cumulative counters ------------------------------------------------------


def test_first_reading_is_the_baseline() -> None:
    feed = Feed()
    feed.count(1000, 900, NOON)
    assert feed.state.occupancy == 0
    assert feed.state.quality == []


def test_occupancy_is_entries_minus_exits_since_first_reading() -> None:
    feed = Feed()
    feed.count(1000, 900, NOON)
    feed.count(1030, 905, NOON + minutes(1))
    assert feed.state.occupancy == 25
    feed.count(1040, 925, NOON + minutes(2))
    assert feed.state.occupancy == 15
    assert feed.state.quality == []
    assert feed.state.updated_at == NOON + minutes(2)


def test_counter_reset_continues_without_a_jump_and_is_flagged() -> None:
    feed = Feed()
    feed.count(100, 60, NOON)
    feed.count(150, 60, NOON + minutes(1))
    assert feed.state.occupancy == 50
    # Power loss: the counter restarts from zero and has since seen 4 in, 1 out.
    feed.count(4, 1, NOON + minutes(2))
    assert feed.state.occupancy == 53
    assert Quality.COUNTER_RESET in feed.state.quality
    # And it keeps going from the new values.
    feed.count(10, 3, NOON + minutes(3))
    assert feed.state.occupancy == 57
    assert feed.state.quality.count(Quality.COUNTER_RESET) == 1


def test_reset_of_exits_only_is_also_a_reset() -> None:
    feed = Feed()
    feed.count(100, 60, NOON)
    feed.count(110, 5, NOON + minutes(1))  # entries went up but exits went down
    assert Quality.COUNTER_RESET in feed.state.quality
    assert feed.state.occupancy == 105


def test_occupancy_is_clamped_at_zero_and_flagged() -> None:
    feed = Feed()
    feed.count(10, 10, NOON)
    feed.count(10, 15, NOON + minutes(1))
    assert feed.state.occupancy == 0
    assert Quality.CLAMPED in feed.state.quality
    # Counting goes on from the clamped value; the flag stays for the day.
    feed.count(20, 15, NOON + minutes(2))
    assert feed.state.occupancy == 10
    assert Quality.CLAMPED in feed.state.quality


def test_not_clamped_no_clamped_flag() -> None:
    feed = Feed()
    feed.count(10, 10, NOON)
    feed.count(10, 10, NOON + minutes(1))
    assert feed.state.occupancy == 0
    assert Quality.CLAMPED not in feed.state.quality


def test_occupancy_never_negative_over_a_random_walk() -> None:
    rng = random.Random(1234)
    feed = Feed()
    entries = exits = 0
    when = NOON
    for _ in range(500):
        entries += rng.randint(0, 3)
        exits += rng.randint(0, 5)  # more out than in: would go negative unclamped
        if rng.random() < 0.02:
            entries, exits = rng.randint(0, 3), rng.randint(0, 3)
        when += timedelta(seconds=5)
        feed.count(entries, exits, when)
        assert feed.state.occupancy is not None
        assert feed.state.occupancy >= 0
    assert Quality.CLAMPED in feed.state.quality


# --- re-baselining ----------------------------------------------------------------


def test_new_local_day_rebaselines_and_clears_sticky_flags() -> None:
    feed = Feed()
    late = datetime(2024, 1, 15, 23, 0, tzinfo=HELSINKI)
    feed.count(100, 60, late)
    feed.count(130, 60, late + minutes(30))
    assert feed.state.occupancy == 30
    # 23:59 local (21:59 UTC): a counter reset, so COUNTER_RESET is set.
    before_midnight = datetime(2024, 1, 15, 23, 59, tzinfo=HELSINKI)
    assert before_midnight.astimezone(UTC) == datetime(2024, 1, 15, 21, 59, tzinfo=UTC)
    feed.count(5, 2, before_midnight.astimezone(UTC))
    assert feed.state.occupancy == 33
    assert Quality.COUNTER_RESET in feed.state.quality
    # 00:01 local on the 16th is still the 15th in UTC (22:01 UTC): a new local day anyway.
    after_midnight = datetime(2024, 1, 16, 0, 1, tzinfo=HELSINKI).astimezone(UTC)
    assert after_midnight.date() == before_midnight.astimezone(UTC).date()
    feed.count(5, 2, after_midnight)
    assert feed.state.occupancy == 0
    assert feed.state.quality == []
    assert feed.deriver.tracker.day == "2024-01-16"
    # And counting continues from the new baseline.
    feed.count(9, 3, after_midnight + minutes(5))
    assert feed.state.occupancy == 3


def test_same_local_day_across_utc_midnight_does_not_rebaseline() -> None:
    feed = Feed()
    # 01:30 and 02:30 local on the 16th are 23:30 on the 15th and 00:30 on the 16th in UTC.
    first = datetime(2024, 1, 16, 1, 30, tzinfo=HELSINKI).astimezone(UTC)
    second = datetime(2024, 1, 16, 2, 30, tzinfo=HELSINKI).astimezone(UTC)
    assert first.date() != second.date()
    feed.count(100, 60, first)
    feed.count(120, 60, first + minutes(1))
    feed.count(125, 60, second)
    assert feed.state.occupancy == 25


def test_clamped_flag_cleared_by_new_day() -> None:
    feed = Feed()
    evening = datetime(2024, 1, 15, 22, 0, tzinfo=HELSINKI)
    feed.count(10, 10, evening)
    feed.count(10, 20, evening + minutes(1))
    assert Quality.CLAMPED in feed.state.quality
    feed.count(10, 20, datetime(2024, 1, 16, 0, 1, tzinfo=HELSINKI))
    assert feed.state.quality == []
    assert feed.state.occupancy == 0


def test_rebaseline_at_local_day_in_summer_time() -> None:
    """Summer: Helsinki is UTC+3; 23:59 and 00:01 local are 20:59 and 21:01 UTC."""
    feed = Feed()
    feed.count(100, 60, datetime(2024, 6, 3, 20, 0, tzinfo=UTC))
    feed.count(140, 60, datetime(2024, 6, 3, 20, 59, tzinfo=UTC))
    assert feed.state.occupancy == 40
    feed.count(140, 60, datetime(2024, 6, 3, 21, 1, tzinfo=UTC))
    assert feed.state.occupancy == 0
    assert feed.deriver.tracker.day == "2024-06-04"


def every_day(hours: str) -> dict[str, str]:
    return dict.fromkeys(WEEKDAYS, hours)


def test_is_open_uses_local_time() -> None:
    fac = facility(opening_hours=every_day("06:00-21:00"))
    assert is_open(fac, datetime(2024, 1, 15, 4, 30, tzinfo=UTC)) is True  # 06:30 local
    assert is_open(fac, datetime(2024, 1, 15, 3, 30, tzinfo=UTC)) is False  # 05:30 local
    assert is_open(fac, datetime(2024, 1, 15, 19, 30, tzinfo=UTC)) is False  # 21:30 local
    assert is_open(facility(), NOON) is None


def test_reading_outside_opening_hours_rebaselines_to_zero() -> None:
    feed = Feed(facility(opening_hours=every_day("06:00-21:00")))
    feed.count(100, 60, NOON)
    feed.count(150, 60, NOON + minutes(5))
    assert feed.state.occupancy == 50
    closed = datetime(2024, 1, 15, 21, 30, tzinfo=HELSINKI)
    feed.count(150, 60, closed)
    assert feed.state.occupancy == 0
    # After opening the next morning, counting starts from that baseline.
    morning = datetime(2024, 1, 16, 6, 30, tzinfo=HELSINKI)
    feed.count(150, 60, morning)
    feed.count(170, 62, morning + minutes(10))
    assert feed.state.occupancy == 18


def test_closed_day_rebaselines() -> None:
    hours = every_day("06:00-21:00") | {"mon": "closed"}
    feed = Feed(facility(opening_hours=hours))
    feed.count(100, 60, datetime(2024, 1, 14, 12, 0, tzinfo=HELSINKI))  # Sunday
    feed.count(150, 60, datetime(2024, 1, 14, 13, 0, tzinfo=HELSINKI))
    assert feed.state.occupancy == 50
    feed.count(150, 60, datetime(2024, 1, 15, 12, 0, tzinfo=HELSINKI))  # closed Monday
    assert feed.state.occupancy == 0


def test_movement_outside_opening_hours_still_gives_zero() -> None:
    feed = Feed(facility(opening_hours=every_day("06:00-21:00")))
    feed.count(100, 60, NOON)
    feed.count(150, 60, NOON + minutes(5))
    closed = datetime(2024, 1, 15, 22, 0, tzinfo=HELSINKI)
    feed.count(150, 60, closed)
    # Cleaning staff come in after closing: the facility is still closed.
    feed.count(159, 60, closed + minutes(10))
    assert feed.state.occupancy == 0


# --- other sources --------------------------------------------------------------


def test_headcount_source_sets_occupancy_directly() -> None:
    feed = Feed()
    feed.headcount(42, NOON)
    assert feed.state.occupancy == 42
    feed.headcount(17, NOON + minutes(1))
    assert feed.state.occupancy == 17
    feed.headcount(0, NOON + minutes(2))
    assert feed.state.occupancy == 0
    assert feed.state.quality == []


def test_two_counter_sources_add_up() -> None:
    feed = Feed()
    feed.count(1000, 990, NOON, source="gate/north")
    feed.count(50, 40, NOON, source="gate/south")
    assert feed.state.occupancy == 0
    feed.count(1010, 992, NOON + minutes(1), source="gate/north")  # +8
    assert feed.state.occupancy == 8
    feed.count(55, 41, NOON + minutes(1), source="gate/south")  # +4
    assert feed.state.occupancy == 12
    # People entering by one gate and leaving by the other.
    feed.count(1015, 992, NOON + minutes(2), source="gate/north")  # +5
    feed.count(55, 51, NOON + minutes(2), source="gate/south")  # -10
    assert feed.state.occupancy == 7


def test_reset_of_one_source_does_not_disturb_the_other() -> None:
    feed = Feed()
    feed.count(100, 100, NOON, source="gate/north")
    feed.count(200, 200, NOON, source="gate/south")
    feed.count(110, 100, NOON + minutes(1), source="gate/north")  # +10
    feed.count(205, 200, NOON + minutes(1), source="gate/south")  # +5
    feed.count(2, 0, NOON + minutes(2), source="gate/north")  # reset, +2
    assert feed.state.occupancy == 17
    feed.count(207, 201, NOON + minutes(3), source="gate/south")  # +1
    assert feed.state.occupancy == 18
    assert Quality.COUNTER_RESET in feed.state.quality


def test_rink_reading_sets_temperatures() -> None:
    feed = Feed()
    assert feed.rink(-4.5, 6.0, NOON) is True
    assert feed.state.ice_temp_c == -4.5
    assert feed.state.air_temp_c == 6.0
    assert feed.state.occupancy is None
    assert feed.state.updated_at == NOON
    feed.rink(-3.0, None, NOON + minutes(1))
    assert feed.state.ice_temp_c == -3.0
    assert feed.state.air_temp_c is None


def test_snapshot_reading_sets_people() -> None:
    feed = Feed()
    assert feed.snapshot(3, NOON) is True
    assert feed.state.people == 3
    assert feed.state.snapshot_at == NOON
    assert feed.state.occupancy is None
    feed.snapshot(0, NOON + minutes(1))
    assert feed.state.people == 0
    assert feed.state.snapshot_at == NOON + minutes(1)


def test_clock_flags_are_reported_but_not_sticky() -> None:
    feed = Feed()
    feed.count(10, 0, NOON, flags=[Quality.CLOCK_SKEW])
    assert Quality.CLOCK_SKEW in feed.state.quality
    feed.count(11, 0, NOON + minutes(1))
    assert Quality.CLOCK_SKEW not in feed.state.quality


# --- revision -------------------------------------------------------------------


def test_revision_grows_only_when_state_changes() -> None:
    feed = Feed()
    assert feed.state.revision == 0
    assert feed.count(100, 60, NOON) is True
    assert feed.state.revision == 1
    # The same reading again: nothing changes.
    assert feed.count(100, 60, NOON) is False
    assert feed.state.revision == 1
    # Counters moved.
    assert feed.count(110, 60, NOON + minutes(1)) is True
    assert feed.state.revision == 2
    # An older reading with the same values does not move updated_at back.
    assert feed.rink(-4.0, 5.0, NOON + minutes(1)) is True
    assert feed.state.revision == 3
    assert feed.rink(-4.0, 5.0, NOON) is False
    assert feed.state.revision == 3
    assert feed.state.updated_at == NOON + minutes(1)


def test_status_and_heartbeat_do_not_change_state() -> None:
    feed = Feed()
    feed.count(100, 60, NOON)
    before = feed.state.model_dump()
    status = StatusPayload(seq=100, ts=NOON, state="online")
    heartbeat = HeartbeatPayload(seq=101, ts=NOON, uptime_s=5.0)
    assert feed.deriver.apply(status, "gate/status", NOON + minutes(5), []) is False
    assert feed.deriver.apply(heartbeat, "gate/hb", NOON + minutes(5), []) is False
    assert feed.state.model_dump() == before


def test_revision_counts_every_change() -> None:
    feed = Feed()
    changes = 0
    when = NOON
    for i in range(20):
        when += minutes(1)
        changes += feed.count(100 + i // 2, 60, when)
    assert feed.state.revision == changes == 20  # updated_at moves every time


# --- persistence of the tracker ---------------------------------------------------


def test_tracker_json_round_trip() -> None:
    feed = Feed()
    feed.count(100, 60, NOON, source="gate/north")
    feed.count(130, 60, NOON + minutes(1), source="gate/north")
    feed.count(5, 1, NOON + minutes(2), source="gate/north")  # reset
    feed.count(50, 50, NOON, source="gate/south")
    feed.count(50, 80, NOON + minutes(3), source="gate/south")  # clamps
    feed.headcount(7, NOON + minutes(4))
    tracker = feed.deriver.tracker
    assert tracker.counters and tracker.headcounts and tracker.sticky

    restored = Tracker.from_json(json.loads(json.dumps(tracker.to_json())))
    assert restored == tracker
    assert restored.to_json() == tracker.to_json()
    assert Tracker.from_json({}) == Tracker()


def test_restored_deriver_continues_where_it_left_off() -> None:
    feed = Feed()
    feed.count(100, 60, NOON)
    feed.count(140, 65, NOON + minutes(1))
    saved_state = feed.state.model_dump_json()
    saved_tracker = json.dumps(feed.deriver.tracker.to_json())

    again = FacilityDeriver(
        facility(),
        FacilityState.model_validate_json(saved_state),
        Tracker.from_json(json.loads(saved_tracker)),
    )
    reading = CountPayload(seq=99, ts=NOON + minutes(2), counter="main", entries=150, exits=66)
    assert again.apply(reading, "gate/main", NOON + minutes(2), []) is True
    assert again.state.occupancy == 35 + 9
    assert again.state.revision == feed.state.revision + 1
