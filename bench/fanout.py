"""Fan-out to 1,000 WebSocket clients: the hub against a bare broadcast loop, same run.

One Mosquitto; a publisher puts ``--rate`` facility states a second on the
retained state topics (as an owner replica does), each stamped with the wall
time of publishing in ``updated_at``. Two servers take turns serving the same
fleet of ``--clients`` connections (bench/wsfleet.py, several processes):

1. baseline: a bare ``websockets`` server that subscribes to the same topics and
   ``broadcast()``s each state, rendered once into the hub's own message shape,
   to every connection: no pacing, no coalescing, no per-client bookkeeping.
2. hub: ``ruuhka hub`` with its defaults for ``[live]``, 100 facilities.

A delivery is one message received by one client; deliveries/s counts the
messages published in the measured window that arrived within ``--grace`` s after
it, divided by the window. Latency is receipt minus ``updated_at`` (publish at
the broker to receipt at the client). The hub's RSS is sampled every second
while the fleet is connected (benchmark 2: memory with 1,000 clients and 100
facilities). Rounds alternate baseline/hub, since the machine is shared.

Goals (exit status 0): hub/baseline deliveries >= 0.7, hub p99 <= 100 ms, hub
RSS <= 200 MB.

Usage:
    .venv/bin/python bench/fanout.py [--clients 1000] [--facilities 100] [--rate 100]
        [--seconds 20] [--processes 4] [--rounds 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hubrun import HubProcess, stop_child, write_hub_config  # bench/, next to this file
from paho.mqtt.enums import CallbackAPIVersion
from wsfleet import Fleet, raise_fd_limit

from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import FacilityState, encode, facility_state_topic

GOAL_RATIO = 0.7
GOAL_P99_MS = 100.0
GOAL_RSS_MB = 200.0
START_TIMEOUT_S = 60.0
STATE_TOPICS = "ruuhka/v1/facilities/+/state"

FACILITY = """
[[facilities]]
id = "{id}"
kind = "swimming_hall"
capacity = 300
name = {{ fi = "Uimahalli {n}", sv = "Simhallen {n}", en = "Swimming hall {n}" }}
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def facility_ids(count: int) -> list[str]:
    return [f"hall-{n:03d}" for n in range(count)]


def write_config(path: Path, broker: Broker, port: int, facilities: int, tag: str) -> None:
    halls = "".join(FACILITY.format(id=f, n=n) for n, f in enumerate(facility_ids(facilities)))
    write_hub_config(path, broker.url, path.parent / f"{tag}.db", port, f"bench-{tag}", halls)


# The baseline server (a child process) ------------------------------------------


def baseline_main(argv: list[str]) -> int:
    """Bare websockets broadcast of each state from the broker to every connection."""
    from websockets.asyncio.server import broadcast, serve

    from hub.config import HubSettings
    from hub.facilities import present
    from ruuhka.settings import load_settings

    parser = argparse.ArgumentParser(prog="fanout.py _baseline")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(HubSettings, args.config)
    facilities = {f.id: f for f in settings.facilities}
    raise_fd_limit(20000)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        connections: set[Any] = set()

        async def handler(websocket: Any) -> None:
            connections.add(websocket)
            try:
                await websocket.wait_closed()
            finally:
                connections.discard(websocket)

        def send(payload: bytes) -> None:
            state = FacilityState.model_validate_json(payload)
            facility = facilities.get(state.facility)
            if facility is not None:
                out = present(facility, state, "en")
                broadcast(connections, '{"facility":' + out.model_dump_json() + "}")

        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_connect = lambda c, *_: c.subscribe(STATE_TOPICS, qos=1)
        client.on_message = lambda c, u, msg: loop.call_soon_threadsafe(send, msg.payload)
        client.connect(settings.mqtt.host, settings.mqtt.port)
        client.loop_start()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with serve(handler, "127.0.0.1", args.port, compression=None, max_queue=None):
            await stop
        client.loop_stop()

    asyncio.run(run())
    return 0


# Servers under test ---------------------------------------------------------------


@dataclass
class Server:
    """The hub or the baseline server in a child process, serving WebSockets."""

    kind: str
    process: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls, kind: str, config: Path, port: int, workdir: Path) -> Server:
        if kind == "hub":
            hub = HubProcess(config, port, workdir / "hub.log")
            hub.wait_connected(START_TIMEOUT_S)
            return cls(kind, hub.process, port)
        command = [
            sys.executable, str(Path(__file__).resolve()), "_baseline",
            "--config", str(config), "--port", str(port),
        ]  # fmt: skip
        with (workdir / f"{kind}.log").open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start; see {workdir / (kind + '.log')}")
            time.sleep(0.2)
        return cls(kind, process, port)

    @property
    def url(self) -> str:
        path = "/api/v1/live?lang=en" if self.kind == "hub" else "/"
        return f"ws://127.0.0.1:{self.port}{path}"

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_child(self.process, signal.SIGINT if self.kind == "hub" else signal.SIGTERM)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The publisher --------------------------------------------------------------------


class Publisher:
    """States at a steady rate, round-robin over the facilities, newest revision each."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def run(self, facilities: list[str], rate: float, seconds: float) -> tuple[float, float, int]:
        """Publish for ``seconds``; returns (start, end, published), wall clock."""
        start = time.time()
        sent = 0
        while True:
            due = start + sent / rate
            now = time.time()
            if due >= start + seconds:
                break
            if due > now:
                time.sleep(due - now)
            facility = facilities[sent % len(facilities)]
            state = FacilityState(
                facility=facility,
                revision=time.time_ns() // 1000,  # grows across rounds and restarts
                occupancy=sent % 300,
                updated_at=datetime.now(UTC),
            )
            self.client.publish(facility_state_topic(facility), encode(state), qos=1, retain=True)
            sent += 1
        return start, time.time(), sent

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# One round ------------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    published: int
    seconds: float
    clients: int
    delivered: int
    p50_ms: float
    p99_ms: float
    cpu_s: float
    fleet_cpu_s: float
    rss_idle_mb: float
    rss_peak_mb: float

    @property
    def per_s(self) -> float:
        return self.delivered / self.seconds

    @property
    def offered(self) -> int:
        return self.published * self.clients


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_round(kind: str, args: argparse.Namespace, broker: Broker, workdir: Path) -> Result:
    port = free_port()
    config = workdir / f"{kind}.toml"
    write_config(config, broker, port, args.facilities, kind)
    server = Server.start(kind, config, port, workdir)
    fleet = None
    publisher = Publisher(broker)
    try:
        log(f"{kind}: connecting {args.clients} clients")
        fleet = Fleet(server.url, args.clients, args.processes, workdir)
        rss_idle = server.rss_mb()
        peak = [rss_idle]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(1.0):
                peak.append(server.rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        log(f"{kind}: {args.rate}/s for {args.seconds} s")
        cpu0 = server.cpu_s()
        fleet_cpu0 = sum(cpu_seconds(child.pid) for child in fleet.children)
        start, end, published = publisher.run(
            facility_ids(args.facilities), args.rate, args.seconds
        )
        time.sleep(args.grace)  # what is still on its way arrives, or counts as not delivered
        cpu = server.cpu_s() - cpu0
        fleet_cpu = sum(cpu_seconds(child.pid) for child in fleet.children) - fleet_cpu0
        sampling.set()
        latencies = fleet.latencies(start, end)
        peak.append(server.rss_mb())
        return Result(
            kind=kind,
            published=published,
            seconds=end - start,
            clients=args.clients,
            delivered=len(latencies),
            p50_ms=percentile(latencies, 0.5) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            cpu_s=cpu,
            fleet_cpu_s=fleet_cpu,
            rss_idle_mb=rss_idle,
            rss_peak_mb=max(peak),
        )
    finally:
        publisher.stop()
        if fleet is not None:
            fleet.close()
        server.stop()


def report(results: list[Result], facilities: int) -> bool:
    print(
        f"{'server':<9} {'clients':>7} {'offered/s':>10} {'delivered/s':>12} {'share':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'CPU s':>6} {'fleet':>6} {'RSS MB':>7} {'peak':>6}"
    )
    for r in results:
        print(
            f"{r.kind:<9} {r.clients:>7} {r.offered / r.seconds:>10.0f} {r.per_s:>12.0f} "
            f"{r.delivered / max(r.offered, 1):>6.1%} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f} "
            f"{r.cpu_s:>6.1f} {r.fleet_cpu_s:>6.1f} {r.rss_idle_mb:>7.1f} {r.rss_peak_mb:>6.1f}"
        )
    hub = [r for r in results if r.kind == "hub"]
    base = [r for r in results if r.kind == "baseline"]
    ratio = statistics.median(r.per_s for r in hub) / statistics.median(r.per_s for r in base)
    p99 = statistics.median(r.p99_ms for r in hub)
    rss = max(r.rss_peak_mb for r in hub)
    ok = ratio >= GOAL_RATIO and p99 <= GOAL_P99_MS and rss <= GOAL_RSS_MB
    print(
        f"\nhub/baseline deliveries/s (medians): {ratio:.2f} (goal >= {GOAL_RATIO}); "
        f"hub p99 {p99:.0f} ms (goal <= {GOAL_P99_MS:.0f}); "
        f"hub RSS peak {rss:.0f} MB with {hub[0].clients} clients and {facilities} "
        f"facilities (goal <= {GOAL_RSS_MB:.0f}): {'met' if ok else 'NOT met'}"
    )
    return ok


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_baseline":
        return baseline_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--facilities", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="state changes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=4, help="fleet processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    raise_fd_limit(args.clients + 1024)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ruuhka-fanout-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {workdir}")
    results = []
    with start_broker(workdir / "broker", prefer="mosquitto") as broker:
        for _ in range(args.rounds):
            for kind in ("baseline", "hub"):
                results.append(one_round(kind, args, broker, workdir))
                r = results[-1]
                log(f"{kind}: {r.per_s:.0f} deliveries/s, p99 {r.p99_ms:.0f} ms")
    return 0 if report(results, args.facilities) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
