"""Footprint of the edge agent: memory, CPU and SD-card writes, and the drain rate.

Phase 1 runs ``ruuhka edge`` as its own process with the four real source
types, each read once a second — a gate counter on GPIO (gpiozero's mock pins,
as there is no GPIO here), a ticketing endpoint over HTTP, two DS18B20s in a
sysfs-like tree and a Modbus TCP counter (pymodbus's own server) — publishing
to a private Mosquitto, for ``--seconds`` (60). It prints the agent's resident
memory, its CPU use as a share of one core, and the bytes it wrote to disk,
extrapolated to a day. Goals: at most 60 MB RSS at its peak and 2 % of one core.

Phase 2 measures how fast the agent drains a backlog after an outage: its
outbox is filled with ``--backlog`` readings while it is stopped, then the
agent starts and the time until the broker has them all is measured; all of them
must arrive.

The process exits 1 when a goal is not met or the backlog did not all arrive.

    python bench/edge_footprint.py [--seconds 60] [--backlog 86400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.outbox import Outbox
from edge.sources.onewire import crc8
from ruuhka.broker import free_port, start_broker
from ruuhka.contract import Stream

DEVICE = "bench-edge"
TICKS = os.sysconf("SC_CLK_TCK")
GOAL_RSS_MB = 60.0
GOAL_CPU_PCT = 2.0


class Tickets(BaseHTTPRequestHandler):
    count = 0

    def do_GET(self) -> None:
        Tickets.count += 1
        body = json.dumps({"inside": Tickets.count % 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def w1_tree(root: Path) -> Path:
    devices = root / "w1" / "devices"
    for sensor, celsius in (("28-0316a2791cff", -4.25), ("28-0416b3a1c4ff", 6.5)):
        raw = round(celsius * 16).to_bytes(2, "little", signed=True) + bytes.fromhex("4b467fff0c10")
        data = raw + bytes([crc8(raw)])
        text = " ".join(f"{b:02x}" for b in data)
        (devices / sensor).mkdir(parents=True)
        (devices / sensor / "w1_slave").write_text(
            f"{text} : crc={data[-1]:02x} YES\n{text} t={round(celsius * 1000)}\n"
        )
    return devices


def modbus_server() -> int:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    port = free_port()
    device = SimDevice(
        id=1, simdata=[SimData(address=0, values=[0, 1200, 0, 1100], datatype=DataType.REGISTERS)]
    )
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever()

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    return port


CONFIG = """\
device_id = "{device}"
state_dir = "{state}"
heartbeat_s = 60

[mqtt]
url = "{broker}"

[[sources]]
type = "gpio_gate"
entries_pin = 17
exits_pin = 27
interval_s = 1

[[sources]]
type = "http_poll"
url = "{http}"
occupancy = "inside"
interval_s = 1

[[sources]]
type = "onewire_rink"
ice = "28-0316a2791cff"
air = "28-0416b3a1c4ff"
devices_dir = "{w1}"
interval_s = 1

[[sources]]
type = "modbus"
host = "127.0.0.1"
port = {modbus}
interval_s = 1
fields.entries = {{ address = 0, type = "uint32" }}
fields.exits = {{ address = 2, type = "uint32" }}
"""


class Counter:
    """Counts the device's readings arriving at the broker."""

    def __init__(self, url_host: str, port: int) -> None:
        self.count = 0
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._message
        self.client.connect(url_host, port)
        self.client.subscribe(f"ruuhka/v1/devices/{DEVICE}/+", qos=0)
        self.client.loop_start()

    def _message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/status"):
            self.count += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def proc_stats(pid: int) -> dict[str, float]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = Path(f"/proc/{pid}/status").read_text()
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {
        "cpu_s": (int(stat[11]) + int(stat[12])) / TICKS,
        "rss_mb": int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024,
        "hwm_mb": int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024,
        "write_bytes": int(io["write_bytes"]),
    }


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONWARNINGS": "ignore"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ruuhka", "edge", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def stop_agent(agent: subprocess.Popen[bytes]) -> None:
    agent.send_signal(signal.SIGTERM)
    agent.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--backlog", type=int, default=86_400)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="edge-footprint-"))
    http = ThreadingHTTPServer(("127.0.0.1", 0), Tickets)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    config = root / "edge.toml"
    log = root / "agent.log"
    with start_broker(root / "broker", prefer="mosquitto") as broker:
        config.write_text(
            CONFIG.format(
                device=DEVICE,
                state=root / "state",
                broker=broker.url,
                http=f"http://127.0.0.1:{http.server_address[1]}/",
                w1=w1_tree(root),
                modbus=modbus_server(),
            )
        )
        counter = Counter(broker.host, broker.port)

        # Phase 1: steady state, four sources at one reading a second each.
        agent = start_agent(config, log)
        warmup = 5.0
        time.sleep(warmup)
        first, received0 = proc_stats(agent.pid), counter.count
        time.sleep(args.seconds)
        last, received = proc_stats(agent.pid), counter.count - received0
        stop_agent(agent)
        text = log.read_text()
        if "Traceback" in text:
            raise SystemExit(f"the agent failed:\n{text[-3000:]}")
        commits = int(re.findall(r"(\d+) outbox commits", text)[-1])
        elapsed = args.seconds
        cpu = (last["cpu_s"] - first["cpu_s"]) / elapsed * 100
        written = last["write_bytes"] - first["write_bytes"]
        day = 86_400 / elapsed

        # Phase 2: a backlog, as after an outage, drained when the agent starts.
        box = Outbox(root / "state" / f"{DEVICE}.outbox.db", DEVICE)
        for start in range(0, args.backlog, 5000):
            box.put_many(
                [
                    (Stream.COUNT, {"counter": "main", "entries": i, "exits": 0})
                    for i in range(start, min(start + 5000, args.backlog))
                ]
            )
        box.close()
        before = counter.count
        began = time.perf_counter()
        agent = start_agent(config, log)
        deadline = time.monotonic() + 600
        first_seen = None
        while counter.count - before < args.backlog and time.monotonic() < deadline:
            if first_seen is None and counter.count > before:
                first_seen = time.perf_counter()
            time.sleep(0.01)
        done = time.perf_counter()
        drained = counter.count - before
        drain_s = done - (first_seen or began)
        startup_s = (first_seen or done) - began
        stop_agent(agent)
        counter.close()
    http.shutdown()

    print(f"edge agent: 4 sources at 1 reading/s each for {elapsed:.0f} s (after {warmup:.0f} s)")
    print(f"  readings at the broker: {received} ({received / elapsed:.2f}/s, heartbeats included)")
    ok_rss = last["hwm_mb"] <= GOAL_RSS_MB
    ok_cpu = cpu <= GOAL_CPU_PCT
    print(
        f"  RSS:  {last['rss_mb']:.1f} MB (peak {last['hwm_mb']:.1f} MB)   "
        f"goal: peak <= {GOAL_RSS_MB:.0f} MB: {'met' if ok_rss else 'NOT met'}"
    )
    print(
        f"  CPU:  {cpu:.2f} % of one core                 "
        f"goal <= {GOAL_CPU_PCT:.0f} %: {'met' if ok_cpu else 'NOT met'}"
    )
    print(
        f"  disk: {written / elapsed / 1024:.1f} KiB/s written, {commits} outbox commits "
        f"in {elapsed + warmup:.0f} s => {written * day / 1e6:.0f} MB/day, "
        f"{commits / (elapsed + warmup) * 86_400:.0f} synced commits/day"
    )
    print(
        f"drain after an outage: {drained} of {args.backlog} readings in {drain_s:.1f} s "
        f"= {drained / drain_s:.0f} readings/s (edge to broker, PUBACKed; "
        f"the agent's start took {startup_s:.1f} s more)"
        + ("" if drained >= args.backlog else f"; {args.backlog - drained} did NOT arrive")
    )
    return 0 if ok_rss and ok_cpu and drained >= args.backlog else 1


if __name__ == "__main__":
    sys.exit(main())
