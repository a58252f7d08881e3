"""The live view: the newest state of every facility, pushed to WebSocket clients.

States arrive from paho's threads (this replica's ingest, or the retained state
topic that every replica subscribes to) and are handed to the event loop, which
passes them on to the WebSocket clients (hub/fanout.py: coalesced, paced, slow
clients dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from hub.fanout import Fanout, FanoutMetrics, LiveSettings
from hub.trend import RecentSeries, Trend
from ruuhka.contract import FacilityState


class LiveView:
    def __init__(
        self,
        initial: list[FacilityState],
        on_clients: Callable[[int], None],
        settings: LiveSettings | None = None,
        metrics: FanoutMetrics | None = None,
    ) -> None:
        self.states: dict[str, FacilityState] = {s.facility: s for s in initial}
        self.recent = RecentSeries()
        for state in initial:
            self._remember(state)
        self.fanout = Fanout(settings or LiveSettings(), on_clients, metrics)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def offer(self, state: FacilityState, *, local: bool) -> None:
        """Thread-safe. A local state always wins; one from the broker only if newer."""
        if self._loop is None or self._loop.is_closed():
            self._apply(state, local)
            return
        self._loop.call_soon_threadsafe(self._apply, state, local)

    def _apply(self, state: FacilityState, local: bool) -> None:
        current = self.states.get(state.facility)
        if not local and current is not None and state.revision <= current.revision:
            return
        self.states[state.facility] = state
        self._remember(state)
        self.fanout.publish(state)

    def _remember(self, state: FacilityState) -> None:
        if state.updated_at is not None and state.occupancy is not None:
            self.recent.add(state.facility, state.updated_at, state.occupancy)

    def trend(self, facility: str, capacity: int | None) -> Trend | None:
        return self.recent.trend(facility, datetime.now(UTC), capacity)
