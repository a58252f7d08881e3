"""The latest anonymised camera picture per facility, and the URL that serves it.

The hub keeps nothing else from cameras: by default only the newest picture of
each camera (``history = true`` keeps every picture for ``retention_h``), and
nothing older than ``retention_h`` at all. Pictures live in their own small
SQLite file, beside the SQLite store or where ``[snapshots] path`` says (in
memory with other stores), so they never mix with the readings (which keep
only the picture's metadata).
"""

from __future__ import annotations

import base64
import io
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hub.schema_version import migrate
from ruuhka.private_files import create_private_database

log = logging.getLogger("ruuhka.snapshots")

# The contract's largest picture (960 wide, 4096 high); Pillow's own bomb limit is
# 89 million pixels, far more than a camera picture of ours can be.
MAX_PIXELS = 960 * 4096
# Pictures waiting to be checked; a camera sends one a minute, so this is only
# full when something floods the hub: then the newest wait and the rest are dropped.
CHECK_QUEUE = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    facility TEXT NOT NULL,
    source TEXT NOT NULL,
    taken_ms INTEGER NOT NULL,
    people INTEGER,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    PRIMARY KEY (facility, source, taken_ms)
) WITHOUT ROWID;
"""
# Appended, never edited: each is one schema version (hub/schema_version.py).
_MIGRATIONS = (
    # 1: the washing spots the picture shows, for its text alternative.
    "ALTER TABLE snapshots ADD COLUMN spots INTEGER",
    # 2
    "ALTER TABLE snapshots ADD COLUMN spots_in_use INTEGER",
)


class SnapshotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path | None = Field(
        default=None,
        description="SQLite file for pictures; default: beside the SQLite store "
        "(NAME.snapshots.db), or in memory for other stores (the next picture "
        "after a restart comes within the camera's interval).",
    )
    history: bool = Field(default=False, description="Keep every picture for retention_h.")
    retention_h: float = Field(default=24.0, gt=0, description="Nothing older is kept.")
    interval_s: int = Field(
        default=60,
        gt=0,
        description="How often the cameras publish a picture, as their signs say "
        "(a facility's snapshot_interval_s overrides it).",
    )


@dataclass
class Picture:
    facility: str
    source: str
    taken_at: datetime
    jpeg: bytes
    width: int
    height: int
    people: int | None = None
    spots: int | None = None
    spots_in_use: int | None = None


def decode_jpeg(jpeg_b64: str) -> bytes:
    """The picture's bytes; refuses what cannot even look like a whole JPEG (a quick
    check on the ingest thread; verify_jpeg decodes it, elsewhere)."""
    data = base64.b64decode(jpeg_b64, validate=True)
    if not (data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00").endswith(b"\xff\xd9")):
        raise ValueError("not a complete JPEG")
    return data


class PictureRejected(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def verify_jpeg(data: bytes, width: int, height: int) -> None:
    """Refuse a picture unless it decodes, whole, as a JPEG of the declared size.

    The size is read from the JPEG's header and compared before any pixel is
    decoded, so a small file that claims a huge picture (a decompression bomb)
    is refused for the price of reading a header."""
    from PIL import Image  # here: the configuration imports this module, and needs no Pillow

    if width * height > MAX_PIXELS:
        raise PictureRejected("too_many_pixels", f"{width}x{height} is over {MAX_PIXELS} pixels")
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            if image.size != (width, height):
                raise PictureRejected(
                    "wrong_size",
                    f"the JPEG is {image.size[0]}x{image.size[1]}, the message says "
                    f"{width}x{height}",
                )
            image.load()  # every pixel: a truncated or corrupt picture fails here
    except PictureRejected:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own limit, also before decoding
        raise PictureRejected("too_many_pixels", str(exc)[:200]) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PictureRejected("not_a_jpeg", str(exc)[:200]) from None


def snapshot_path(settings: SnapshotSettings, store_url: str) -> str:
    if settings.path is not None:
        return str(settings.path)
    prefix = "sqlite:///"
    if store_url.startswith(prefix):
        store = store_url[len(prefix) :]
        if store == ":memory:":
            return ":memory:"
        path = Path(store)
        return str(path.with_name(path.stem + ".snapshots.db"))
    return ":memory:"


def ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


class SnapshotStore:
    def __init__(self, path: str, history: bool = False, retention_h: float = 24.0) -> None:
        create_private_database(path)
        self.history = history
        self.retention = timedelta(hours=retention_h)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Told of every picture saved (hub/renditions.py makes the smaller copies).
        self.listeners: list[Callable[[list[Picture]], None]] = []
        # Told of every picture refused, with the reason (the hub counts and logs them).
        self.on_rejected: Callable[[Picture, PictureRejected], None] = _log_rejected
        self._db.executescript(_SCHEMA)
        migrate(self._db, _MIGRATIONS, f"the picture store {path}")
        self._checks: queue.Queue[Picture | None] = queue.Queue(maxsize=CHECK_QUEUE)
        self._checker = threading.Thread(target=self._check_pictures, name="pictures", daemon=True)
        self._checker.start()

    @classmethod
    def open(cls, settings: SnapshotSettings, store_url: str) -> SnapshotStore:
        return cls(snapshot_path(settings, store_url), settings.history, settings.retention_h)

    def offer(self, pictures: list[Picture]) -> None:
        """Keep these if they are what they say they are: decoded and checked on this
        store's own thread, so ingest never waits for an image decoder."""
        for picture in pictures:
            try:
                self._checks.put_nowait(picture)
            except queue.Full:
                self.on_rejected(picture, PictureRejected("busy", "too many pictures to check"))

    def _check_pictures(self) -> None:
        while (picture := self._checks.get()) is not None:
            try:
                verify_jpeg(picture.jpeg, picture.width, picture.height)
            except PictureRejected as exc:
                self.on_rejected(picture, exc)
                continue
            try:
                self.save([picture])
            except Exception:
                # Only the picture is lost; the next one replaces it anyway.
                log.exception("could not keep the camera picture of %s", picture.facility)

    def save(self, pictures: list[Picture], now: datetime | None = None) -> None:
        """Keep these; drop what is superseded (no history) or past retention."""
        now = now or datetime.now(UTC)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for p in pictures:
                    self._db.execute(
                        "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            p.facility,
                            p.source,
                            ms(p.taken_at),
                            p.people,
                            p.width,
                            p.height,
                            p.jpeg,
                            p.spots,
                            p.spots_in_use,
                        ),
                    )
                    if not self.history:
                        self._db.execute(
                            "DELETE FROM snapshots WHERE facility = ? AND source = ? AND "
                            "taken_ms < (SELECT MAX(taken_ms) FROM snapshots "
                            "WHERE facility = ? AND source = ?)",
                            (p.facility, p.source, p.facility, p.source),
                        )
                self._prune(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for listener in self.listeners:
            listener(pictures)

    def _prune(self, now: datetime) -> None:
        self._db.execute("DELETE FROM snapshots WHERE taken_ms < ?", (ms(now - self.retention),))

    def latest(self, facility: str, now: datetime | None = None) -> Picture | None:
        """The facility's newest picture within retention, from any of its cameras."""
        now = now or datetime.now(UTC)
        with self._lock:
            row = self._db.execute(
                "SELECT source, taken_ms, people, width, height, jpeg, spots, spots_in_use "
                "FROM snapshots "
                "WHERE facility = ? AND taken_ms >= ? ORDER BY taken_ms DESC LIMIT 1",
                (facility, ms(now - self.retention)),
            ).fetchone()
        if row is None:
            return None
        source, taken_ms, people, width, height, jpeg, spots, in_use = row
        taken = datetime.fromtimestamp(taken_ms / 1000, UTC)
        return Picture(facility, source, taken, bytes(jpeg), width, height, people, spots, in_use)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0])

    def close(self) -> None:
        """After the pictures already offered are checked and kept."""
        self._checks.put(None)
        self._checker.join(timeout=10)
        with self._lock:
            self._db.close()


def _log_rejected(picture: Picture, rejected: PictureRejected) -> None:
    log.warning("camera picture from %s refused: %s", picture.source, rejected)
