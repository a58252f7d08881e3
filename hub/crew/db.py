"""The crew database: one SQLite file for accounts, sessions and the maintenance log.

Every hub replica and the ``ruuhka crew`` command open the same file; WAL and a
busy timeout let them write side by side, and nothing is cached that another
process could change (sessions and login counts are read on every request).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ruuhka.private_files import create_private_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS crews (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    password_changed_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    crew_id INTEGER NOT NULL REFERENCES crews (id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY,
    crew_id INTEGER NOT NULL REFERENCES crews (id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER,
    UNIQUE (crew_id, label)
);
CREATE TABLE IF NOT EXISTS login_failures (
    key TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_key ON login_failures (key, at_ms);
CREATE INDEX IF NOT EXISTS login_failures_by_time ON login_failures (at_ms);
CREATE TABLE IF NOT EXISTS known_logins (
    crew_id INTEGER NOT NULL REFERENCES crews (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    last_ok_ms INTEGER NOT NULL,
    PRIMARY KEY (crew_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    facility TEXT NOT NULL,
    action TEXT NOT NULL,
    quality TEXT,
    notice TEXT,
    performed_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    logged_by TEXT NOT NULL,
    via TEXT NOT NULL,
    client_id TEXT,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 1,
    UNIQUE (logged_by, client_id)
);
CREATE INDEX IF NOT EXISTS entries_by_facility ON entries (facility, performed_ms);
CREATE TABLE IF NOT EXISTS entry_revisions (
    entry_id INTEGER NOT NULL REFERENCES entries (id),
    revision INTEGER NOT NULL,
    action TEXT NOT NULL,
    quality TEXT,
    notice TEXT,
    performed_ms INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (entry_id, revision)
) WITHOUT ROWID;
"""


class CrewDBURLError(ValueError):
    pass


def ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


class CrewDB:
    """A connection shared by the threads of one process, serialised by a lock."""

    def __init__(self, path: Path | str) -> None:
        create_private_database(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> CrewDB:
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise CrewDBURLError(f"bad crew database URL {url!r}; use sqlite:///path/to/crew.db")
        return cls(url[len(prefix) :])

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it or none of it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection (another replica, the CLI) commits."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
