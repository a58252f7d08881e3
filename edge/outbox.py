"""The local outbox: every reading is on disk before it is published.

SQLite in WAL mode with ``synchronous=FULL``: a commit is durable (the WAL is
fdatasync'ed) before anything of it is published, so a reading the broker has
seen survives ``kill -9``, a reboot and a pulled plug, and its ``seq`` can never
be handed out again. To spare the SD card, commits are grouped: readings wait
in memory for at most ``commit_interval_s`` (the first one after a quiet spell
is committed at once), and the deletions of acknowledged readings ride along
with the next commit (or wait ``delete_delay_s`` when nothing else is written).
A reading that is acknowledged but not yet deleted when the agent dies is sent
again after the restart; the hub drops it as a duplicate of (device, seq).

``seq`` is allocated here and stored in the same transaction as the readings.

When the outbox holds more than ``max_rows`` readings it is thinned: every
other reading of the oldest half is deleted, never the newer half, and the
count is kept (and reported in the heartbeat). Repeated thinning leaves a long
outage ever sparser towards its start, while the recent past stays complete.

Camera pictures (about 50-230 kB each) also have a budget in bytes,
``max_picture_bytes``: beyond it the oldest pictures are dropped (and counted),
so a camera offline for a week cannot fill the SD card; the newest picture is
always kept, and the hub shows only the newest anyway.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruuhka.contract import Stream, device_topic
from ruuhka.private_files import create_private_database

log = logging.getLogger("ruuhka.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Every other row of the oldest :half rows, by position (seqs have gaps).
_THIN = """
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM (
        SELECT seq, row_number() OVER (ORDER BY seq) AS n
        FROM (SELECT seq FROM outbox ORDER BY seq LIMIT :half)
    ) WHERE n % 2 = 0
)
"""

# After a checkpoint, SQLite cuts the WAL file back to this size.
_WAL_SIZE_LIMIT = 8 * 1024 * 1024


@dataclass
class Pending:
    seq: int
    topic: str
    payload: bytes


class Outbox:
    def __init__(
        self,
        path: Path,
        device_id: str,
        max_rows: int = 1_000_000,
        max_picture_bytes: int = 64 * 1024 * 1024,
        commit_interval_s: float = 0.0,
        delete_delay_s: float = 0.0,
    ) -> None:
        create_private_database(path)
        self.path = path
        self.device_id = device_id
        self.max_rows = max_rows
        self.max_picture_bytes = max_picture_bytes
        self._picture_topic = device_topic(device_id, Stream.SNAPSHOT)
        self.commit_interval_s = commit_interval_s
        self.delete_delay_s = delete_delay_s
        self.on_commit: Callable[[], None] | None = None
        self.commits = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        self._db.executescript(_SCHEMA)
        self.epoch = self._epoch()
        newest = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
        self._next_seq = max(self._meta("next_seq"), -1 if newest is None else newest + 1)
        self._committed_seq = self._next_seq - 1
        self._dropped = self._meta("dropped")
        self._rows = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self._pictures = self._picture_sizes()
        self._buffer: list[tuple[int, str, str]] = []
        self._acked: set[int] = set()
        self._first_ack = 0.0
        self._meta_dirty = False
        self._last_commit = -1e18

    def _epoch(self) -> str:
        """This outbox's installation id, made with it and kept in it: a new or
        re-imaged device starts its seq from 0 again under a new epoch, and the hub
        keeps those readings apart from the old ones with the same seqs."""
        if not self._meta("epoch"):
            made = secrets.randbits(47) + 1
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (made,))
        return format(self._meta("epoch"), "x")

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    # writing ---------------------------------------------------------------

    def allocate_seq(self) -> int:
        """A seq for a message that is not stored (the status and the last will).

        It is persisted with the next commit; the hub does not deduplicate
        status messages, so even a seq lost in a crash could do no harm.
        """
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._meta_dirty = True
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
        commit: bool = True,
    ) -> list[int]:
        """Stamp readings with seq and ts; they are committed now or within commit_interval_s.

        ``commit=False`` leaves the commit to the caller's next ``maybe_flush()``, so
        that the readings of several sources read together share one commit.
        """
        stamp = (ts or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        seqs: list[int] = []
        with self._lock:
            for stream, fields in readings:
                seq = self._next_seq
                body = {"seq": seq, "epoch": self.epoch, "ts": stamp, **fields}
                if not clock_synced:
                    body["clock_synced"] = False
                topic = device_topic(self.device_id, stream)
                self._buffer.append((seq, topic, json.dumps(body, separators=(",", ":"))))
                seqs.append(seq)
                self._next_seq += 1
        if commit:
            self.maybe_flush()
        return seqs

    def ack(self, seqs: list[int]) -> None:
        """The broker has these: delete them with the next commit (see maybe_flush)."""
        if not seqs:
            return
        with self._lock:
            if not self._acked:
                self._first_ack = time.monotonic()
            self._acked.update(seqs)

    def flush_due_at(self) -> float | None:
        """When (time.monotonic()) the next commit is due, or None with nothing to write."""
        with self._lock:
            return self._due_at()

    def _due_at(self) -> float | None:
        due: list[float] = []
        if self._buffer:
            due.append(self._last_commit + self.commit_interval_s)
        if self._acked or self._meta_dirty:
            due.append(self._first_ack + self.delete_delay_s if self._acked else 1e18)
        return min(due) if due else None

    def maybe_flush(self) -> int:
        """Commit if a commit is due; returns the number of readings committed."""
        with self._lock:
            due = self._due_at()
            if due is None or due > time.monotonic():
                return 0
        return self.flush()

    def flush(self) -> int:
        """Commit buffered readings and deletions in one transaction (one fsync)."""
        with self._lock:
            if not (self._buffer or self._acked or self._meta_dirty):
                return 0
            rows, acked = self._buffer, sorted(self._acked)
            # next_seq must survive: either the newest row stays, or meta records it.
            # Writing meta only then saves a page per commit on a busy device.
            keep_meta = self._meta_dirty or (not rows and self._committed_seq in self._acked)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in acked])
                deleted = db.total_changes - before
                db.executemany("INSERT INTO outbox VALUES (?, ?, ?)", rows)
                for seq in acked:
                    self._pictures.pop(seq, None)
                self._pictures.update(
                    (seq, len(payload))
                    for seq, topic, payload in rows
                    if topic == self._picture_topic
                )
                count = self._rows - deleted + len(rows)
                dropped = self._drop_old_pictures()
                count -= dropped
                if count > self.max_rows:
                    thinned = self._thin(count)
                    self._pictures = self._picture_sizes()
                    dropped += thinned
                    count -= thinned
                meta = [("next_seq", self._next_seq)] if keep_meta else []
                if dropped:
                    meta.append(("dropped", self._dropped + dropped))
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite has already rolled back after SQLITE_FULL
                    db.execute("ROLLBACK")
                self._pictures = self._picture_sizes()
                raise
            self._rows = count
            self._dropped += dropped
            self._buffer, self._acked, self._meta_dirty = [], set(), False
            if rows:
                self._committed_seq = rows[-1][0]
            self._last_commit = time.monotonic()
            self.commits += 1
        if rows and self.on_commit is not None:
            self.on_commit()
        return len(rows)

    def _picture_sizes(self) -> dict[int, int]:
        """seq -> bytes of every picture in the outbox, oldest first."""
        cursor = self._db.execute(
            "SELECT seq, length(payload) FROM outbox WHERE topic = ? ORDER BY seq",
            (self._picture_topic,),
        )
        return dict(cursor.fetchall())

    def _drop_old_pictures(self) -> int:
        """Delete the oldest pictures beyond max_picture_bytes; never the newest."""
        total = sum(self._pictures.values())
        old: list[int] = []
        for seq in sorted(self._pictures)[:-1]:
            if total <= self.max_picture_bytes:
                break
            total -= self._pictures.pop(seq)
            old.append(seq)
        if old:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in old])
            log.warning(
                "outbox holds more than %d bytes of pictures: dropped the %d oldest",
                self.max_picture_bytes,
                len(old),
            )
        return len(old)

    def _thin(self, count: int) -> int:
        """Delete every other of the oldest half until within max_rows; never the newer half."""
        dropped = 0
        while count - dropped > self.max_rows:
            cursor = self._db.execute(_THIN, {"half": (count - dropped) // 2})
            if cursor.rowcount <= 0:
                # Too few rows to thin (max_rows of 1 or 2): drop the oldest instead.
                excess = count - dropped - self.max_rows
                cursor = self._db.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                    (excess,),
                )
            dropped += cursor.rowcount
        log.warning(
            "outbox full (%d readings): thinned out %d of the oldest half; "
            "%d readings dropped since this outbox was created",
            self.max_rows,
            dropped,
            self._dropped + dropped,
        )
        return dropped

    # reading (the publisher) -------------------------------------------------

    def after(self, cursor: int, limit: int, until: int | None = None) -> list[Pending]:
        """Committed, unacknowledged readings with cursor < seq (<= until), oldest first."""
        found: list[Pending] = []
        with self._lock:
            top = self._committed_seq if until is None else min(until, self._committed_seq)
            while len(found) < limit:
                rows = self._db.execute(
                    "SELECT seq, topic, payload FROM outbox WHERE seq > ? AND seq <= ? "
                    "ORDER BY seq LIMIT ?",
                    (cursor, top, limit - len(found)),
                ).fetchall()
                if not rows:
                    break
                cursor = rows[-1][0]
                found += [
                    Pending(seq, topic, payload.encode() if isinstance(payload, str) else payload)
                    for seq, topic, payload in rows
                    if seq not in self._acked
                ]
        return found

    def committed_seq(self) -> int:
        """The newest seq that is on disk (-1 before the first)."""
        with self._lock:
            return self._committed_seq

    def depth(self) -> int:
        """Readings not yet acknowledged by the broker, on disk or about to be."""
        with self._lock:
            return max(0, self._rows - len(self._acked)) + len(self._buffer)

    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def close(self) -> None:
        with self._lock:
            self._meta_dirty = True
        self.flush()
        with self._lock:
            self._db.close()
