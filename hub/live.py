"""The live view: the newest state of every facility, pushed to WebSocket clients.

States arrive from paho's threads (this replica's ingest, or the retained state
topic that every replica subscribes to) and are handed to the event loop. Each
client has one pending slot per facility, so a slow client gets the latest state
rather than a growing queue: memory per client is bounded by the facility count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ruuhka.contract import FacilityState


class LiveClient:
    def __init__(self) -> None:
        self.pending: dict[str, FacilityState] = {}
        self.wakeup = asyncio.Event()

    def push(self, state: FacilityState) -> None:
        self.pending[state.facility] = state
        self.wakeup.set()

    async def next_batch(self) -> list[FacilityState]:
        await self.wakeup.wait()
        self.wakeup.clear()
        batch = list(self.pending.values())
        self.pending.clear()
        return batch


class LiveView:
    def __init__(self, initial: list[FacilityState], on_clients: Callable[[int], None]) -> None:
        self.states: dict[str, FacilityState] = {s.facility: s for s in initial}
        self.clients: set[LiveClient] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_clients = on_clients

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
        for client in self.clients:
            client.push(state)

    def connect(self) -> LiveClient:
        client = LiveClient()
        self.clients.add(client)
        self._on_clients(len(self.clients))
        return client

    def disconnect(self, client: LiveClient) -> None:
        self.clients.discard(client)
        self._on_clients(len(self.clients))
