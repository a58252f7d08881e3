"""The hub process: store, ingest and live view behind one FastAPI app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI

from hub import api, snapshot_api
from hub.config import HubSettings
from hub.connections import Limits, effective
from hub.crew import routes as crew_routes
from hub.crew.service import open_crew
from hub.fanout import FanoutMetrics, ServerSend
from hub.ingest import Ingest
from hub.live import LiveView
from hub.metrics import Metrics
from hub.renditions import Renditions
from hub.replicas import OwnerIngest, Partition
from hub.security import SecurityMiddleware
from hub.snapshots import Picture, PictureRejected, SnapshotStore
from hub.store import Store, open_store
from hub.trend import recall
from ruuhka import __version__
from web import api_docs, crew, pages, sign
from web.assets import ASSETS
from web.compression import Compression

log = logging.getLogger("ruuhka.hub")


@dataclass
class Hub:
    settings: HubSettings
    store: Store
    metrics: Metrics
    live: LiveView
    ingest: Ingest
    snapshots: SnapshotStore
    renditions: Renditions
    owner: OwnerIngest | None = None  # one of several replicas: derives its facilities


def build_hub(settings: HubSettings) -> Hub:
    store = open_store(settings.store.url, settings.store)
    metrics = Metrics()
    metrics.watch_store(store.stats)
    live = LiveView([], metrics.live_clients.set, settings.live, FanoutMetrics(metrics.registry))
    snapshots = SnapshotStore.open(settings.snapshots, settings.store.url)
    renditions = Renditions()
    snapshots.listeners.append(renditions.submit)
    ingest = Ingest(
        settings,
        store,
        metrics,
        on_state=lambda s: live.offer(s, local=True),
        snapshots=snapshots,
        on_remote_state=lambda s: live.offer(s, local=False),
    )

    def rejected(picture: Picture, reason: PictureRejected) -> None:
        metrics.rejected.labels("bad_image").inc()
        ingest.reject_log.warn(picture.source.split("/")[0], "bad_image", str(reason))

    snapshots.on_rejected = rejected
    metrics.mqtt_down_seconds.set_function(ingest.broker_down_s)
    metrics.oldest_waiting_seconds.set_function(ingest.oldest_waiting_s)
    owner = None
    if settings.ingest.shared_group is not None:
        owner = OwnerIngest(
            settings, store, metrics, lambda s: live.offer(s, local=True), Partition(settings)
        )
    sessions = [ingest] if owner is None else [ingest, owner]
    metrics.queue_depth.set_function(lambda: sum(s.waiting() for s in sessions))
    recall(live.recent, store, [f.id for f in settings.facilities], datetime.now(UTC))
    for state in ingest.states():
        live.offer(state, local=True)
    return Hub(settings, store, metrics, live, ingest, snapshots, renditions, owner)


def create_app(settings: HubSettings, limits: Limits | None = None) -> FastAPI:
    """``limits``: the connection limits the server was started with (default: worked
    out from the settings and this process's open-file limit)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = build_hub(settings)
        hub.live.bind(asyncio.get_running_loop())
        app.state.hub = hub
        app.state.crew = open_crew(settings, hub.metrics.registry)
        hub.ingest.start()
        if hub.owner is not None:
            hub.owner.start()
        log.info("hub %s up with %d facilities", __version__, len(settings.facilities))
        try:
            yield
        finally:
            if hub.owner is not None:
                hub.owner.stop()
            hub.ingest.stop()
            hub.store.close()
            hub.snapshots.close()
            hub.renditions.close()
            if app.state.crew is not None:
                app.state.crew.close()

    app = FastAPI(
        title="Ruuhka open data API",
        version=__version__,
        description="Live occupancy and condition of public facilities. Times are RFC 3339 UTC.",
        lifespan=lifespan,
        docs_url=None,  # served from the hub's own files instead (web/api_docs.py)
        redoc_url=None,
    )
    app.include_router(api.router)
    app.include_router(snapshot_api.router)
    app.include_router(crew_routes.router)
    app.include_router(crew.router)
    app.include_router(pages.router)
    app.include_router(sign.router)
    app.include_router(api_docs.router)
    app.mount("/static", ASSETS, name="static")
    app.mount(api_docs.ASSETS_PATH, api_docs.DOCS_ASSETS, name="docs-assets")
    app.add_middleware(
        SecurityMiddleware, settings=settings.http, limits=limits or effective(settings.http)
    )
    app.add_middleware(Compression)  # outside the security middleware: see web.compression
    app.add_middleware(ServerSend)  # outermost: the live fan-out writes frames directly
    return app
