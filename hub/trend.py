"""Which way occupancy is heading: the page's trend arrow.

The live view feeds every facility state it sees into ``RecentSeries``, which
keeps about one sample a minute for half an hour, so the trend costs no store
query and every replica computes the same one from the same states. At start
the series is filled from the store's last half hour, so a restart does not
leave the arrow blank for ten minutes.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from enum import StrEnum

from hub.store import Store

log = logging.getLogger("ruuhka.trend")

LOOKBACK = timedelta(minutes=10)
KEEP = timedelta(minutes=30)
SAMPLE_EVERY = timedelta(minutes=1)


class Trend(StrEnum):
    RISING = "rising"
    STEADY = "steady"
    FALLING = "falling"


class RecentSeries:
    """Recent (time, occupancy) samples per facility, thinned to about one a minute."""

    def __init__(self) -> None:
        self._points: dict[str, deque[tuple[datetime, int]]] = {}

    def add(self, facility: str, at: datetime, occupancy: int) -> None:
        points = self._points.setdefault(facility, deque())
        if points and at < points[-1][0]:
            return
        if len(points) >= 2 and at - points[-2][0] < SAMPLE_EVERY:
            points[-1] = (at, occupancy)
        else:
            points.append((at, occupancy))
        while len(points) > 1 and points[1][0] <= at - KEEP:
            points.popleft()

    def trend(self, facility: str, now: datetime, capacity: int | None) -> Trend | None:
        """Now against ten minutes ago; None until the series reaches back that far.

        A change smaller than 5 % of capacity (at least 2 people) counts as steady."""
        # A copy in one C-level step: handlers in worker threads read while the
        # event loop appends.
        points = tuple(self._points.get(facility, ()))
        if not points:
            return None
        then = next((v for t, v in reversed(points) if t <= now - LOOKBACK), None)
        if then is None:
            return None
        delta = points[-1][1] - then
        threshold = max(2.0, 0.05 * capacity) if capacity else 2.0
        if delta >= threshold:
            return Trend.RISING
        if delta <= -threshold:
            return Trend.FALLING
        return Trend.STEADY


def recall(series: RecentSeries, store: Store, facilities: list[str], now: datetime) -> None:
    """Fill the series from the store's per-minute history of the last KEEP.

    Only the arrow depends on it: a store that cannot answer leaves the series
    empty (the trend unknown for ten minutes), not the hub down."""
    every_s = int(SAMPLE_EVERY.total_seconds())
    for facility in facilities:
        try:
            buckets = store.history(facility, now - KEEP, now, every_s)
        except Exception as exc:  # any store error: only the arrow waits
            log.warning("no recent history for the trend of %s: %s", facility, exc)
            continue
        for bucket in buckets:
            if bucket.occupancy_avg is not None:
                series.add(facility, bucket.start, round(bucket.occupancy_avg))
