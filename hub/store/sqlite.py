"""The embedded store: one SQLite file, zero set-up, enough for a small town."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic_core import to_json

from hub.schema_version import migrate
from hub.state import Tracker
from hub.store import (
    Checkpoint,
    Derived,
    DeviceStatus,
    HistoryBucket,
    Quarantined,
    Record,
    SavedState,
    Store,
    StoreURLError,
)
from ruuhka.contract import FacilityState, seq_key
from ruuhka.private_files import create_private_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL,
    facility TEXT,
    source TEXT,
    ts_ms INTEGER NOT NULL,
    device_ts TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_facility ON readings (facility, ts_ms);
CREATE TABLE IF NOT EXISTS facility_state (
    facility TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    tracker TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS facility_series (
    facility TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    occupancy INTEGER,
    ice_temp_c REAL,
    air_temp_c REAL,
    people INTEGER,
    PRIMARY KEY (facility, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS facility_checkpoints (
    facility TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    tracker TEXT NOT NULL,
    PRIMARY KEY (facility, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    device TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seq_resets (
    device TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    online INTEGER,
    at_ms INTEGER NOT NULL,
    heartbeat TEXT
);
"""

# Appended, never edited: each is one schema version (hub/schema_version.py).
_MIGRATIONS = (
    # 1: the camera's washing spots in use, a series of their own.
    "ALTER TABLE facility_series ADD COLUMN spots_in_use INTEGER",
    # 2-6: a device's epoch joins the key readings are deduplicated by.
    "CREATE TABLE readings_v2 (device TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL, "
    "stream TEXT NOT NULL, facility TEXT, source TEXT, ts_ms INTEGER NOT NULL, "
    "device_ts TEXT NOT NULL, received_ms INTEGER NOT NULL, data TEXT NOT NULL, "
    "PRIMARY KEY (device, epoch, seq)) WITHOUT ROWID",
    "INSERT INTO readings_v2 SELECT device, '', seq, stream, facility, source, ts_ms, "
    "device_ts, received_ms, data FROM readings",
    "DROP TABLE readings",
    "ALTER TABLE readings_v2 RENAME TO readings",
    "CREATE INDEX readings_by_facility ON readings (facility, ts_ms)",
)
_COLUMNS = "device, epoch, seq, stream, facility, source, ts_ms, device_ts, received_ms, data"


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _record(
    device: str,
    epoch: str,
    seq: int,
    stream: str,
    facility: str | None,
    source: str | None,
    ts_ms: int,
    device_ts: str,
    received_ms: int,
    data: str,
) -> Record:
    """A row of readings (in _COLUMNS' order)."""
    ts, received = _from_ms(ts_ms), _from_ms(received_ms)
    when = datetime.fromisoformat(device_ts)
    return Record(
        device, seq, stream, facility, source, ts, when, received, json.loads(data), epoch
    )


class SQLiteStore(Store):
    def __init__(self, path: Path | str) -> None:
        create_private_database(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        # First, so that replicas opening one file together wait instead of failing.
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a batch is on disk (one fsync per batch) before its readings are
        # acknowledged to the broker, so not even a power cut loses an acked reading.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        migrate(self._db, _MIGRATIONS, f"the store {path}")

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise StoreURLError(f"bad SQLite URL {url!r}; use sqlite:///path/to/ruuhka.db")
        return cls(url[len(prefix) :])

    def known(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        # One range query per seq key rather than one per reading: a batch is mostly
        # consecutive seqs of a few devices.
        wanted: dict[str, set[int]] = {}
        for key, seq in keys:
            wanted.setdefault(key, set()).add(seq)
        found: set[tuple[str, int]] = set()
        with self._lock:
            for key, seqs in wanted.items():
                device, _, epoch = key.partition("#")
                rows = self._db.execute(
                    "SELECT seq FROM readings WHERE device = ? AND epoch = ? "
                    "AND seq BETWEEN ? AND ?",
                    (device, epoch, min(seqs), max(seqs)),
                )
                found.update((key, seq) for (seq,) in rows if seq in seqs)
        return found

    def commit(
        self,
        records: list[Record],
        states: list[SavedState],
        statuses: list[DeviceStatus],
        derived: Derived | None = None,
    ) -> None:
        if derived is None:
            derived = Derived.of_states(states)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    f"INSERT OR IGNORE INTO readings ({_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            r.device,
                            r.epoch,
                            r.seq,
                            r.stream,
                            r.facility,
                            r.source,
                            _ms(r.ts),
                            r.device_ts.isoformat(),
                            _ms(r.received_at),
                            to_json(r.data).decode(),  # compact, and faster than json
                        )
                        for r in records
                    ],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO facility_state VALUES (?, ?, ?)",
                    [
                        (
                            s.state.facility,
                            s.state.model_dump_json(),
                            json.dumps(s.tracker.to_json()),
                        )
                        for s in states
                    ],
                )
                for facility, (start, end) in derived.replace.items():
                    end_ms = _ms(end) if end is not None else 2**62
                    for table in ("facility_series", "facility_checkpoints"):
                        db.execute(
                            f"DELETE FROM {table} WHERE facility = ? AND ts_ms >= ? AND ts_ms < ?",
                            (facility, _ms(start), end_ms),
                        )
                db.executemany(
                    "INSERT OR REPLACE INTO facility_series VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            p.facility,
                            _ms(p.at),
                            p.occupancy,
                            p.ice_temp_c,
                            p.air_temp_c,
                            p.people,
                            p.spots_in_use,
                        )
                        for p in derived.series.values()
                    ],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO facility_checkpoints VALUES (?, ?, ?, ?)",
                    [
                        (
                            c.facility,
                            _ms(c.day_start),
                            c.state.model_dump_json(),
                            json.dumps(c.tracker.to_json()),
                        )
                        for c in derived.checkpoints
                    ],
                )
                for status in statuses:
                    db.execute(
                        "INSERT INTO devices VALUES (?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET "
                        "online = COALESCE(excluded.online, online), at_ms = excluded.at_ms, "
                        "heartbeat = COALESCE(excluded.heartbeat, heartbeat)",
                        (
                            status.device,
                            None if status.online is None else int(status.online),
                            _ms(status.at),
                            json.dumps(status.heartbeat) if status.heartbeat is not None else None,
                        ),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def quarantine(self, entries: list[Quarantined], keep: int) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO quarantine (at_ms, topic, device, reason, detail, size, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (_ms(q.at), q.topic, q.device, q.reason, q.detail, q.size, q.payload)
                        for q in entries
                    ],
                )
                db.execute(
                    "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?",
                    (keep,),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def quarantined(
        self, device: str | None = None, reason: str | None = None, limit: int = 100
    ) -> list[Quarantined]:
        where, params = [], []
        for column, value in (("device", device), ("reason", reason)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT at_ms, topic, device, reason, detail, size, payload FROM quarantine"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [
            Quarantined(_from_ms(at_ms), topic, dev, why, detail, size, bytes(payload))
            for at_ms, topic, dev, why, detail, size, payload in rows
        ]

    def load_states(self) -> dict[str, SavedState]:
        with self._lock:
            rows = self._db.execute(
                "SELECT facility, state, tracker FROM facility_state"
            ).fetchall()
        return {
            facility: SavedState(
                FacilityState.model_validate_json(state), Tracker.from_json(json.loads(tracker))
            )
            for facility, state, tracker in rows
        }

    def readings_between(
        self, facility: str, start: datetime, end: datetime | None = None
    ) -> list[Record]:
        end_ms = _ms(end) if end is not None else 2**62
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE facility = ? AND ts_ms >= ? AND ts_ms < ? "
                "ORDER BY ts_ms, device, epoch, seq",
                (facility, _ms(start), end_ms),
            ).fetchall()
        return [_record(*row) for row in rows]

    def checkpoint_before(self, facility: str, when: datetime) -> Checkpoint | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ts_ms, state, tracker FROM facility_checkpoints "
                "WHERE facility = ? AND ts_ms <= ? ORDER BY ts_ms DESC LIMIT 1",
                (facility, _ms(when)),
            ).fetchone()
        if row is None:
            return None
        ts_ms, state, tracker = row
        return Checkpoint(
            facility,
            _from_ms(ts_ms),
            FacilityState.model_validate_json(state),
            Tracker.from_json(json.loads(tracker)),
        )

    def history(
        self, facility: str, start: datetime, end: datetime, every_s: int
    ) -> list[HistoryBucket]:
        every_ms = every_s * 1000
        with self._lock:
            rows = self._db.execute(
                # Buckets start at whole multiples of the interval since 1970, as InfluxDB's
                # do; SQLite's / and % truncate toward zero, so before 1970 floor by hand.
                "SELECT ts_ms - ((ts_ms % ?) + ?) % ? AS bucket, COUNT(*), AVG(occupancy), "
                "MAX(occupancy), AVG(ice_temp_c), AVG(air_temp_c), AVG(people), "
                "AVG(spots_in_use) FROM facility_series "
                "WHERE facility = ? AND ts_ms >= ? AND ts_ms < ? GROUP BY bucket ORDER BY bucket",
                (every_ms, every_ms, every_ms, facility, _ms(start), _ms(end)),
            ).fetchall()
        return [
            HistoryBucket(_from_ms(bucket), n, occ, occ_max, ice, air, people, spots)
            for bucket, n, occ, occ_max, ice, air, people, spots in rows
        ]

    def max_seqs(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device, epoch, MAX(seq) FROM readings GROUP BY device, epoch"
            )
            found = {seq_key(device, epoch): seq for device, epoch, seq in rows.fetchall()}
            for device, at_ms in self._db.execute("SELECT device, at_ms FROM seq_resets"):
                for key in [k for k in found if k.partition("#")[0] == device]:
                    del found[key]
                since = self._db.execute(
                    "SELECT epoch, MAX(seq) FROM readings WHERE device = ? AND received_ms > ? "
                    "GROUP BY epoch",
                    (device, at_ms),
                )
                found.update({seq_key(device, epoch): seq for epoch, seq in since.fetchall()})
            return found

    def reset_seq(self, device: str, at: datetime) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO seq_resets VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET "
                "at_ms = MAX(at_ms, excluded.at_ms)",
                (device, _ms(at)),
            )

    def count_readings(self, device: str | None = None) -> int:
        with self._lock:
            if device is None:
                row = self._db.execute("SELECT COUNT(*) FROM readings").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM readings WHERE device = ?", (device,)
                ).fetchone()
        return int(row[0])

    def devices(self) -> list[DeviceStatus]:
        with self._lock:
            rows = self._db.execute("SELECT device, online, at_ms, heartbeat FROM devices")
            return [
                DeviceStatus(
                    device=device,
                    online=None if online is None else bool(online),
                    at=_from_ms(at_ms),
                    heartbeat=json.loads(heartbeat) if heartbeat else None,
                )
                for device, online, at_ms, heartbeat in rows.fetchall()
            ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
