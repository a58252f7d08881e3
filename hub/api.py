"""The JSON API and the live WebSocket (open data: read-only, no personal data)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.facilities import FacilityOut, present
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
    return [present(f, hub.live.states.get(f.id), language) for f in hub.settings.facilities]


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
    return present(facility, hub.live.states.get(facility_id), _lang(request, lang))


@router.get("/api/v1/contract", tags=["contract"])
def get_contract() -> dict[str, Any]:
    """The MQTT wire contract as JSON Schema, generated from the code."""
    return contract.json_schema()


@router.get("/healthz", tags=["operations"])
def healthz(request: Request) -> dict[str, Any]:
    hub = request.app.state.hub
    connected = bool(hub.metrics.mqtt_connected._value.get())
    return {"status": "ok", "mqtt_connected": connected}


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(request: Request) -> Response:
    registry = request.app.state.hub.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.websocket("/api/v1/live")
async def live(websocket: WebSocket, lang: str | None = None) -> None:
    """Pushes ``{"facility": {...}}`` for every facility on connect, then on every change."""
    hub = websocket.app.state.hub
    language = _lang(websocket, lang)
    await websocket.accept()
    client = hub.live.connect()
    for state in hub.live.states.values():
        client.push(state)
    receiver = asyncio.create_task(_drain(websocket))
    try:
        while not receiver.done():
            waiter = asyncio.create_task(client.next_batch())
            done, _ = await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                break
            for state in waiter.result():
                facility = hub.settings.facility(state.facility)
                if facility is not None:
                    out = present(facility, state, language)
                    await websocket.send_text('{"facility":' + out.model_dump_json() + "}")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        receiver.cancel()
        hub.live.disconnect(client)


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so that a close is noticed."""
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return
