"""One contract for every store, run against real servers: SQLite and InfluxDB 1.x in full,
VictoriaMetrics for influxdb-client's v2 write path (read back through its export API)."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from hub.metrics import Metrics
from hub.state import Tracker
from hub.store import (
    EARLIEST,
    LATEST,
    DeviceStatus,
    Quarantined,
    Record,
    SavedState,
    Store,
    StoreURLError,
    open_store,
)
from hub.store.influx import InfluxStore, StoreWriteError, parse_influx_url, reading_time_ns
from hub.store.sqlite import SQLiteStore
from ruuhka.broker import Broker, free_port
from ruuhka.contract import FacilityState
from tests.conftest import HUB_CONFIG, HubProcess, http_get, mosquitto_pub, wait_for
from tests.tsdb import Server, influxdb_server, victoria_metrics_server

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
OpenStore = Callable[[], Store]


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with influxdb_server(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with victoria_metrics_server(tmp_path_factory.mktemp("victoria")) as server:
        yield server


@pytest.fixture(params=["sqlite", "influxdb1"])
def open_again(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens the same (fresh per test) store, as a restarted hub would."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        server: Server = request.getfixturevalue("influxdb")
        host = server.url.removeprefix("http://")
        url = f"influxdb://{host}/t{uuid.uuid4().hex[:12]}?flush_interval_ms=10"
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_again: OpenStore) -> Store:
    return open_again()


def record(seq: int, device: str = "gate", at: datetime | None = None, **data: int) -> Record:
    when = at or T0 + timedelta(seconds=seq)
    return Record(
        device=device,
        seq=seq,
        stream="count",
        facility="pool",
        source=f"{device}/main",
        ts=when,
        device_ts=when,
        received_at=when + timedelta(milliseconds=250),
        data={"counter": "main", **data} if data else {"counter": "main", "entries": seq},
    )


def saved(facility: str, occupancy: int | None, at: datetime, revision: int, **extra) -> SavedState:
    state = FacilityState(
        facility=facility, revision=revision, occupancy=occupancy, updated_at=at, **extra
    )
    return SavedState(state, Tracker(day=at.date().isoformat(), net=occupancy or 0))


def test_known_answers_only_for_committed_readings(store: Store) -> None:
    store.commit([record(1), record(2), record(1, device="other")], [], [])
    assert store.known([("gate", 1), ("gate", 2), ("gate", 3), ("other", 1), ("new", 1)]) == {
        ("gate", 1),
        ("gate", 2),
        ("other", 1),
    }
    assert store.count_readings() == 3
    assert store.count_readings("gate") == 2
    assert store.max_seqs() == {"gate": 2, "other": 1}


def test_a_redelivered_batch_lands_once(open_again: OpenStore) -> None:
    first = open_again()
    batch = [record(seq) for seq in range(1, 6)]
    first.commit(batch, [], [])
    # A restarted hub (cold caches) gets the same readings again, received later.
    again = open_again()
    assert again.known([(r.device, r.seq) for r in batch]) == {("gate", s) for s in range(1, 6)}
    late = [
        Record(**{**r.__dict__, "received_at": r.received_at + timedelta(minutes=5)}) for r in batch
    ]
    again.commit(late, [], [])
    assert again.count_readings() == 5
    assert again.max_seqs() == {"gate": 5}


def test_readings_in_the_same_millisecond_stay_apart(store: Store) -> None:
    same = T0 + timedelta(microseconds=123)
    store.commit([record(seq, at=same) for seq in (7, 8, 9)], [], [])
    assert store.count_readings("gate") == 3
    assert store.known([("gate", 8)]) == {("gate", 8)}


def test_an_old_reading_after_a_restart_is_looked_up(open_again: OpenStore) -> None:
    open_again().commit([record(10), record(12)], [], [])
    restarted = open_again()
    # 11 never arrived, 10 did: below the device's newest, so the store must look.
    assert restarted.known([("gate", 10), ("gate", 11), ("gate", 13)]) == {("gate", 10)}
    restarted.commit([record(11)], [], [])
    assert restarted.known([("gate", 11)]) == {("gate", 11)}
    assert restarted.count_readings() == 3


def test_derived_state_survives_a_restart_and_the_last_commit_wins(open_again: OpenStore) -> None:
    store = open_again()
    store.commit([record(1)], [saved("pool", 4, T0, 1), saved("rink", None, T0, 1)], [])
    newer = saved("pool", 9, T0 + timedelta(minutes=1), 2)
    newer.tracker.counters = {"gate/main": (12, 3)}
    newer.tracker.sticky = ["counter_reset"]
    store.commit([record(2)], [newer], [])
    loaded = open_again().load_states()
    assert set(loaded) == {"pool", "rink"}
    assert loaded["pool"].state == newer.state
    assert loaded["pool"].tracker == newer.tracker
    assert loaded["rink"].state.revision == 1


def test_history_aggregates_per_interval(store: Store) -> None:
    states = [
        saved("pool", 10, T0, 1),
        saved("pool", 20, T0 + timedelta(minutes=5), 2),
        saved("pool", 60, T0 + timedelta(minutes=20), 3),
        saved("pool", 30, T0 + timedelta(minutes=50), 4),
        saved("rink", None, T0 + timedelta(minutes=1), 1, ice_temp_c=-4.5, air_temp_c=2.0),
        saved("rink", None, T0 + timedelta(minutes=2), 2, ice_temp_c=-3.5, air_temp_c=3.0),
        saved("carpets", None, T0 + timedelta(minutes=3), 1, people=3, spots=2, spots_in_use=2),
        saved("carpets", None, T0 + timedelta(minutes=4), 2, people=1, spots=2, spots_in_use=1),
    ]
    for state in states:
        store.commit([], [state], [])
    buckets = store.history("pool", T0, T0 + timedelta(minutes=45), 900)
    assert [(b.start, b.samples, b.occupancy_avg, b.occupancy_max) for b in buckets] == [
        (T0, 2, 15.0, 20),
        (T0 + timedelta(minutes=15), 1, 60.0, 60),
    ]
    assert buckets[0].ice_temp_c is None and buckets[0].people_avg is None
    (rink,) = store.history("rink", T0 - timedelta(hours=1), T0 + timedelta(hours=1), 3600)
    assert rink.start == T0 and rink.samples == 2 and rink.occupancy_avg is None
    assert rink.ice_temp_c == pytest.approx(-4.0) and rink.air_temp_c == pytest.approx(2.5)
    assert store.history("pool", T0 + timedelta(hours=2), T0 + timedelta(hours=3), 60) == []
    (carpets,) = store.history("carpets", T0, T0 + timedelta(hours=1), 3600)
    assert carpets.people_avg == pytest.approx(2.0)
    assert carpets.spots_in_use_avg == pytest.approx(1.5)
    assert buckets[0].spots_in_use_avg is None


def test_both_ends_of_the_time_range_can_be_asked_about(store: Store) -> None:
    """The history API admits EARLIEST..LATEST with intervals up to 400 days; every
    store answers there, and with the same: the readings at its edges."""
    year = timedelta(days=400)
    every = int(year.total_seconds())
    first = EARLIEST + timedelta(days=1)
    last = LATEST - timedelta(days=1)
    store.commit(
        [record(1, at=first), record(2, at=last)],
        [saved("pool", 5, first, 1), saved("pool", 7, last, 2)],
        [],
    )
    early = store.history("pool", EARLIEST, EARLIEST + year, every)
    late = store.history("pool", LATEST - year, LATEST, every)
    assert [(b.samples, b.occupancy_max) for b in early + late] == [(1, 5), (1, 7)]
    assert early[0].start <= first and late[0].start <= last


def test_device_status_keeps_what_a_later_report_leaves_out(store: Store) -> None:
    store.commit([], [], [DeviceStatus("gate", True, T0)])
    store.commit([], [], [DeviceStatus("gate", True, T0 + timedelta(seconds=5), {"uptime_s": 9})])
    store.commit([], [], [DeviceStatus("gate", None, T0 + timedelta(seconds=9))])
    store.commit([], [], [DeviceStatus("cam", False, T0)])
    devices = {d.device: d for d in store.devices()}
    assert devices["gate"].online is True
    assert devices["gate"].heartbeat == {"uptime_s": 9}
    assert devices["gate"].at == T0 + timedelta(seconds=9)
    assert devices["cam"].online is False and devices["cam"].heartbeat is None


def test_an_empty_commit_is_harmless(store: Store) -> None:
    store.commit([], [], [])
    assert store.count_readings() == 0
    assert store.max_seqs() == {} and store.load_states() == {} and store.devices() == []


# InfluxDB only -------------------------------------------------------------------------


def _influx_url(server: Server, db: str = "", **options: object) -> str:
    query = urllib.parse.urlencode(options)
    return f"influxdb://{server.url.removeprefix('http://')}/{db}" + (f"?{query}" if query else "")


def test_a_refused_point_is_logged_counted_and_does_not_block_ingest(influxdb: Server) -> None:
    db = f"t{uuid.uuid4().hex[:12]}"
    store = open_store(_influx_url(influxdb, db, flush_interval_ms=10))
    try:
        # Someone else wrote `seq` as a string into the same shard: a type conflict.
        body = f'readings,device=gate,stream=count seq="x" {reading_time_ns(T0, 99)}'
        request = urllib.request.Request(
            f"{influxdb.url}/write?db={db}&precision=ns", data=body.encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=5).close()
        store.commit([record(1)], [], [])  # returns: retrying cannot help
        assert store.stats()["points_rejected"] == 1
        metrics = Metrics()
        metrics.watch_store(store.stats)
        assert b"ruuhka_store_points_rejected_total 1.0" in generate_latest(metrics.registry)
    finally:
        store.close()


def test_an_unreachable_influxdb_fails_the_commit(tmp_path: Path) -> None:
    url = (
        f"influxdb://127.0.0.1:{free_port()}/db?max_retries=1&retry_interval_ms=10"
        "&max_retry_time_s=1&timeout_s=1&flush_interval_ms=10"
    )
    store = InfluxStore.from_url(url)
    try:
        with pytest.raises(StoreWriteError, match="InfluxDB write failed"):
            store.commit([record(1)], [], [])
        assert store.stats()["write_errors"] >= 1
    finally:
        store.close()


def _export(server: Server, match: str) -> list[dict]:
    # Make what VictoriaMetrics holds in memory searchable now, not in a few seconds.
    urllib.request.urlopen(f"{server.url}/internal/force_flush", timeout=5).close()
    # The export's default range ends now; T0 may lie ahead of the machine's clock.
    query = {"match[]": match, "start": "0", "end": str(2**32)}
    data = urllib.parse.urlencode(query).encode()
    with urllib.request.urlopen(f"{server.url}/api/v1/export", data=data, timeout=5) as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_the_batching_writer_reaches_victoria_metrics(victoria: Server, api: str) -> None:
    """v2: /api/v2/write with org and bucket (2.x, 3.x); v1: /write?db= (1.x).
    VictoriaMetrics labels points written through /write with their db."""
    device = f"vm-{api}-{uuid.uuid4().hex[:6]}"
    if api == "v2":
        url = f"{_influx_url(victoria, '', org='city', bucket='ruuhka')}&flush_interval_ms=10"
    else:
        url = _influx_url(victoria, "ruuhka1", flush_interval_ms=10)
    store = InfluxStore(parse_influx_url(url))
    try:
        state = saved("pool", 7, T0, 3)
        store.commit([record(1, device=device), record(2, device=device)], [state], [])
    finally:
        store.close()

    def exported() -> list[dict]:
        return _export(victoria, f'{{__name__="readings_seq",device="{device}"}}')

    (series,) = wait_for(exported, 30, "the readings in VictoriaMetrics")
    labels = series["metric"]
    assert labels["stream"] == "count" and labels["facility"] == "pool"
    assert labels["source"] == f"{device}/main"
    assert labels.get("db") == (None if api == "v2" else "ruuhka1")
    assert series["values"] == [1, 2]
    assert series["timestamps"] == [
        reading_time_ns(T0 + timedelta(seconds=s), s) // 10**6 for s in (1, 2)
    ]
    occupancy = wait_for(
        lambda: _export(victoria, '{__name__="facility_series_occupancy",facility="pool"}'),
        30,
        "the derived series in VictoriaMetrics",
    )
    assert any(7 in s["values"] for s in occupancy)


def test_store_urls_are_parsed_and_checked() -> None:
    v1 = parse_influx_url("influxdb://ruuhka:s%40cret@influx.local/ruuhka/week?timeout_s=3")
    assert (v1.base_url, v1.database, v1.retention_policy) == (
        "http://influx.local:8086",
        "ruuhka",
        "week",
    )
    assert (v1.username, v1.password, v1.timeout_s, v1.v2_write) == ("ruuhka", "s@cret", 3, False)
    assert v1.auth_header()["Authorization"].startswith("Basic ")
    v2 = parse_influx_url("influxdbs://cloud.example:443?org=city&bucket=ruuhka")
    assert (v2.base_url, v2.org, v2.bucket, v2.query_db, v2.v2_write) == (
        "https://cloud.example:443",
        "city",
        "ruuhka",
        "ruuhka",
        True,
    )
    for bad, message in [
        ("influxdb://host", "either a database"),
        ("influxdb://host/db?bucket=b", "either a database"),
        ("influxdb://host/db?colour=red", "unknown store URL option 'colour'"),
        ("influxdb://host/db?timeout_s=soon", "not a number"),
        ("influx://host/db", "bad InfluxDB URL"),
    ]:
        with pytest.raises(StoreURLError, match=message):
            parse_influx_url(bad)


# The hub on InfluxDB ---------------------------------------------------------------------


def test_the_hub_runs_on_influxdb_and_restarts_where_it_stopped(
    influxdb: Server, broker: Broker, tmp_path: Path, hub_port: int
) -> None:
    db = f"hub{uuid.uuid4().hex[:10]}"
    sqlite_line = f'url = "sqlite:///{tmp_path / "hub.db"}"'
    text = HUB_CONFIG.format(
        mqtt_url=broker.url, db=tmp_path / "hub.db", port=hub_port, client_id="influx-hub"
    )
    assert sqlite_line in text
    config = tmp_path / "hub.toml"
    config.write_text(
        text.replace(sqlite_line, f'url = "{_influx_url(influxdb, db, flush_interval_ms=10)}"'),
        encoding="utf-8",
    )
    topic = "ruuhka/v1/devices/test-gate/count"
    start = datetime.now(UTC).replace(microsecond=0)

    def reading(seq: int, entries: int, exits: int) -> str:
        ts = (start + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z")
        return json.dumps(
            {"seq": seq, "ts": ts, "counter": "main", "entries": entries, "exits": exits}
        )

    hub = HubProcess(config, hub_port, tmp_path / "hub.log").start()
    try:
        for seq, (entries, exits) in enumerate([(100, 90), (110, 92), (115, 95)], start=1):
            mosquitto_pub(broker, topic, reading(seq, entries, exits))
        wait_for(lambda: hub.facility("pool")["occupancy"] == 10, 20, "occupancy 10")
        assert hub.metric("ruuhka_store_points_written_total") >= 3
    finally:
        hub.kill()
    # Down: one more reading waits at the broker; one already stored comes again.
    mosquitto_pub(broker, topic, reading(4, 125, 97))
    mosquitto_pub(broker, topic, reading(3, 115, 95))
    hub = HubProcess(config, hub_port, tmp_path / "hub2.log").start()
    try:
        wait_for(lambda: hub.facility("pool")["occupancy"] == 18, 20, "the state to continue")
        # At least the re-sent reading; a kill between commit and ack also makes the
        # broker redeliver the last batch, which is stored already. Exactly-once is
        # checked by the count at the end.
        wait_for(lambda: hub.metric("ruuhka_readings_duplicate_total") >= 1, 10, "a duplicate")
        since = (start - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        until = (start + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        body = hub.get(f"/api/v1/facilities/pool/history?from={since}&to={until}&every=1h")
        # A point per minute with a reading, however the readings were batched.
        minutes = {(start + timedelta(seconds=seq)).replace(second=0) for seq in range(1, 5)}
        assert sum(b["samples"] for b in body["buckets"]) == len(minutes)
        assert max(b["occupancy_max"] for b in body["buckets"]) == 18
        # Out of InfluxDB's range: the same 400 as on SQLite (tests/test_history_api.py).
        for query in ("from=1677-01-01T00:00:00Z", "to=2263-01-01T00:00:00Z"):
            status, text = http_get(f"{hub.url}/api/v1/facilities/pool/history?{query}")
            assert status == 400 and "outside the years" in json.loads(text)["detail"], text
    finally:
        hub.stop()
    store = open_store(_influx_url(influxdb, db))
    try:
        assert store.count_readings("test-gate") == 4
    finally:
        store.close()


def test_refused_messages_are_kept_newest_first(store: Store) -> None:
    def refused(n: int, device: str, reason: str) -> Quarantined:
        payload = bytes(range(256)) * 2 + str(n).encode()  # not text: kept as it came
        topic = f"ruuhka/v1/devices/{device}/count"
        return Quarantined(T0 + timedelta(seconds=n), topic, device, reason, "why", 9000, payload)

    entries = [refused(1, "gate", "seq_jump"), refused(2, "gate", "malformed_json")]
    store.quarantine(entries, keep=100)
    store.quarantine([refused(3, "rink", "malformed_json")], keep=100)
    newest = store.quarantined()
    assert [q.device for q in newest] == ["rink", "gate", "gate"]
    assert newest[2].payload == entries[0].payload and newest[2].size == 9000
    assert [q.reason for q in store.quarantined(device="gate", reason="seq_jump")] == ["seq_jump"]
    assert len(store.quarantined(limit=1)) == 1


def test_the_same_seq_in_two_epochs_is_two_readings(store: Store) -> None:
    again = record(1)
    again.epoch = "b2"  # the device re-imaged: seq 1 again, in a new epoch
    store.commit([record(1), again], [], [])
    keys = [("gate", 1), ("gate#b2", 1), ("gate#c3", 1), ("gate#b2", 2)]
    assert store.known(keys) == {("gate", 1), ("gate#b2", 1)}
    assert store.count_readings("gate") == 2
    assert store.max_seqs() == {"gate": 1, "gate#b2": 1}


def test_an_older_sqlite_file_gets_the_epoch_and_keeps_its_readings(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE readings (device TEXT NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL, "
        "facility TEXT, source TEXT, ts_ms INTEGER NOT NULL, device_ts TEXT NOT NULL, "
        "received_ms INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (device, seq))"
        " WITHOUT ROWID;"
        "CREATE TABLE facility_series (facility TEXT NOT NULL, ts_ms INTEGER NOT NULL, "
        "occupancy INTEGER, ice_temp_c REAL, air_temp_c REAL, people INTEGER, spots_in_use INTEGER,"
        " PRIMARY KEY (facility, ts_ms)) WITHOUT ROWID;"
        "INSERT INTO readings VALUES ('gate', 7, 'count', 'pool', 'gate/main', 0, "
        '\'1970-01-01T00:00:00+00:00\', 0, \'{"counter":"main","entries":1}\');'
        "PRAGMA user_version = 1;"
    )
    db.close()
    store = SQLiteStore(path)
    try:
        assert store.known([("gate", 7)]) == {("gate", 7)}
        assert store.readings_between("pool", EARLIEST)[0].epoch == ""
        store.commit([record(7, at=T0)], [], [])  # the same reading again: still one
        assert store.count_readings() == 1
    finally:
        store.close()
