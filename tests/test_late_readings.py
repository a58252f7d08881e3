"""Late readings land at their own time: whatever order readings arrive in, the
derived series is what a from-scratch recompute of the stored readings gives,
on SQLite and on InfluxDB, and the live figure is the newest truth."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.config import HubSettings
from hub.ingest import Ingest, Message
from hub.metrics import Metrics
from hub.rederive import recompute
from hub.store import EARLIEST, Store, open_store
from ruuhka.broker import Broker
from tests.conftest import HUB_CONFIG, HubProcess, mosquitto_pub, wait_for
from tests.test_replicas import GATES, running_replicas
from tests.tsdb import Server, influxdb_server

HELSINKI = ZoneInfo("Europe/Helsinki")
TODAY = datetime.now(HELSINKI).date()
COUNTERS = ("gate-a", "gate-b", "gate-c")


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with influxdb_server(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
    server: Server = request.getfixturevalue("influxdb")
    host = server.url.removeprefix("http://")
    return f"influxdb://{host}/late{uuid.uuid4().hex[:10]}?flush_interval_ms=10"


def local(day_offset: int, hour: int, minute: int = 0) -> datetime:
    day = TODAY - timedelta(days=day_offset)
    return datetime.combine(day, time(hour, minute), HELSINKI).astimezone(UTC)


def settings(url: str) -> HubSettings:
    return HubSettings(
        store={"url": url},
        facilities=[
            {
                "id": "pool",
                "kind": "swimming_hall",
                "capacity": 500,
                "name": {"en": "Pool"},
                "opening_hours": {d: "06:00-21:00" for d in ("mon", "tue", "wed", "thu")}
                | {d: "08:00-20:00" for d in ("fri", "sat", "sun")},
                "sources": [{"device": device, "counter": "main"} for device in COUNTERS],
            }
        ],
    )


def two_days() -> list[tuple[str, int, datetime, int, int]]:
    """(device, seq, time, entries, exits): three counters every 10 minutes, 05-23,
    the day before yesterday and yesterday, with cumulative counts."""
    rng = random.Random(7)
    out = []
    for device in COUNTERS:
        entries = exits = 0
        seq = 0
        for day in (2, 1):
            at = local(day, 5)
            while at < local(day, 23):
                seq += 1
                entries += rng.randint(0, 12)
                exits = min(entries, exits + rng.randint(0, 12))
                out.append((device, seq, at, entries, exits))
                at += timedelta(minutes=10 + rng.randint(0, 2))
    return out


def message(device: str, seq: int, at: datetime, entries: int, exits: int) -> Message:
    body = {"seq": seq, "ts": at.isoformat(), "counter": "main", "entries": entries}
    body["exits"] = exits
    topic = f"ruuhka/v1/devices/{device}/count"
    return Message(topic, json.dumps(body).encode(), seq, 1, datetime.now(UTC))


def ingest_in(url: str, arrival: list[tuple[str, int, datetime, int, int]]) -> tuple[Store, Ingest]:
    """Feed readings in this order, in batches as the worker takes them, then let
    the worker catch up as it does when nothing waits."""
    store = open_store(url)
    ingest = Ingest(settings(url), store, Metrics(), on_state=lambda state: None)
    for n in range(0, len(arrival), 40):
        ingest._process_guarded([message(*r) for r in arrival[n : n + 40]])
        if n % 200 == 0:
            ingest._recompute_due()  # now and then, as while a backlog drains
    ingest._recompute_due()
    return store, ingest


def series(store: Store) -> list[tuple[datetime, int, float | None]]:
    buckets = store.history("pool", local(3, 0), local(0, 0), 60)
    return [(b.start, b.samples, b.occupancy_avg) for b in buckets]


ORDERS = {
    # counter C was offline for both days and drains its backlog afterwards
    "backlog": lambda rs: [r for r in rs if r[0] != "gate-c"] + [r for r in rs if r[0] == "gate-c"],
    # redeliveries and any interleaving
    "shuffled": lambda rs: random.Random(3).sample(rs + rs[::7], len(rs) + len(rs[::7])),
    # yesterday's readings first, then the day before
    "days reversed": lambda rs: sorted(rs, key=lambda r: (r[2] < local(1, 0), r[2])),
}


@pytest.mark.parametrize("kind", ["sqlite", "influxdb1"])
def test_the_series_is_the_same_whatever_the_arrival_order(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    readings = sorted(two_days(), key=lambda r: r[2])
    store, ingest = ingest_in(store_url(kind, tmp_path, request), readings)
    expected = series(store)
    live = ingest.derivers["pool"].state.occupancy
    scratch = recompute(store, ingest.derivers["pool"].facility, EARLIEST)
    assert len(expected) > 500 and scratch.readings == len(readings)
    assert scratch.deriver.state.occupancy == live
    store.close()
    for name, order in ORDERS.items():
        store, ingest = ingest_in(store_url(kind, tmp_path, request), order(readings))
        try:
            assert series(store) == expected, name
            assert ingest.derivers["pool"].state.occupancy == live, name
            assert not ingest.derivers["pool"].tracker.late_from
            assert store.count_readings() == len(readings)
        finally:
            store.close()


# Against a running hub ----------------------------------------------------------------


def two_counter_config(tmp_path: Path, broker: Broker, port: int, url: str | None) -> Path:
    text = HUB_CONFIG.format(
        mqtt_url=broker.url, db=tmp_path / "hub.db", port=port, client_id="late-hub"
    )
    text = text.replace(
        'device = "test-gate"\ncounter = "main"\n',
        'device = "test-gate"\ncounter = "main"\n'
        '[[facilities.sources]]\ndevice = "test-gate-b"\ncounter = "main"\n',
    )
    if url is not None:
        text = text.replace(f'url = "sqlite:///{tmp_path / "hub.db"}"', f'url = "{url}"')
    text = text.replace("[http]\n", "[http]\napi_rate_per_s = 0\n", 1)
    config = tmp_path / "hub.toml"
    config.write_text(text, encoding="utf-8")
    return config


def publish(broker: Broker, device: str, seq: int, at: datetime, entries: int) -> None:
    body = {"seq": seq, "ts": at.isoformat(), "counter": "main", "entries": entries, "exits": 0}
    mosquitto_pub(broker, f"ruuhka/v1/devices/{device}/count", json.dumps(body))


def history(
    hub: HubProcess, start: datetime, minutes: int, facility: str = "pool"
) -> list[float | None]:
    end = start + timedelta(minutes=minutes)
    query = f"from={start.isoformat()}&to={end.isoformat()}&every=30m".replace("+00:00", "Z")
    body = hub.get(f"/api/v1/facilities/{facility}/history?{query}")
    by_start = {b["start"]: b["occupancy_avg"] for b in body["buckets"]}
    return [
        by_start.get((start + timedelta(minutes=m)).isoformat().replace("+00:00", "Z"))
        for m in range(0, minutes, 30)
    ]


@pytest.mark.parametrize("kind", ["sqlite", "influxdb1"])
def test_a_counter_that_reports_late_lands_at_its_own_times(
    kind: str, tmp_path: Path, broker: Broker, hub_port: int, request: pytest.FixtureRequest
) -> None:
    url = None if kind == "sqlite" else store_url(kind, tmp_path, request)
    config = two_counter_config(tmp_path, broker, hub_port, url)
    t0 = local(1, 10)  # yesterday, 10:00 in Helsinki
    hub = HubProcess(config, hub_port, tmp_path / "hub.log").start()
    try:
        for seq, (minutes, entries) in enumerate([(0, 0), (60, 10), (120, 20)], start=1):
            publish(broker, "test-gate", seq, t0 + timedelta(minutes=minutes), entries)
        wait_for(lambda: hub.facility("pool")["occupancy"] == 20, 30, "counter A")
        for seq, (minutes, entries) in enumerate([(0, 0), (30, 5), (90, 15)], start=1):
            publish(broker, "test-gate-b", seq, t0 + timedelta(minutes=minutes), entries)
        wait_for(lambda: hub.facility("pool")["occupancy"] == 35, 30, "counter B folded in")
        wait_for(
            lambda: history(hub, t0, 150) == [0, 5, 15, 25, 35],
            30,
            "each reading at its own time",
        )
        # A reading from the day before does not start the day again.
        publish(broker, "test-gate-b", 0, t0 - timedelta(days=1), 0)
        wait_for(lambda: hub.metric("ruuhka_recomputes_total") >= 2, 30, "the second recompute")
        assert hub.facility("pool")["occupancy"] == 35
        publish(broker, "test-gate", 4, t0 + timedelta(minutes=150), 22)
        wait_for(lambda: hub.facility("pool")["occupancy"] == 37, 30, "the next live reading")
        assert history(hub, t0, 180) == [0, 5, 15, 25, 35, 37]
    finally:
        hub.stop()
    if kind == "sqlite":
        before = history_after_restart(config, hub_port, tmp_path, t0)
        since = (t0 - timedelta(days=2)).isoformat()
        command = [sys.executable, "-m", "ruuhka", "store", "--config", str(config)]
        done = subprocess.run(
            [*command, "rederive", "--facility", "pool", "--from", since],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "pool" in done.stdout
        assert history_after_restart(config, hub_port, tmp_path, t0) == before


def history_after_restart(config: Path, port: int, tmp_path: Path, t0: datetime) -> list:
    hub = HubProcess(config, port, tmp_path / "hub-again.log").start()
    try:
        return history(hub, t0, 180)
    finally:
        hub.stop()


@pytest.fixture
def replicas(tmp_path: Path, broker: Broker) -> Iterator[tuple[Path, list[HubProcess]]]:
    with running_replicas(tmp_path, broker) as running:
        yield running


def test_with_replicas_the_owner_folds_a_late_counter_in_at_its_own_times(
    replicas: tuple[Path, list[HubProcess]], broker: Broker
) -> None:
    _, hubs = replicas
    t0 = local(1, 10)
    first, second = GATES[0], GATES[1]  # the two counters of hall-0
    for seq, (minutes, entries) in enumerate([(0, 0), (60, 10), (120, 20)], start=1):
        publish(broker, first, seq, t0 + timedelta(minutes=minutes), entries)
    for hub in hubs:
        wait_for(lambda h=hub: h.facility("hall-0")["occupancy"] == 20, 30, "counter A")
    for seq, (minutes, entries) in enumerate([(0, 0), (30, 5), (90, 15)], start=1):
        publish(broker, second, seq, t0 + timedelta(minutes=minutes), entries)
    for hub in hubs:
        wait_for(lambda h=hub: h.facility("hall-0")["occupancy"] == 35, 60, "counter B")
        wait_for(
            lambda h=hub: history(h, t0, 150, "hall-0") == [0, 5, 15, 25, 35],
            60,
            "each reading at its own time, on every replica",
        )
    recomputes = [hub.metric("ruuhka_recomputes_total") for hub in hubs]
    assert sum(1 for n in recomputes if n) == 1, recomputes  # by hall-0's owner only
