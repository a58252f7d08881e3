"""Washing spots from the camera's payload to the derived state, the store, the API
shape; and the SQLite files' schema versions, upgraded in place from the first schema."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.config import Facility
from hub.facilities import Level, present
from hub.schema_version import SchemaTooNew
from hub.snapshots import Picture, SnapshotStore
from hub.state import FacilityDeriver, Tracker
from hub.store import SavedState
from hub.store.sqlite import SQLiteStore
from ruuhka.contract import CameraStatus, FacilityState, SnapshotPayload

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 64 + b"\xff\xd9"

# The store's schema as the first release wrote it (version 0): frozen here on purpose.
STORE_V0 = """
CREATE TABLE readings (device TEXT NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL,
    facility TEXT, source TEXT, ts_ms INTEGER NOT NULL, device_ts TEXT NOT NULL,
    received_ms INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (device, seq)) WITHOUT ROWID;
CREATE INDEX readings_by_facility ON readings (facility, ts_ms);
CREATE TABLE facility_state (facility TEXT PRIMARY KEY, state TEXT NOT NULL,
    tracker TEXT NOT NULL);
CREATE TABLE facility_series (facility TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    occupancy INTEGER, ice_temp_c REAL, air_temp_c REAL, people INTEGER,
    PRIMARY KEY (facility, ts_ms)) WITHOUT ROWID;
CREATE TABLE devices (device TEXT PRIMARY KEY, online INTEGER, at_ms INTEGER NOT NULL,
    heartbeat TEXT);
"""
SNAPSHOTS_V0 = """
CREATE TABLE snapshots (facility TEXT NOT NULL, source TEXT NOT NULL,
    taken_ms INTEGER NOT NULL, people INTEGER, width INTEGER NOT NULL, height INTEGER NOT NULL,
    jpeg BLOB NOT NULL, PRIMARY KEY (facility, source, taken_ms)) WITHOUT ROWID;
"""


def carpets() -> Facility:
    return Facility.model_validate(
        {
            "id": "carpets",
            "kind": "carpet_washing",
            "capacity": 8,
            "name": {"en": "Carpet washing"},
            "sources": [{"device": "cam", "camera": "yard"}],
        }
    )


def snap(seq: int, **fields: object) -> SnapshotPayload:
    body: dict[str, object] = {"seq": seq, "ts": T0.isoformat(), "camera": "yard"} | fields
    return SnapshotPayload.model_validate_json(json.dumps(body))


def version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_spots_reach_the_derived_state_and_a_failed_camera_keeps_only_how_many() -> None:
    deriver = FacilityDeriver(carpets(), None, Tracker())
    assert deriver.apply(snap(1, people=3, spots=2, spots_in_use=2), "cam/yard", T0, [])
    assert (deriver.state.people, deriver.state.spots, deriver.state.spots_in_use) == (3, 2, 2)
    assert deriver.apply(snap(2, status="dark"), "cam/yard", T0 + timedelta(minutes=1), [])
    state = deriver.state
    assert state.camera_status is CameraStatus.DARK
    assert (state.people, state.spots, state.spots_in_use) == (None, 2, None)
    deriver.apply(snap(3, people=1, count_simulated=True), "cam/yard", T0, [])
    assert deriver.state.spots is None and deriver.state.count_simulated


def test_a_camera_only_place_gets_its_level_from_spots_in_use() -> None:
    now = T0 + timedelta(seconds=30)

    def shown(**fields: object):
        state = FacilityState(facility="carpets", updated_at=T0, snapshot_at=T0, **fields)
        return present(carpets(), state, "en", now)

    out = shown(people=2, spots=3, spots_in_use=2, camera_status="ok")
    assert out.occupancy_pct == pytest.approx(66.7) and out.level is Level.BUSY
    assert out.people_waiting == 0 and out.spots == 3 and out.spots_in_use == 2
    assert out.snapshot_url == f"/api/v1/facilities/carpets/snapshot.jpg?v={int(T0.timestamp())}000"
    # Two more people than spots in use: waiting, so full even though a spot is free.
    out = shown(people=4, spots=3, spots_in_use=2, camera_status="ok")
    assert out.people_waiting == 2 and out.level is Level.FULL
    assert shown(people=0, spots=3, spots_in_use=0).level is Level.QUIET
    # No spots configured: the camera's count gives no level (capacity is not a spot count).
    out = shown(people=4)
    assert out.level is None and out.people_waiting is None and out.occupancy_pct is None
    # A camera that failed closed: nothing known, nothing guessed.
    out = shown(spots=3, camera_status="dark")
    assert out.level is None and out.people_waiting is None and out.spots_in_use is None


def test_the_store_is_upgraded_in_place_from_the_first_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(STORE_V0)
        db.execute("INSERT INTO facility_series VALUES ('carpets', ?, NULL, NULL, NULL, 4)",
                   (int(T0.timestamp() * 1000),))  # fmt: skip
    assert version(path) == 0
    store = SQLiteStore(path)
    later = T0 + timedelta(minutes=5)
    state = FacilityState(facility="carpets", revision=2, people=2, spots=2, spots_in_use=1,
                          updated_at=later)  # fmt: skip
    store.commit([], [SavedState(state, Tracker())], [])
    (bucket,) = store.history("carpets", T0, T0 + timedelta(hours=1), 3600)
    assert bucket.samples == 2 and bucket.people_avg == pytest.approx(3.0)
    assert bucket.spots_in_use_avg == pytest.approx(1.0)  # the old row has none
    assert store.load_states()["carpets"].state.spots == 2
    store.close()
    assert version(path) == 6  # the washing spots (1), the devices' epochs (2-6)
    SQLiteStore(path).close()  # a second open has nothing left to do
    assert version(path) == 6


def test_the_picture_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.snapshots.db"
    with sqlite3.connect(path) as db:
        db.executescript(SNAPSHOTS_V0)
        db.execute("INSERT INTO snapshots VALUES ('carpets', 'cam/yard', ?, 3, 4, 3, ?)",
                   (int(T0.timestamp() * 1000), JPEG))  # fmt: skip
    pictures = SnapshotStore(str(path))
    old = pictures.latest("carpets", now=T0)
    assert old is not None and old.people == 3 and old.spots is None and old.jpeg == JPEG
    later = T0 + timedelta(minutes=1)
    pictures.save([Picture("carpets", "cam/yard", later, JPEG, 4, 3, 2, 3, 2)], now=later)
    new = pictures.latest("carpets", now=later)
    assert new is not None and (new.people, new.spots, new.spots_in_use) == (2, 3, 2)
    pictures.close()
    assert version(path) == 2


def test_a_database_from_a_newer_hub_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    with sqlite3.connect(path) as db:
        db.executescript(STORE_V0)
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match="version 99"):
        SQLiteStore(path)
    assert version(path) == 99
