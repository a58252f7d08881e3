"""The maintenance log: what was done where, when it was done, and who said so.

Each entry keeps the time the work was done (from the crew, checked: not in the
future, not older than ``max_backdate_s`` before the hub received it) apart from
the time it was received, so an entry queued offline on a phone keeps its true
time. A correction never overwrites silently: every version of an entry is kept
in ``entry_revisions`` with who changed it, when and why.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hub.crew import vocabulary
from hub.crew.db import CrewDB, from_ms, ms
from hub.crew.settings import CrewSettings
from hub.crew.vocabulary import NOTICE, Quality

MAX_NOTICE = 500
NOTICE_LANGUAGES = ("fi", "sv", "en")


class EntryError(ValueError):
    """An entry the log refuses; ``reason`` is a short label for the metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    id: int
    facility: str
    action: str
    quality: Quality | None
    notice: dict[str, str] | None
    performed_at: datetime
    received_at: datetime
    logged_by: str
    via: str
    withdrawn: bool
    revision: int


@dataclass(frozen=True)
class Revision:
    revision: int
    action: str
    quality: Quality | None
    notice: dict[str, str] | None
    performed_at: datetime
    withdrawn: bool
    changed_at: datetime
    changed_by: str
    reason: str | None


@dataclass(frozen=True)
class Latest:
    """A facility's newest condition and notice, with how long each stays true."""

    condition: Entry | None
    notice: Entry | None
    condition_ttl_s: int
    notice_ttl_s: int


@dataclass(frozen=True)
class Change:
    """A correction: the fields to change (None = leave as is)."""

    action: str | None = None
    quality: Quality | None = None
    notice: dict[str, str] | None = None
    performed_at: datetime | None = None
    withdrawn: bool | None = None
    reason: str | None = None


_COLUMNS = (
    "id, facility, action, quality, notice, performed_ms, received_ms, logged_by, via,"
    " withdrawn, revision"
)


def clean_notice(notice: dict[str, str] | None) -> dict[str, str] | None:
    if not notice:
        return None
    unknown = set(notice) - set(NOTICE_LANGUAGES)
    if unknown:
        raise EntryError("invalid", f"notice language(s) {sorted(unknown)}: use fi, sv, en")
    cleaned = {lang: text.strip() for lang, text in notice.items() if text and text.strip()}
    for lang, text in cleaned.items():
        if len(text) > MAX_NOTICE:
            raise EntryError("invalid", f"notice ({lang}) is longer than {MAX_NOTICE} characters")
    return cleaned or None


class MaintenanceLog:
    def __init__(self, db: CrewDB, settings: CrewSettings) -> None:
        self.db = db
        self.settings = settings
        self._cache: dict[str, tuple[Entry | None, Entry | None]] | None = None
        self._cache_version = -1
        self._checked = 0.0
        self._cache_lock = threading.Lock()

    # --- checks -------------------------------------------------------------

    def check_time(self, performed_at: datetime, received_at: datetime, now: datetime) -> None:
        """The work cannot be done in the future, nor long before anyone logged it."""
        if performed_at.tzinfo is None:
            raise EntryError("invalid", "the time of the work needs a time zone")
        if performed_at > now + timedelta(seconds=self.settings.clock_tolerance_s):
            raise EntryError("future", "the time of the work is in the future")
        oldest = received_at - timedelta(seconds=self.settings.max_backdate_s)
        if performed_at < oldest:
            hours = self.settings.max_backdate_s / 3600
            raise EntryError(
                "too_old", f"the time of the work is more than {hours:g} h before it was logged"
            )

    def check_action(self, kind: str, action: str) -> vocabulary.Action:
        allowed = vocabulary.actions_for(kind)
        known = vocabulary.action(action)
        if known is None or action not in allowed:
            raise EntryError(
                "unknown_action",
                f"{action[:40]!r} is not logged at a {kind}; use one of {', '.join(allowed)}",
            )
        return known

    # --- writing ------------------------------------------------------------

    def add(
        self,
        *,
        facility: str,
        kind: str,
        action: str,
        quality: Quality | None,
        notice: dict[str, str] | None,
        performed_at: datetime | None,
        logged_by: str,
        via: str,
        client_id: str | None,
        now: datetime,
    ) -> tuple[Entry, bool]:
        """Store an entry; returns it and whether it is new (a resent one is not)."""
        if client_id is not None:
            existing = self._by_client_id(logged_by, client_id)
            if existing is not None:
                return existing, False
        known = self.check_action(kind, action)
        notice = clean_notice(notice)
        if action == NOTICE and notice is None:
            raise EntryError("invalid", "a notice needs text in at least one of fi, sv, en")
        performed = performed_at or now
        self.check_time(performed, now, now)
        performed = min(performed, now)  # a phone clock a little ahead
        quality = quality or known.quality
        notice_json = json.dumps(notice, ensure_ascii=False) if notice else None
        try:
            with self.db.write() as db:
                cursor = db.execute(
                    "INSERT INTO entries (facility, action, quality, notice, performed_ms,"
                    " received_ms, logged_by, via, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        facility,
                        action,
                        quality.value if quality else None,
                        notice_json,
                        ms(performed),
                        ms(now),
                        logged_by,
                        via,
                        client_id,
                    ),
                )
                entry_id = int(cursor.lastrowid or 0)
                db.execute(
                    "INSERT INTO entry_revisions (entry_id, revision, action, quality, notice,"
                    " performed_ms, withdrawn, changed_ms, changed_by, reason)"
                    " VALUES (?, 1, ?, ?, ?, ?, 0, ?, ?, NULL)",
                    (
                        entry_id,
                        action,
                        quality.value if quality else None,
                        notice_json,
                        ms(performed),
                        ms(now),
                        logged_by,
                    ),
                )
        except sqlite3.IntegrityError:
            # The same client entry arrived twice at once (two tabs, two replicas).
            existing = self._by_client_id(logged_by, client_id or "")
            if existing is None:
                raise
            return existing, False
        self._invalidate()
        entry = self.get(entry_id)
        assert entry is not None
        return entry, True

    def correct(self, entry: Entry, kind: str, change: Change, by: str, now: datetime) -> Entry:
        """Apply a correction, keeping the previous version in the audit trail."""
        updated = entry
        if change.action is not None and change.action != entry.action:
            known = self.check_action(kind, change.action)
            updated = replace(updated, action=change.action, quality=known.quality)
        if change.quality is not None:
            updated = replace(updated, quality=change.quality)
        if change.notice is not None:
            updated = replace(updated, notice=clean_notice(change.notice))
        if updated.action == NOTICE and updated.notice is None:
            raise EntryError("invalid", "a notice needs text in at least one of fi, sv, en")
        if change.performed_at is not None:
            self.check_time(change.performed_at, entry.received_at, now)
            updated = replace(updated, performed_at=min(change.performed_at, entry.received_at))
        if change.withdrawn is not None:
            updated = replace(updated, withdrawn=change.withdrawn)
        reason = (change.reason or "").strip()[:MAX_NOTICE] or None
        if updated == entry:
            raise EntryError("invalid", "the correction changes nothing")
        updated = replace(updated, revision=entry.revision + 1)
        notice_json = json.dumps(updated.notice, ensure_ascii=False) if updated.notice else None
        values = (
            updated.action,
            updated.quality.value if updated.quality else None,
            notice_json,
            ms(updated.performed_at),
            int(updated.withdrawn),
        )
        with self.db.write() as db:
            changed = db.execute(
                "UPDATE entries SET action = ?, quality = ?, notice = ?, performed_ms = ?,"
                " withdrawn = ?, revision = ? WHERE id = ? AND revision = ?",
                (*values, updated.revision, entry.id, entry.revision),
            ).rowcount
            if not changed:
                raise EntryError("conflict", "the entry was changed meanwhile; reload it")
            db.execute(
                "INSERT INTO entry_revisions (entry_id, revision, action, quality, notice,"
                " performed_ms, withdrawn, changed_ms, changed_by, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.id, updated.revision, *values, ms(now), by, reason),
            )
        self._invalidate()
        return updated

    # --- reading --------------------------------------------------------------

    def get(self, entry_id: int) -> Entry | None:
        with self.db.read() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row) if row else None

    def _by_client_id(self, logged_by: str, client_id: str) -> Entry | None:
        with self.db.read() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE logged_by = ? AND client_id = ?",
                (logged_by, client_id),
            ).fetchone()
        return _entry(row) if row else None

    def history(
        self,
        facility: str,
        *,
        limit: int = 100,
        before: datetime | None = None,
        action: str | None = None,
        include_withdrawn: bool = False,
    ) -> list[Entry]:
        """Newest work first (by the time it was done, not when it was logged)."""
        sql = f"SELECT {_COLUMNS} FROM entries WHERE facility = ?"
        args: list[object] = [facility]
        if not include_withdrawn:
            sql += " AND withdrawn = 0"
        if before is not None:
            sql += " AND performed_ms < ?"
            args.append(ms(before))
        if action is not None:
            sql += " AND action = ?"
            args.append(action)
        sql += " ORDER BY performed_ms DESC, id DESC LIMIT ?"
        args.append(limit)
        with self.db.read() as db:
            rows = db.execute(sql, args).fetchall()
        return [_entry(row) for row in rows]

    def revisions(self, entry_id: int) -> list[Revision]:
        with self.db.read() as db:
            rows = db.execute(
                "SELECT revision, action, quality, notice, performed_ms, withdrawn, changed_ms,"
                " changed_by, reason FROM entry_revisions WHERE entry_id = ? ORDER BY revision",
                (entry_id,),
            ).fetchall()
        return [
            Revision(
                revision=row[0],
                action=row[1],
                quality=Quality(row[2]) if row[2] else None,
                notice=json.loads(row[3]) if row[3] else None,
                performed_at=from_ms(row[4]),
                withdrawn=bool(row[5]),
                changed_at=from_ms(row[6]),
                changed_by=row[7],
                reason=row[8],
            )
            for row in rows
        ]

    def latest(self, facility: str, kind: str) -> Latest:
        """The newest condition and notice, from a cache that follows every writer."""
        condition, notice = self._latest_all().get(facility, (None, None))
        return Latest(condition, notice, self.settings.ttl_for(kind), self.settings.notice_ttl_s)

    def _latest_all(self) -> dict[str, tuple[Entry | None, Entry | None]]:
        with self._cache_lock:
            now = time.monotonic()
            if self._cache is not None and now - self._checked < 1.0:
                return self._cache
            self._checked = now
            version = self.db.data_version()
            if self._cache is not None and version == self._cache_version:
                return self._cache
            self._cache_version = version
            self._cache = self._load_latest()
            return self._cache

    def _load_latest(self) -> dict[str, tuple[Entry | None, Entry | None]]:
        # One index walk per facility, from its newest work backwards.
        newest = (
            f"SELECT {_COLUMNS} FROM entries WHERE id IN (SELECT (SELECT id FROM entries"
            " WHERE facility = f.facility AND withdrawn = 0 AND {test}"
            " ORDER BY performed_ms DESC, id DESC LIMIT 1)"
            " FROM (SELECT DISTINCT facility FROM entries) AS f)"
        )
        with self.db.read() as db:
            conditions = db.execute(newest.format(test="action != 'notice'")).fetchall()
            notices = db.execute(newest.format(test="action = 'notice'")).fetchall()
        out: dict[str, tuple[Entry | None, Entry | None]] = {}
        for row in conditions:
            out[row[1]] = (_entry(row), None)
        for row in notices:
            out[row[1]] = (out.get(row[1], (None, None))[0], _entry(row))
        return out

    def _invalidate(self) -> None:
        with self._cache_lock:
            self._cache = None


def _entry(row: tuple) -> Entry:  # type: ignore[type-arg]
    return Entry(
        id=row[0],
        facility=row[1],
        action=row[2],
        quality=Quality(row[3]) if row[3] else None,
        notice=json.loads(row[4]) if row[4] else None,
        performed_at=from_ms(row[5]),
        received_at=from_ms(row[6]),
        logged_by=row[7],
        via=row[8],
        withdrawn=bool(row[9]),
        revision=row[10],
    )
