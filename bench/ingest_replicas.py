"""Ingest with one hub and with replicas on a shared subscription: readings/s each.

The same workload as bench/ingest.py (its publisher process: ``--readings``
``count`` readings over ``--devices`` devices, QoS 1, as fast as the broker
takes them; one facility per device) goes, on one Mosquitto, through:

1. ``single``: one hub, no sharing (what a town runs);
2. ``1 replica``: one hub in replica mode (shared subscription + owner session),
   to show what the second session costs;
3. ``2 replicas``: two hubs on ``$share/...``, sharing one store.

Stored readings/s counts rows in the shared store from the first to the last one
seen; "state" is the time until every facility's derived occupancy in the store
equals the workload's, as readings/s. Every run checks that each reading was
stored exactly once and that the derived states are right. On a shared 2-core
machine the replicas compete with each other and with the publisher for the same
cores, so this shows correctness and overhead, not the gain on separate machines.

Usage:
    .venv/bin/python bench/ingest_replicas.py [--readings 20000] [--devices 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hubrun import HubProcess, device_facilities, write_hub_config  # bench/, next to this file
from ingest import Publisher, device_ids, expected_occupancy
from paho.mqtt.enums import CallbackAPIVersion

from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import Stream, device_topic


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Setup:
    label: str
    replicas: int
    shared: bool


SETUPS = [Setup("single", 1, False), Setup("1 replica", 1, True), Setup("2 replicas", 2, True)]


def write_configs(
    setup: Setup, broker: Broker, db: Path, devices: list[str], workdir: Path, prefix: str
) -> list[tuple[Path, int]]:
    names = [f"r{n}" for n in range(setup.replicas)]
    facilities = device_facilities(devices)
    out = []
    for name in names:
        port = free_port()
        replication = (
            f'shared_group = "{prefix}"\nreplica_id = "{name}"\nreplicas = {json.dumps(names)}\n'
            if setup.shared
            else ""
        )
        path = workdir / f"{prefix}-{name}.toml"
        write_hub_config(
            path, broker.url, db, port, f"{prefix}-hub", facilities, ingest=replication
        )
        out.append((path, port))
    return out


def metric_sum(hub: HubProcess, prefix: str) -> float:
    return sum(v for k, v in hub.metrics().items() if k.startswith(prefix))


def wait_all_subscribed(hubs: list[HubProcess], broker: Broker, probe: str, shared: bool) -> None:
    """Publish readings from an unknown device until every hub has rejected one: each
    replica's shared subscription is then in place (the broker takes turns); and
    each owner session has its SUBACK."""
    body = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "counter": "main", "occupancy": 0}
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 60
        while not all(metric_sum(h, "ruuhka_readings_rejected_total") >= 1 for h in hubs):
            if time.monotonic() > deadline:
                raise RuntimeError("not every hub received a probe: not subscribed?")
            client.publish(device_topic(probe, Stream.COUNT), json.dumps(body), qos=1)
            time.sleep(0.1)
        while shared and not all(
            metric_sum(h, "ruuhka_replica_derive_connected") >= 1 for h in hubs
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("an owner session never subscribed")
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()


class StoreReader:
    def __init__(self, db: Path) -> None:
        self.db = db

    def count(self) -> int:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])

    def keys(self) -> tuple[int, int]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            rows, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT device || '/' || seq) FROM readings"
            ).fetchone()
        return int(rows), int(distinct)

    def occupancy(self) -> dict[str, int | None]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            rows = conn.execute("SELECT facility, state FROM facility_state").fetchall()
        return {facility: json.loads(state).get("occupancy") for facility, state in rows}


def poll_until(
    done: Callable[[], bool], timeout: float, label: str, alive: Callable[[], bool]
) -> float:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {label}")
        if not alive():
            raise RuntimeError(f"a hub exited while waiting for {label}")
        time.sleep(0.05)
    return time.monotonic()


def run_setup(
    setup: Setup, args: argparse.Namespace, broker: Broker, workdir: Path, number: int
) -> dict[str, Any]:
    prefix = f"ir{number}"
    devices = device_ids(prefix, args.devices)
    db = workdir / f"{prefix}.db"
    hubs = [
        HubProcess(path, port, workdir / f"{path.stem}.log")
        for path, port in write_configs(setup, broker, db, devices, workdir, prefix)
    ]
    try:
        for hub in hubs:
            hub.wait_connected()
        wait_all_subscribed(hubs, broker, f"{prefix}-probe", setup.shared)
        store = StoreReader(db)
        want = expected_occupancy(prefix, args.readings, args.devices)
        publisher = Publisher.launch(broker, prefix, args.readings, args.devices, workdir)
        alive = lambda: all(h.alive() for h in hubs)  # noqa: E731
        first_t = first_n = None
        while True:
            n = store.count()
            now = time.monotonic()
            if n and first_t is None:
                first_t, first_n = now, n
            if n >= args.readings:
                stored_t = now
                break
            if not alive():
                raise RuntimeError("a hub exited")
            time.sleep(0.05)
        state_t = poll_until(
            lambda: all(store.occupancy().get(d) == want[d] for d in devices),
            120,
            "the derived states",
            alive,
        )
        published = publisher.result()
        rows, distinct = store.keys()
        assert first_t is not None and first_n is not None
        stored_rate = (args.readings - first_n) / max(stored_t - first_t, 1e-9)
        state_rate = (args.readings - first_n) / max(state_t - first_t, 1e-9)
        per_hub = [metric_sum(h, "ruuhka_readings_accepted_total") for h in hubs]
        return {
            "setup": setup.label,
            "stored_per_s": stored_rate,
            "state_per_s": state_rate,
            "rows": rows,
            "distinct": distinct,
            "per_hub": per_hub,
            "published": published.get("acked"),
        }
    finally:
        for hub in hubs:
            hub.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ruuhka-ingest-replicas-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {workdir}")
    results = []
    with start_broker(workdir / "broker", prefer="mosquitto") as broker:
        for number, setup in enumerate(SETUPS):
            log(f"{setup.label}: {args.readings} readings from {args.devices} devices")
            results.append(run_setup(setup, args, broker, workdir, number))
            log(f"  {results[-1]}")
    ok = True
    print(f"{'setup':<11} {'stored/s':>9} {'state/s':>8} {'rows':>7}  {'per hub'}")
    for r in results:
        right = r["rows"] == r["distinct"] == args.readings
        ok &= right
        per_hub = ", ".join(f"{n:.0f}" for n in r["per_hub"])
        print(
            f"{r['setup']:<11} {r['stored_per_s']:>9.0f} {r['state_per_s']:>8.0f} "
            f"{r['rows']:>7}  {per_hub}{'' if right else '  (NOT stored exactly once)'}"
        )
    print(
        "\nEvery reading stored exactly once and every derived state right: "
        + ("yes" if ok else "NO")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
