"""Smaller copies of each camera picture, for the list page's card and for phones.

Made once per picture, on a worker thread of their own (never the ingest
thread, never per request), with Pillow: the picture store tells this module
about every new picture, and the copies are kept in memory beside the newest
picture of each facility. A request for a copy that is not made yet (a
picture from before a restart, or one another replica stored) makes it once,
under the same lock, and keeps it.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterable

from PIL import Image

from hub.snapshots import Picture, ms

log = logging.getLogger("ruuhka.renditions")

# Widths in pixels: the card's thumbnail (shown 120 CSS px wide, so sharp at 2x)
# and a phone-sized picture; the original (at most 960) is the largest size.
WIDTHS = (240, 480)
QUALITY = 70


def render(jpeg: bytes, width: int) -> tuple[bytes, int, int]:
    """The picture scaled to ``width`` (never up), as a baseline JPEG without metadata."""
    with Image.open(io.BytesIO(jpeg)) as image:
        height = max(1, round(image.height * width / image.width))
        if width >= image.width:
            return jpeg, image.width, image.height
        # draft() lets the JPEG decoder skip detail the small copy does not need.
        image.draft("RGB", (width, height))
        small = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=QUALITY, optimize=True)
    return out.getvalue(), width, height


class Renditions:
    """The copies of each facility's newest picture, made once each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # facility -> (taken_ms, {width: jpeg})
        self._copies: dict[str, tuple[int, dict[int, bytes]]] = {}
        self._queue: queue.Queue[Picture | None] = queue.Queue(maxsize=256)
        self.made = 0
        self._worker = threading.Thread(target=self._run, name="renditions", daemon=True)
        self._worker.start()

    def submit(self, pictures: Iterable[Picture]) -> None:
        """Called by the picture store after a save: make the copies soon, elsewhere."""
        for picture in pictures:
            try:
                self._queue.put_nowait(picture)
            except queue.Full:
                log.warning("renditions queue full; %s will be made on request", picture.facility)

    def get(self, picture: Picture, width: int) -> bytes:
        """The copy of ``picture`` at ``width``; made now if it has not been."""
        key = ms(picture.taken_at)
        with self._lock:
            taken, copies = self._copies.get(picture.facility, (-1, {}))
            if taken == key and width in copies:
                return copies[width]
            data = self._make(picture, width)
            if key > taken:  # a newer picture: the old copies go
                self._copies[picture.facility] = (key, {width: data})
            elif key == taken:
                copies[width] = data
            return data

    def _make(self, picture: Picture, width: int) -> bytes:
        data, _, _ = render(picture.jpeg, width)
        self.made += 1
        return data

    def _run(self) -> None:
        while True:
            picture = self._queue.get()
            if picture is None:
                return
            try:
                for width in WIDTHS:
                    self.get(picture, width)
            except Exception:
                log.exception("could not make the smaller copies of %s's picture", picture.facility)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)
