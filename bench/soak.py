"""Soak: one hub under 200 readings/s and 500 live clients for N minutes.

A publisher thread sends ``--rate`` gate-counter readings a second (QoS 1,
round-robin over one device per facility, random movements, occupancy never
negative); a fleet of ``--clients`` WebSocket clients (bench/wsfleet.py) keeps
the newest message per facility. Every ``--every`` seconds the hub's RSS, CPU,
stored readings, clients and drops are printed. RSS growth is measured from the
first sample after the warm-up (a fifth of the run, at least a minute when the
run is long enough) to the end of publishing.

At the end, publishing stops; once the store holds every reading, every client's
last message for every facility must equal the store's derived state (occupancy
and updated_at); mismatches are counted.

Goal (exit status 0): RSS growth <= 10 %, zero mismatches.

Usage:
    .venv/bin/python bench/soak.py --minutes 10 [--rate 200] [--clients 500]
        [--facilities 50] [--processes 2] [--every 15] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from fanout import Server, cpu_seconds  # bench/, next to this file
from hubrun import write_hub_config
from paho.mqtt.enums import CallbackAPIVersion
from wsfleet import Fleet, raise_fd_limit

from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import Stream, device_topic

GOAL_GROWTH = 0.10

FACILITY = """
[[facilities]]
id = "site-{n:03d}"
kind = "swimming_hall"
capacity = 500
name = {{ fi = "Kohde {n}", sv = "Plats {n}", en = "Site {n}" }}
[[facilities.sources]]
device = "gate-{n:03d}"
counter = "main"
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Readings:
    """Gate counters that move at random but never let occupancy go below zero."""

    def __init__(self, broker: Broker, devices: int, seed: int = 9) -> None:
        self.random = random.Random(seed)
        self.devices = [f"gate-{n:03d}" for n in range(devices)]
        self.counters = {d: [0, 0] for d in self.devices}
        self.seqs = dict.fromkeys(self.devices, 0)
        self.published = 0
        self.stop = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def run(self, rate: float) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            due = start + self.published / rate
            wait = due - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                break
            device = self.devices[self.published % len(self.devices)]
            counts = self.counters[device]
            counts[0] += self.random.randint(0, 3)
            counts[1] = min(counts[0], counts[1] + self.random.randint(0, 3))
            self.seqs[device] += 1
            body = {
                "seq": self.seqs[device],
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "counter": "main",
                "entries": counts[0],
                "exits": counts[1],
            }
            self.client.publish(device_topic(device, Stream.COUNT), json.dumps(body), qos=1)
            self.published += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def stored(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


def store_states(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute("SELECT facility, state FROM facility_state").fetchall()
    return {facility: json.loads(state) for facility, state in rows}


def mismatches(views: list[dict[str, Any]], states: dict[str, dict[str, Any]]) -> int:
    """Client x facility pairs where the client's last message differs from the store."""
    wrong = 0
    for view in views:
        for facility, state in states.items():
            shown = view.get(facility, {}).get("facility", {})
            same_time = shown.get("updated_at") is not None and datetime.fromisoformat(
                shown["updated_at"]
            ) == datetime.fromisoformat(state["updated_at"])
            wrong += not (shown.get("occupancy") == state.get("occupancy") and same_time)
    return wrong


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--rate", type=float, default=200.0, help="readings per second")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--facilities", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="fleet processes")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    raise_fd_limit(args.clients + 1024)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ruuhka-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {workdir}")
    seconds = args.minutes * 60
    warmup = min(max(60.0, seconds / 5), seconds / 2)
    db = workdir / "soak.db"

    with start_broker(workdir / "broker", prefer="mosquitto") as broker:
        port = free_port()
        config = workdir / "hub.toml"
        sites = "".join(FACILITY.format(n=n) for n in range(args.facilities))
        write_hub_config(config, broker.url, db, port, "soak-hub", sites)
        hub = Server.start("hub", config, port, workdir)
        readings = Readings(broker, args.facilities)
        fleet = None
        try:
            log(f"connecting {args.clients} clients")
            fleet = Fleet(hub.url, args.clients, args.processes, workdir)
            publisher = threading.Thread(target=readings.run, args=(args.rate,), daemon=True)
            start = time.monotonic()
            cpu0 = hub.cpu_s()
            publisher.start()
            print(
                f"{'t s':>6} {'RSS MB':>7} {'CPU %':>6} {'stored':>8} {'clients':>7} {'drops':>5}"
            )
            base_rss = None
            last_t, last_cpu = start, cpu0
            while (now := time.monotonic()) - start < seconds:
                time.sleep(min(args.every, max(0.0, start + seconds - now)))
                now, cpu = time.monotonic(), cpu_seconds(hub.process.pid)
                rss = hub.rss_mb()
                if base_rss is None and now - start >= warmup:
                    base_rss = rss
                busy = 100 * (cpu - last_cpu) / (now - last_t)
                print(
                    f"{now - start:>6.0f} {rss:>7.1f} {busy:>6.0f} "
                    f"{stored(db):>8} {metric(port, 'ruuhka_live_clients'):>7.0f} "
                    f"{metric(port, 'ruuhka_live_clients_dropped_total'):>5.0f}",
                    flush=True,
                )
                last_t, last_cpu = now, cpu
            readings.stop.set()
            publisher.join(10)
            end_rss = hub.rss_mb()
            base_rss = base_rss or end_rss
            log(f"published {readings.published}; waiting for the store")
            deadline = time.monotonic() + 180
            while stored(db) < readings.published and time.monotonic() < deadline:
                time.sleep(0.5)
            total = stored(db)
            deadline = time.monotonic() + 60
            wrong = mismatches(fleet.latest(), store_states(db))
            while wrong and time.monotonic() < deadline:
                time.sleep(1)
                wrong = mismatches(fleet.latest(), store_states(db))
            dropped = metric(port, "ruuhka_live_clients_dropped_total")
        finally:
            readings.stop.set()
            readings.close()
            if fleet is not None:
                fleet.close()
            hub.stop()

    growth = (end_rss - base_rss) / base_rss
    pairs = args.clients * args.facilities
    ok = growth <= GOAL_GROWTH and wrong == 0 and total == readings.published
    print(
        f"\n{args.minutes:g} min, {readings.published} readings published, {total} stored; "
        f"RSS {base_rss:.1f} MB after warm-up -> {end_rss:.1f} MB at the end: {growth:+.1%} "
        f"(goal <= {GOAL_GROWTH:.0%}); {wrong} of {pairs} client x facility views differ "
        f"from the store (goal 0); {dropped:.0f} clients dropped: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
