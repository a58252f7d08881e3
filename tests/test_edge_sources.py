"""The edge agent's real sources, each against the real thing or its own test double:
gpiozero's mock pins, an HTTP server, a sysfs-like tree, pymodbus's own server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from edge.config import EdgeSettings
from edge.sources import SourceError
from edge.sources.gpio import GpioGate, GpioGateConfig
from edge.sources.http_poll import HttpPoll, HttpPollConfig
from edge.sources.modbus import ModbusConfig, ModbusSource
from edge.sources.onewire import OneWireRink, OneWireRinkConfig, crc8, parse_w1_slave
from ruuhka.broker import free_port
from ruuhka.contract import Stream, parse_payload
from tests.conftest import wait_for

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# GPIO ----------------------------------------------------------------------


PIN_CLOCK = [0.0]  # the mock pins' clock (their edges' timestamps), moved by the tests


@pytest.fixture
def mock_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """gpiozero's mock pins on a clock of the test's own, so that how long a bounce
    or a hold lasts does not depend on how busy the machine is."""
    import gpiozero.pins.mock
    from gpiozero.pins.mock import MockFactory

    monkeypatch.setattr(gpiozero.pins.mock, "monotonic", lambda: PIN_CLOCK[0])
    factory = MockFactory()
    yield factory
    factory.close()


def person(pin: object, bounces: int, hold_s: float = 0.03, bounce_s: float = 0.0005) -> None:
    """One person through a light barrier wired to ground: the contact bounces
    (each edge ``bounce_s`` after the last) on the way in and on the way out."""

    def edge(level: str) -> None:
        PIN_CLOCK[0] += bounce_s
        getattr(pin, f"drive_{level}")()

    for _ in range(bounces):
        edge("low")
        edge("high")
    edge("low")
    PIN_CLOCK[0] += hold_s
    for _ in range(bounces):
        edge("high")
        edge("low")
    edge("high")
    PIN_CLOCK[0] += hold_s


def test_gpio_gate_counts_debounced_pulses_on_two_pins(mock_factory: object) -> None:
    config = GpioGateConfig(entries_pin=17, exits_pin=27, debounce_ms=20)
    gate = GpioGate(config, pin_factory=mock_factory)
    try:
        entries, exits = mock_factory.pin(17), mock_factory.pin(27)
        assert gate.read(NOW) == [(Stream.COUNT, {"counter": "main", "entries": 0, "exits": 0})]
        for _ in range(3):
            person(entries, bounces=3)
        person(exits, bounces=2)
        assert gate.read(NOW) == [(Stream.COUNT, {"counter": "main", "entries": 3, "exits": 1})]
        assert gate.describe() == "pins GPIO17, GPIO27"
    finally:
        gate.close()


def test_gpio_gate_without_debounce_would_count_the_bounces(mock_factory: object) -> None:
    gate = GpioGate(GpioGateConfig(entries_pin=17, debounce_ms=0), pin_factory=mock_factory)
    try:
        person(mock_factory.pin(17), bounces=3)
        assert gate.read(NOW)[0][1]["entries"] == 7  # 4 on the way in, 3 on the way out
    finally:
        gate.close()


def test_gpio_gate_active_high_and_busy_pins(mock_factory: object) -> None:
    gate = GpioGate(GpioGateConfig(entries_pin=5, pull_up=False), pin_factory=mock_factory)
    try:
        pin = mock_factory.pin(5)
        pin.drive_high()
        pin.drive_low()
        assert gate.read(NOW)[0][1] == {"counter": "main", "entries": 1, "exits": 0}
        with pytest.raises(SourceError, match="cannot open the GPIO pins"):
            GpioGate(GpioGateConfig(entries_pin=5), pin_factory=mock_factory)
    finally:
        gate.close()


# HTTP ----------------------------------------------------------------------


class Endpoint(BaseHTTPRequestHandler):
    """A ticketing system's export, with every way it can go wrong."""

    requests: ClassVar[list[tuple[float, str]]] = []
    failing: ClassVar[bool] = False

    def do_GET(self) -> None:
        Endpoint.requests.append((time.monotonic(), self.path))
        if self.path == "/slow":
            time.sleep(1.5)
        if self.path == "/flaky" and Endpoint.failing:
            self._send(503, "text/plain", b"down for maintenance")
            return
        bodies = {
            "/status.json": json.dumps({"facilities": [{"visitors": {"inside": 42}}]}),
            "/flaky": json.dumps({"in": 7, "out": 2}),
            "/counts.json": json.dumps({"in": "1 204", "out": 1190.0}),
            "/negative.json": json.dumps({"in": -3, "out": 0}),
            "/fraction.json": json.dumps({"in": 2.5, "out": 0}),
            "/broken.json": "{not json",
            "/today.csv": "\ufeffAika;Sisään;Ulos\n08:00;10;2\n09:00;25;7\n",
        }
        body = bodies.get(self.path)
        if body is None:
            self._send(404, "text/plain", b"no such export")
            return
        kind = "text/csv" if self.path.endswith(".csv") else "application/json"
        self._send(200, kind + "; charset=utf-8", body.encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    Endpoint.requests = []
    Endpoint.failing = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def poll(url: str, **mapping: object) -> HttpPoll:
    return HttpPoll(HttpPollConfig(url=url, **mapping))


def test_http_poll_maps_json_and_csv_fields(web: str) -> None:
    source = poll(web + "/status.json", occupancy="facilities.0.visitors.inside")
    assert source.read(NOW) == [(Stream.COUNT, {"counter": "tickets", "occupancy": 42})]
    source = poll(web + "/counts.json", counter="gate", entries="in", exits="out")
    assert source.read(NOW)[0][1] == {"counter": "gate", "entries": 1204, "exits": 1190}
    source = poll(
        web + "/today.csv", format="csv", entries="Sisään", exits="Ulos", csv_delimiter=";"
    )
    assert source.read(NOW)[0][1] == {"counter": "tickets", "entries": 25, "exits": 7}
    first = poll(web + "/today.csv", format="csv", occupancy="Sisään", csv_delimiter=";", csv_row=0)
    assert first.read(NOW)[0][1]["occupancy"] == 10
    assert Endpoint.requests[0][1] == "/status.json"


@pytest.mark.parametrize(
    ("path", "mapping", "problem"),
    [
        ("/nowhere.json", {"occupancy": "x"}, "HTTP 404"),
        ("/broken.json", {"occupancy": "x"}, "not JSON"),
        ("/status.json", {"occupancy": "facilities.3.visitors"}, "no item 3"),
        ("/status.json", {"occupancy": "visitors"}, "no 'visitors'"),
        ("/status.json", {"occupancy": "facilities.0.visitors"}, "expected a number"),
        ("/negative.json", {"entries": "in", "exits": "out"}, "negative count"),
        ("/fraction.json", {"entries": "in", "exits": "out"}, "not a whole number"),
        ("/today.csv", {"occupancy": "Paikalla", "format": "csv", "csv_delimiter": ";"}, "column"),
        ("/slow", {"occupancy": "x", "timeout_s": 0.3}, "timed out"),
    ],
)
def test_http_poll_failures_are_clear(web: str, path: str, mapping: dict, problem: str) -> None:
    with pytest.raises(SourceError, match=problem):
        poll(web + path, **mapping).read(NOW)


def test_http_poll_config_needs_one_complete_mapping() -> None:
    with pytest.raises(ValidationError, match="not both"):
        HttpPollConfig(url="http://x/", occupancy="a", entries="b", exits="c")
    with pytest.raises(ValidationError, match="both entries and exits"):
        HttpPollConfig(url="http://x/", entries="b")
    with pytest.raises(ValidationError, match="http"):
        HttpPollConfig(url="ftp://x/", occupancy="a")


def test_a_failing_source_is_retried_with_growing_backoff(tmp_path: Path, web: str) -> None:
    """Through the agent: a ticketing endpoint that is down is polled less and
    less often, and the readings resume when it is back."""
    from edge.agent import Agent

    Endpoint.failing = True
    settings = EdgeSettings(
        device_id="backoff-test",
        state_dir=tmp_path,
        heartbeat_s=3600,
        clock_check="floor",
        mqtt={"url": f"mqtt://127.0.0.1:{free_port()}"},  # nobody there: the outbox keeps all
        sources=[
            {
                "type": "http_poll",
                "url": web + "/flaky",
                "entries": "in",
                "exits": "out",
                "interval_s": 0.05,
                "max_backoff_s": 0.8,
            }
        ],
    )
    agent = Agent(settings)
    Endpoint.requests.clear()
    thread = threading.Thread(target=agent.run)
    started = time.monotonic()
    thread.start()

    def failed() -> list[float]:
        return [t for t, path in list(Endpoint.requests) if path == "/flaky"]

    def counts() -> int:
        """Count readings in the outbox (the agent's heartbeats go there too)."""
        return sum(p.topic.endswith("/count") for p in agent.outbox.after(-1, 10_000))

    try:
        # Twelve attempts: at most 7.6 s of delays capped at 0.8 s, at least 51 s uncapped.
        wait_for(lambda: len(failed()) >= 12, 40, "twelve attempts at the failing endpoint")
        assert counts() == 0
        # Each delay is at least half its nominal value 0.05, 0.1, ... 0.8 (equal jitter),
        # so attempt k cannot come before the halves of the k - 1 delays have passed
        # since the agent started. (Between two attempts the server cannot tell: the
        # agent counts a delay from when it sent the request, the server sees it arrive.)
        nominal = [min(0.8, 0.05 * 2**k) for k in range(11)]
        since = [t - started for t in failed()[:12]]
        earliest = [sum(n / 2 for n in nominal[:k]) for k in range(12)]
        assert all(s >= e for s, e in zip(since, earliest, strict=True)), (since, earliest)
        Endpoint.failing = False
        wait_for(lambda: counts() > 0, 30, "a reading after the endpoint is back")
    finally:
        agent.stop()
        thread.join(15)


# 1-wire --------------------------------------------------------------------

# A DS18B20's scratchpad as the kernel prints it; the CRC byte (0x57) is the
# sensor's own, not computed here.
GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
POWER_ON = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
BAD_CRC = "72 01 4b 46 7f ff 0e 10 58 : crc=58 NO\n72 01 4b 46 7f ff 0e 10 58 t=23125\n"
ZEROS = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"


def scratchpad(celsius: float) -> str:
    raw = round(celsius * 16).to_bytes(2, "little", signed=True) + bytes.fromhex("4b467fff0c10")
    data = raw + bytes([crc8(raw)])
    text = " ".join(f"{b:02x}" for b in data)
    return f"{text} : crc={data[-1]:02x} YES\n{text} t={round(celsius * 1000)}\n"


def test_w1_slave_parsing_checks_crc_and_rejects_non_readings() -> None:
    assert crc8(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert parse_w1_slave(GOOD) == 23.125
    assert parse_w1_slave(scratchpad(-5.5)) == -5.5
    for text, problem in (
        (POWER_ON, "power-on"),
        (BAD_CRC, "CRC"),
        (GOOD.replace("YES", "NO"), "CRC"),
        (GOOD.replace("72 01 4b", "73 01 4b", 1), "CRC"),  # a flipped bit on the wire
        (ZEROS, "all-zero"),
        (GOOD.splitlines()[0], "two lines"),
        ("garbage\nmore garbage", "unreadable"),
    ):
        with pytest.raises(SourceError, match=problem):
            parse_w1_slave(text)


@pytest.fixture
def w1(tmp_path: Path) -> Path:
    """A directory laid out like /sys/bus/w1/devices."""
    devices = tmp_path / "sys" / "bus" / "w1" / "devices"
    for sensor_id, text in (
        ("28-0316a2791cff", scratchpad(-4.25)),
        ("28-0416b3a1c4ff", scratchpad(6.5)),
        ("28-000000000085", POWER_ON),
        ("28-0000000000cc", BAD_CRC),
        ("28-0000000000ee", scratchpad(45.0)),
    ):
        (devices / sensor_id).mkdir(parents=True)
        (devices / sensor_id / "w1_slave").write_text(text)
    (devices / "w1_bus_master1").mkdir()
    return devices


def rink(w1: Path, ice: str, air: str | None = None) -> OneWireRink:
    return OneWireRink(OneWireRinkConfig(ice=ice, air=air, devices_dir=w1))


def test_onewire_rink_reads_ice_and_air(w1: Path) -> None:
    readings = rink(w1, "28-0316a2791cff", "28-0416b3a1c4ff").read(NOW)
    assert readings == [(Stream.RINK, {"sensor": "ice", "ice_temp_c": -4.25, "air_temp_c": 6.5})]
    body = json.dumps({"seq": 1, "ts": "2026-11-23T12:00:00Z", **readings[0][1]})
    assert parse_payload(Stream.RINK, body.encode()).ice_temp_c == -4.25


def test_onewire_rink_bad_sensors(w1: Path) -> None:
    # A bad air sensor is left out of the reading; a bad ice sensor fails it.
    fields = rink(w1, "28-0316a2791cff", "28-000000000085").read(NOW)[0][1]
    assert fields == {"sensor": "ice", "ice_temp_c": -4.25}
    with pytest.raises(SourceError, match="power-on"):
        rink(w1, "28-000000000085").read(NOW)
    with pytest.raises(SourceError, match="CRC"):
        rink(w1, "28-0000000000cc").read(NOW)
    with pytest.raises(SourceError, match="no such sensor"):
        rink(w1, "28-0000000000aa").read(NOW)
    with pytest.raises(SourceError, match="no ice temperature"):
        rink(w1, "28-0000000000ee").read(NOW)


# Modbus --------------------------------------------------------------------


class ModbusServer:
    """pymodbus's own TCP server on loopback, in a thread with its own event loop."""

    def __init__(self, registers: list[int]) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.port = free_port()
        device = SimDevice(
            id=3, simdata=[SimData(address=0, values=registers, datatype=DataType.REGISTERS)]
        )
        self.loop = asyncio.new_event_loop()
        created = threading.Event()

        async def serve() -> None:
            self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            created.set()
            await self.server.serve_forever()

        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(serve(),), daemon=True
        )
        self.thread.start()
        assert created.wait(10)
        wait_listening(self.port)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(10)


@pytest.fixture
def modbus() -> Iterator[ModbusServer]:
    # A people counter: 32-bit entries at 0-1, exits at 2-3 (high word first);
    # a rink controller: tenths of a degree, signed, at 10 and 11.
    registers = [0] * 16
    registers[0:4] = [0x0001, 0x86A0, 0x0001, 0x869B]  # 100000, 99995
    registers[10] = 0x10000 - 42  # -4.2 °C
    registers[11] = 35  # 3.5 °C
    server = ModbusServer(registers)
    yield server
    server.stop()


def modbus_source(server: ModbusServer, **config: object) -> ModbusSource:
    return ModbusSource(
        ModbusConfig(host="127.0.0.1", port=server.port, unit=3, timeout_s=2, **config)
    )


def wait_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the Modbus server did not start")


def test_modbus_counter_and_rink_registers(modbus: ModbusServer) -> None:
    wait_listening(modbus.port)
    counter = modbus_source(
        modbus,
        fields={
            "entries": {"address": 0, "type": "uint32"},
            "exits": {"address": 2, "type": "uint32"},
        },
    )
    try:
        assert counter.read(NOW) == [
            (Stream.COUNT, {"counter": "main", "entries": 100000, "exits": 99995})
        ]
    finally:
        counter.close()
    sensor = modbus_source(
        modbus,
        stream="rink",
        name="ice",
        fields={
            "ice_temp_c": {"address": 10, "kind": "input", "type": "int16", "scale": 0.1},
            "air_temp_c": {"address": 11, "type": "int16", "scale": 0.1},
        },
    )
    try:
        assert sensor.read(NOW) == [
            (Stream.RINK, {"sensor": "ice", "ice_temp_c": -4.2, "air_temp_c": 3.5})
        ]
    finally:
        sensor.close()
    little = modbus_source(
        modbus, word_order="little", fields={"occupancy": {"address": 2, "type": "uint32"}}
    )
    try:
        # Low word first: 0x869B0001, far more than anyone inside; still a count.
        assert little.read(NOW)[0][1]["occupancy"] == 0x869B0001
    finally:
        little.close()


def test_modbus_failures_are_source_errors(modbus: ModbusServer) -> None:
    wait_listening(modbus.port)
    wrong_unit = ModbusSource(
        ModbusConfig(
            host="127.0.0.1", port=modbus.port, unit=9, fields={"occupancy": {"address": 0}}
        )
    )
    try:
        with pytest.raises(SourceError, match="device answered"):
            wrong_unit.read(NOW)
    finally:
        wrong_unit.close()
    out_of_range = modbus_source(modbus, fields={"occupancy": {"address": 500}})
    try:
        with pytest.raises(SourceError, match="device answered"):
            out_of_range.read(NOW)
    finally:
        out_of_range.close()
    gone = ModbusSource(
        ModbusConfig(host="127.0.0.1", port=free_port(), fields={"occupancy": {"address": 0}})
    )
    with pytest.raises(SourceError, match="cannot connect"):
        gone.read(NOW)
    with pytest.raises(ValidationError, match="entries and exits"):
        ModbusConfig(host="x", fields={"entries": {"address": 0}})
    with pytest.raises(ValidationError, match="needs ice_temp_c"):
        ModbusConfig(host="x", stream="rink", fields={"air_temp_c": {"address": 0}})


# --check ------------------------------------------------------------------


def test_check_probes_every_source_once_and_prints_what_it_read(
    tmp_path: Path, web: str, w1: Path, modbus: ModbusServer
) -> None:
    from ruuhka.broker import start_broker

    wait_listening(modbus.port)
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""\
device_id = "check-test"
state_dir = "{tmp_path / "state"}"
clock_check = "floor"

[mqtt]
url = "{{broker}}"

[[sources]]
type = "gpio_gate"
entries_pin = 17
exits_pin = 27

[[sources]]
type = "http_poll"
url = "{web}/status.json"
occupancy = "facilities.0.visitors.inside"

[[sources]]
type = "onewire_rink"
ice = "28-0316a2791cff"
air = "28-0416b3a1c4ff"
devices_dir = "{w1}"

[[sources]]
type = "modbus"
host = "127.0.0.1"
port = {modbus.port}
unit = 3
fields.entries = {{ address = 0, type = "uint32" }}
fields.exits = {{ address = 2, type = "uint32" }}

[[sources]]
type = "onewire_rink"
ice = "28-000000000085"
devices_dir = "{w1}"
"""
    )
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    with start_broker(tmp_path / "broker", prefer="mosquitto") as broker:
        config.write_text(config.read_text().replace("{broker}", broker.url))
        result = subprocess.run(
            [sys.executable, "-m", "ruuhka", "edge", "--config", str(config), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "device check-test, 5 sources" in out
    assert f"ok    broker: connected to {broker.url}" in out
    assert "ok    sources[0] gpio_gate: count counter=main entries=0 exits=0" in out
    assert "ok    sources[1] http_poll: count counter=tickets occupancy=42" in out
    assert "ok    sources[2] onewire_rink: rink sensor=ice ice_temp_c=-4.25 air_temp_c=6.5" in out
    assert "ok    sources[3] modbus: count counter=main entries=100000 exits=99995" in out
    assert "FAIL  sources[4] onewire_rink: 28-000000000085: 85.0 °C power-on value" in out
    assert "1 check(s) failed" in out
    # --check writes no reading and uses no seq.
    assert not (tmp_path / "state" / "check-test.outbox.db").exists()
