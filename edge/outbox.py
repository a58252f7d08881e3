"""The local outbox: every reading is on disk before it is published.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit is one append to the
WAL without an fsync, so a busy counter does not wear out an SD card; the WAL
is synced at checkpoints. A killed process loses nothing that was committed; a
pulled plug can lose at most the commits since the last checkpoint (by default
about a second of readings — see the README for the trade-off).

``seq`` is allocated here, in the same transaction that stores the reading, so
it survives restarts and never repeats.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruuhka.contract import Stream, device_topic

log = logging.getLogger("ruuhka.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass
class Pending:
    seq: int
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: Path, device_id: str, max_rows: int = 1_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.device_id = device_id
        self.max_rows = max_rows
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def allocate_seq(self) -> int:
        """A seq for a message that is not stored (the online status, the last will)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._meta("next_seq")
            self._set_meta("next_seq", seq + 1)
            self._db.execute("COMMIT")
            return seq

    def put(
        self,
        stream: Stream,
        fields: dict[str, Any],
        ts: datetime | None = None,
        clock_synced: bool = True,
    ) -> int:
        return self.put_many([(stream, fields)], ts, clock_synced)[-1]

    def put_many(
        self,
        readings: list[tuple[Stream, dict[str, Any]]],
        ts: datetime | None = None,
        clock_synced: bool = True,
    ) -> list[int]:
        """Store readings in one transaction, stamping each with seq and ts."""
        stamp = (ts or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        seqs: list[int] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta("next_seq")
                rows = []
                for stream, fields in readings:
                    body = {"seq": seq, "ts": stamp, **fields}
                    if not clock_synced:
                        body["clock_synced"] = False
                    rows.append((seq, device_topic(self.device_id, stream), json.dumps(body)))
                    seqs.append(seq)
                    seq += 1
                db.executemany("INSERT INTO outbox VALUES (?, ?, ?)", rows)
                self._set_meta("next_seq", seq)
                self._enforce_limit()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return seqs

    def _enforce_limit(self) -> None:
        """When full, drop the oldest readings (never the newest), and count them."""
        depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        excess = depth - self.max_rows
        if excess > 0:
            self._db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                (excess,),
            )
            self._set_meta("dropped", self._meta("dropped") + excess)
            log.warning("outbox full (%d readings): dropped the %d oldest", self.max_rows, excess)

    def after(self, cursor: int, limit: int) -> list[Pending]:
        """Oldest first, those with seq > cursor."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (cursor, limit),
            ).fetchall()
        return [
            Pending(seq, topic, payload.encode() if isinstance(payload, str) else payload)
            for seq, topic, payload in rows
        ]

    def delete(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def dropped(self) -> int:
        with self._lock:
            return self._meta("dropped")

    def close(self) -> None:
        with self._lock:
            self._db.close()
