"""WebSocket fan-out on a real hub: coalesced and paced per client; a client that
stops reading is dropped while the others carry on."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.sync.client import connect

from hub.fanout import DirectSink, Fanout, LiveSettings, ServerSend
from ruuhka.broker import Broker, free_port
from ruuhka.contract import FacilityState, encode, facility_state_topic, utcnow
from ruuhka.local_hub import local_hub_toml
from tests.conftest import HubProcess, wait_for

FACILITIES = [f"site-{i:02d}" for i in range(100)]

CONFIG = (
    local_hub_toml("{mqtt_url}", "{db}", "{port}", "fanout-test", http="api_rate_per_s = 0")
    + """
[live]
max_rate_hz = {rate}
send_timeout_s = {send_timeout}
"""
)

FACILITY = """
[[facilities]]
id = "{id}"
kind = "gym"
capacity = 1000
name = {{ en = "{id}: {padding}" }}  # long, so that each message is nearly a kilobyte
"""


@pytest.fixture
def start_hub(tmp_path: Path, broker: Broker) -> Any:
    started: list[HubProcess] = []

    def start(rate: float, send_timeout: float = 5) -> HubProcess:
        port = free_port()
        config = tmp_path / "hub.toml"
        text = CONFIG.format(
            mqtt_url=broker.url,
            db=tmp_path / "hub.db",
            port=port,
            rate=rate,
            send_timeout=send_timeout,
        )
        text += "".join(FACILITY.format(id=f, padding="x" * 190) for f in FACILITIES)
        config.write_text(text, encoding="utf-8")
        started.append(HubProcess(config, port, tmp_path / "hub.log").start())
        return started[-1]

    yield start
    for hub in started:
        hub.stop()


class Browser:
    """Reads every message, with its arrival time."""

    def __init__(self, hub: HubProcess) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.socket = connect(f"ws://127.0.0.1:{hub.port}/api/v1/live?lang=en", open_timeout=10)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.socket:
                self.received.append((time.monotonic(), json.loads(text)["facility"]))
        except Exception:  # closed at the end of the test
            return

    def of(self, facility: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, f) for at, f in self.received if f["id"] == facility]

    def shows(self, facility: str, occupancy: int) -> bool:
        seen = self.of(facility)
        return bool(seen) and seen[-1][1]["occupancy"] == occupancy

    def close(self) -> None:
        self.socket.close()
        self.thread.join(5)


class StatePublisher:
    """Publishes facility states as another replica would (retained, newer revisions)."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, facility: str, revision: int) -> mqtt.MQTTMessageInfo:
        state = FacilityState(
            facility=facility, revision=revision, occupancy=revision, updated_at=utcnow()
        )
        return self.client.publish(facility_state_topic(facility), encode(state), qos=1)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_changes_are_coalesced_per_facility_and_paced(start_hub: Any, broker: Broker) -> None:
    rate = 4
    hub = start_hub(rate)
    browser = Browser(hub)
    publisher = StatePublisher(broker)
    try:
        wait_for(lambda: browser.of("site-00"), 10, "the initial state")
        for revision in range(1, 101):
            publisher.publish("site-00", revision).wait_for_publish(10)
        wait_for(lambda: browser.shows("site-00", 100), 20, "the latest state")
    finally:
        publisher.stop()
        browser.close()
    updates = browser.of("site-00")[1:]  # after the initial state
    span = updates[-1][0] - updates[0][0]
    # Latest wins: 100 changes become a handful of messages, no more than the pace allows.
    assert len(updates) < 100
    assert len(updates) <= 2 + span * rate, (len(updates), span)
    assert hub.metric("ruuhka_live_messages_coalesced_total") > 0


def handshake_and_stall(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    sock.settimeout(10)
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Read what is left; True once the hub has closed or reset the connection."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_a_client_that_stops_reading_is_dropped_and_no_one_waits(
    start_hub: Any, broker: Broker
) -> None:
    send_timeout = 5
    hub = start_hub(50, send_timeout)
    stalled = handshake_and_stall(hub.port)
    browser = Browser(hub)
    publisher = StatePublisher(broker)
    revision = 0
    before_drop = 0  # the last round the reader had while the stalled client was still on
    try:
        wait_for(lambda: hub.metric("ruuhka_live_clients") == 2, 30, "both clients")
        deadline = time.monotonic() + 120
        while hub.metric("ruuhka_live_clients_dropped_total") < 1:
            assert time.monotonic() < deadline, "the stalled client was never dropped"
            revision += 1
            for facility in FACILITIES:
                publisher.publish(facility, revision)
            wait_for(lambda r=revision: browser.shows(FACILITIES[-1], r), 60, "the round")
            if hub.metric("ruuhka_live_clients_dropped_total") < 1:
                before_drop = revision
        # A round is 100 messages of nearly a kilobyte: from the third on, the stalled
        # client's buffers were full, and the reader still got round after round before
        # it was dropped (had the hub waited for it, nothing would have come until then).
        assert before_drop >= 5, before_drop
        wait_for(lambda: hub.metric("ruuhka_live_clients") == 1, 30, "the stalled one to go")
        revision += 1
        for facility in FACILITIES:
            publisher.publish(facility, revision)
        wait_for(
            lambda: all(browser.shows(f, revision) for f in FACILITIES), 30, "every final state"
        )
        stalled.settimeout(10)
        assert closed_by_peer(stalled)
    finally:
        publisher.stop()
        browser.close()
        stalled.close()
    assert hub.metric("ruuhka_live_clients_dropped_total") == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # uvicorn's older protocol
@pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated")
def test_under_another_websocket_server_each_message_goes_through_asgi() -> None:
    """uvicorn's older websockets protocol has no transport to write to directly:
    the fan-out falls back to one ASGI send per message, paced the same way."""
    fanout = Fanout(LiveSettings(max_rate_hz=50), on_clients=lambda n: None)
    loops: list[asyncio.AbstractEventLoop] = []
    direct: list[DirectSink | None] = []

    def render(state: FacilityState) -> str:
        return json.dumps({"facility": {"id": state.facility, "occupancy": state.occupancy}})

    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        loops.append(asyncio.get_running_loop())
        direct.append(DirectSink.of(websocket, 65536))
        initial = [FacilityState(facility="site-00", revision=1, occupancy=1)]
        await fanout.serve(websocket, "en", render, initial)

    port = free_port()
    app = ServerSend(Starlette(routes=[WebSocketRoute("/live", live)]))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "uvicorn")
        with connect(f"ws://127.0.0.1:{port}/live", open_timeout=10) as socket_:
            assert json.loads(socket_.recv(10))["facility"]["occupancy"] == 1
            assert direct == [None]
            for revision in range(2, 30):
                state = FacilityState(facility="site-00", revision=revision, occupancy=revision)
                loops[0].call_soon_threadsafe(fanout.publish, state)
            seen = []
            while not seen or seen[-1] != 29:
                seen.append(json.loads(socket_.recv(10))["facility"]["occupancy"])
        assert seen == sorted(seen) and len(seen) < 28  # in order, latest wins
        wait_for(lambda: not fanout.clients, 10, "the client to leave")
    finally:
        server.should_exit = True
        thread.join(10)
