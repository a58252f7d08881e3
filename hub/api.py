"""The JSON API and the live WebSocket (open data: read-only, no personal data)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub import history
from hub.crew.service import latest_for
from hub.facilities import FacilityOut, present
from hub.forecast import Forecast, facility_forecast
from ruuhka import contract
from web.i18n import negotiate

router = APIRouter()

LangQuery = Query(default=None, pattern=r"^(fi|sv|en)$", description="fi, sv or en.")


def _lang(request: Request | WebSocket, lang: str | None) -> str:
    hub = request.app.state.hub
    return negotiate(
        lang, request.headers.get("accept-language"), hub.settings.site.default_language
    )


@router.get("/api/v1/facilities", response_model=list[FacilityOut], tags=["facilities"])
def list_facilities(request: Request, lang: str | None = LangQuery) -> list[FacilityOut]:
    hub = request.app.state.hub
    language = _lang(request, lang)
    return [
        present(
            f,
            hub.live.states.get(f.id),
            language,
            trend=hub.live.trend(f.id, f.capacity),
            condition=latest_for(request.app, f.id),
        )
        for f in hub.settings.facilities
    ]


@router.get(
    "/api/v1/facilities/{facility_id}",
    response_model=FacilityOut,
    responses={404: {"description": "No such facility."}},
    tags=["facilities"],
)
def get_facility(request: Request, facility_id: str, lang: str | None = LangQuery) -> FacilityOut:
    hub = request.app.state.hub
    facility = hub.settings.facility(facility_id)
    if facility is None:
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    return present(
        facility,
        hub.live.states.get(facility_id),
        _lang(request, lang),
        trend=hub.live.trend(facility_id, facility.capacity),
        condition=latest_for(request.app, facility_id),
    )


@router.get(
    "/api/v1/facilities/{facility_id}/history",
    response_model=history.HistoryOut,
    responses=history.RESPONSES,
    tags=["open data"],
)
def get_history(
    request: Request,
    facility_id: str,
    from_: str | None = history.FromQuery,
    to: str | None = history.ToQuery,
    every: str | None = history.EveryQuery,
    format: str | None = history.FormatQuery,
) -> Response:
    """Occupancy and the facility's other series per interval, as JSON or CSV."""
    hub = request.app.state.hub
    facility = hub.settings.facility(facility_id)
    if facility is None:
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    accept = request.headers.get("accept")
    return history.respond(hub.store, facility, from_, to, every, format, accept)


@router.get(
    "/api/v1/facilities/{facility_id}/forecast",
    response_model=Forecast,
    responses={404: {"description": "No such facility."}},
    tags=["open data"],
)
def get_forecast(request: Request, facility_id: str) -> Forecast:
    """Typical occupancy today, usually busy times, the best time to go and the next 2 hours."""
    hub = request.app.state.hub
    facility = hub.settings.facility(facility_id)
    if facility is None:
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    peers = tuple(hub.settings.facilities)
    return facility_forecast(hub.store, facility, datetime.now(UTC), hub.settings.forecast, peers)


@router.get("/api/v1/contract", tags=["contract"])
def get_contract() -> dict[str, Any]:
    """The MQTT wire contract as JSON Schema, generated from the code."""
    return contract.json_schema()


@router.get("/healthz", tags=["operations"])
def healthz(request: Request) -> JSONResponse:
    """Readiness: 503 while this hub cannot take readings (its ingest worker is not
    running, or its store cannot be written). The broker's state is reported, not
    judged: a broker outage would otherwise take every replica out at once."""
    hub = request.app.state.hub
    connected = bool(hub.metrics.mqtt_connected._value.get())
    ingest = hub.ingest
    problems = ingest.problems()
    down_s = ingest.broker_down_s()
    body: dict[str, Any] = {
        "status": "unavailable" if problems else "ok",
        "mqtt_connected": connected,
        "mqtt_down_s": round(down_s, 1),
        "oldest_waiting_s": round(ingest.oldest_waiting_s(), 1),
    }
    if problems:
        body["reasons"] = problems
    if down_s > hub.settings.ingest.broker_down_warning_s:
        body["warnings"] = [f"the broker has been unreachable for {down_s:.0f} s"]
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus' text format, to the addresses in ``[http] metrics_from`` only."""
    hub = request.app.state.hub
    if not hub.settings.http.may_read_metrics(request.client.host if request.client else ""):
        raise HTTPException(status_code=404, detail="Not Found")
    registry = hub.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.websocket("/api/v1/live")
async def live(websocket: WebSocket, lang: str | None = None) -> None:
    """Pushes ``{"facility": {...}}`` for every facility on connect, then on every change.

    Changes are coalesced per facility and paced (``[live]`` settings); a client
    that stops taking data is dropped and should reconnect."""
    hub = websocket.app.state.hub
    language = _lang(websocket, lang)

    def render(state: contract.FacilityState) -> str | None:
        facility = hub.settings.facility(state.facility)
        if facility is None:
            return None
        trend = hub.live.trend(facility.id, facility.capacity)
        condition = latest_for(websocket.app, facility.id)
        out = present(facility, state, language, trend=trend, condition=condition)
        return '{"facility":' + out.model_dump_json() + "}"

    await websocket.accept()
    await hub.live.fanout.serve(websocket, language, render, list(hub.live.states.values()))
