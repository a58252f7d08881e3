"""A camera source: frames in memory, through the anonymiser, out as snapshot readings.

Sample configuration (``type = "camera"``; all anonymiser keys are in
``edge/camera_config.py``)::

    [[sources]]
    type = "camera"
    camera = "yard"
    url = "rtsp://10.0.0.20/stream1"   # or 0 for a USB camera, or folder = "/srv/ftp/cam"
    interval_s = 60                     # publish a picture this often
    analyse_every_s = 2                 # the anonymiser follows the scene this often
    [sources.anonymiser]
    mode = "background"                 # or "pixelate", "fill"
    privacy_polygons = [[[0.8, 0.0], [1.0, 0.0], [1.0, 0.3]]]

A worker thread grabs a frame every ``analyse_every_s``, runs the anonymiser
(so its background model and hold timers follow the scene) and keeps only the
newest :class:`~edge.anonymise.Outcome`; frames are never stored. Every
``interval_s`` the agent calls :meth:`CameraSource.read`, which turns the
newest outcome into one snapshot reading: the anonymised JPEG and the people
count, or, when the anonymiser failed closed or nothing new was analysed, only
the reason (``status``).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.anonymise import Anonymiser, Outcome
from edge.camera_config import CameraConfig
from edge.sources import Readings
from ruuhka.contract import CameraStatus, Stream

log = logging.getLogger("ruuhka.camera")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class Frames(Protocol):
    """Where frames come from; ``grab`` returns None when there is no new frame."""

    def grab(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class CaptureFrames:
    """OpenCV ``VideoCapture``: a USB camera index, an RTSP/HTTP stream or a file."""

    def __init__(self, url: str | int) -> None:
        self.url = url
        self._capture: cv2.VideoCapture | None = None

    def grab(self) -> np.ndarray | None:
        if self._capture is None or not self._capture.isOpened():
            self._capture = cv2.VideoCapture(self.url)
            if not self._capture.isOpened():
                self._capture = None
                return None
        ok, frame = self._capture.read()
        if not ok:
            self.close()
            return None
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderFrames:
    """A folder a trail camera uploads pictures to (FTP, SMB): oldest new file first.

    A file still being written (changed in the last ``settle_s``) is left for
    later; a file that was read is deleted when ``delete`` is set, so no raw
    picture stays on the device longer than it takes to anonymise it."""

    def __init__(self, folder: Path, delete: bool = True, settle_s: float = 2.0) -> None:
        self.folder = folder
        self.delete = delete
        self.settle_s = settle_s
        self._done: set[str] = set()

    def grab(self) -> np.ndarray | None:
        now = time.time()
        candidates: list[tuple[float, Path]] = []
        try:
            entries = list(self.folder.iterdir())
        except OSError as exc:
            log.warning("cannot list %s: %s", self.folder, exc)
            return None
        for path in entries:
            if path.suffix.lower() not in _IMAGE_SUFFIXES or path.name in self._done:
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if now - mtime >= self.settle_s:
                candidates.append((mtime, path))
        if not candidates:
            return None
        _, path = min(candidates)
        try:
            data = np.frombuffer(path.read_bytes(), np.uint8)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return None
        finally:
            self._forget(path)
        # Decoding keeps pixels only: EXIF (GPS, serial number, time) is dropped here.
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    def _forget(self, path: Path) -> None:
        if self.delete:
            try:
                path.unlink()
                return
            except OSError as exc:
                log.warning("cannot delete %s: %s", path, exc)
        self._done.add(path.name)

    def close(self) -> None:
        """Nothing is held open."""


def open_frames(config: CameraConfig) -> Frames:
    if config.folder is not None:
        return FolderFrames(config.folder, config.delete_after_read)
    assert config.url is not None
    url: str | int = config.url
    if isinstance(url, str) and url.isdigit():
        url = int(url)
    return CaptureFrames(url)


def snapshot_fields(camera: str, outcome: Outcome, spots: int) -> dict[str, object]:
    """The snapshot reading for an outcome: a picture only when it is OK."""
    fields: dict[str, object] = {
        "camera": camera,
        "status": outcome.status.value,
        "anonymiser": outcome.mode.value,
    }
    if outcome.ok:
        assert outcome.jpeg is not None
        fields.update(
            people=outcome.people,
            width=outcome.width,
            height=outcome.height,
            jpeg_b64=base64.b64encode(outcome.jpeg).decode("ascii"),
        )
        if spots:
            fields.update(spots=spots, spots_in_use=outcome.spots_in_use)
    return fields


class CameraSource:
    """Analyses frames on its own thread; publishes the newest outcome on ``read``."""

    def __init__(
        self,
        config: CameraConfig,
        frames: Frames | None = None,
        anonymiser: Anonymiser | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.camera
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        self.clock = clock
        self.frames = frames if frames is not None else open_frames(config)
        self.anonymiser = anonymiser if anonymiser is not None else Anonymiser(config.anonymiser)
        self.analysed = 0
        self._latest: Outcome | None = None
        self._busy_since: float | None = None
        self._published: Outcome | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = clock()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = self.clock()
            self.analyse_once()
            self._stop.wait(max(0.0, self.config.analyse_every_s - (self.clock() - began)))

    def analyse_once(self) -> Outcome | None:
        """Grab and anonymise one frame; a missing frame changes nothing."""
        try:
            frame = self.frames.grab()
        except Exception:
            log.exception("camera %s: grabbing a frame failed", self.name)
            frame = None
        if frame is None:
            return None
        self._busy_since = self.clock()
        try:
            outcome = self.anonymiser.process(frame)
        finally:
            self._busy_since = None
        del frame
        with self._lock:
            self._latest = outcome
            self.analysed += 1
        return outcome

    def read(self, now: datetime) -> Readings:
        """One snapshot reading per new outcome; ``timeout`` while the anonymiser hangs,
        ``no_frame`` once nothing new comes."""
        mode = self.config.anonymiser.mode
        busy_since = self._busy_since
        if busy_since is not None and self.clock() - busy_since > self.config.anonymiser.timeout_s:
            hung = Outcome(CameraStatus.TIMEOUT, mode)
            return [(Stream.SNAPSHOT, snapshot_fields(self.name, hung, 0))]
        with self._lock:
            latest = self._latest
        fresh = latest is not None and latest is not self._published
        if fresh:
            assert latest is not None
            self._published = latest
            return [(Stream.SNAPSHOT, snapshot_fields(self.name, latest, self._spots()))]
        last_seen = latest.at if latest is not None else self._started
        if self.clock() - last_seen > self.config.stale_after:
            stale = Outcome(CameraStatus.NO_FRAME, mode)
            return [(Stream.SNAPSHOT, snapshot_fields(self.name, stale, 0))]
        return []

    def describe(self) -> str:
        """For ``ruuhka edge --check``: where frames come from and what hides people."""
        c = self.config
        where = f"folder {c.folder}" if c.folder is not None else f"capture {c.url!r}"
        signals = [
            name
            for name, on in (
                ("person detector", self.anonymiser.persons is not None),
                ("face detector", self.anonymiser.faces is not None),
                ("foreground", c.anonymiser.foreground),
                ("privacy polygons", bool(c.anonymiser.privacy_polygons)),
            )
            if on
        ]
        return f"{where}; mode {c.anonymiser.mode.value}; hides with {', '.join(signals)}"

    def _spots(self) -> int:
        return len(self.config.anonymiser.spots)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.anonymiser.timeout_s + 5)
        self.frames.close()
