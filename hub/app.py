"""The hub process: store, ingest and live view behind one FastAPI app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hub import api, pages
from hub.config import HubSettings
from hub.ingest import Ingest
from hub.live import LiveView
from hub.metrics import Metrics
from hub.store import Store, open_store
from ruuhka import __version__
from web import STATIC_DIR

log = logging.getLogger("ruuhka.hub")


@dataclass
class Hub:
    settings: HubSettings
    store: Store
    metrics: Metrics
    live: LiveView
    ingest: Ingest


def build_hub(settings: HubSettings) -> Hub:
    store = open_store(settings.store.url)
    metrics = Metrics()
    live = LiveView([], on_clients=metrics.live_clients.set)
    ingest = Ingest(settings, store, metrics, on_state=lambda s: live.offer(s, local=True))
    for state in ingest.states():
        live.offer(state, local=True)
    return Hub(settings, store, metrics, live, ingest)


def create_app(settings: HubSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = build_hub(settings)
        hub.live.bind(asyncio.get_running_loop())
        app.state.hub = hub
        hub.ingest.start()
        log.info("hub %s up with %d facilities", __version__, len(settings.facilities))
        try:
            yield
        finally:
            hub.ingest.stop()
            hub.store.close()

    app = FastAPI(
        title="Ruuhka open data API",
        version=__version__,
        description="Live occupancy and condition of public facilities. Times are RFC 3339 UTC.",
        lifespan=lifespan,
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
