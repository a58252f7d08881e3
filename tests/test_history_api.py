"""The history API of a running hub: JSON and CSV, CORS, clear 400s, documented."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.store.sqlite import SQLiteStore
from ruuhka.broker import Broker
from tests.conftest import HubProcess, http_get, mosquitto_pub, wait_for
from tests.seed import pool_day, seed

DAY = date(2026, 11, 2)  # a Monday, in Helsinki: UTC+2
PATH = "/api/v1/facilities/pool/history"


@pytest.fixture(scope="module")
def history_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for the read-only tests, with the pool's 2 November in its store."""
    from ruuhka.broker import free_port, start_broker
    from tests.conftest import HUB_CONFIG

    root = tmp_path_factory.mktemp("history")
    store = SQLiteStore(root / "hub.db")
    seed(store, "pool", [DAY], pool_day)
    store.close()
    with start_broker(root / "broker", prefer="mosquitto") as broker:
        port = free_port()
        config = root / "hub.toml"
        config.write_text(
            HUB_CONFIG.format(
                mqtt_url=broker.url, db=root / "hub.db", port=port, client_id="history-hub"
            ),
            encoding="utf-8",
        )
        process = HubProcess(config, port, root / "hub.log").start()
        try:
            yield process
        finally:
            process.stop()


def test_history_as_json(history_hub: HubProcess) -> None:
    body = history_hub.get(f"{PATH}?from=2026-11-02T14:00:00Z&to=2026-11-02T17:00:00Z&every=1h")
    assert (body["facility"], body["every_s"], body["capacity"]) == ("pool", 3600, 100)
    assert (body["from"], body["to"]) == ("2026-11-02T14:00:00Z", "2026-11-02T17:00:00Z")
    # 16-18 local is 14-16 UTC: busy; a point every 5 minutes.
    assert [(b["start"], b["end"], b["samples"], b["occupancy_avg"]) for b in body["buckets"]] == [
        ("2026-11-02T14:00:00Z", "2026-11-02T15:00:00Z", 12, 80.0),
        ("2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z", 12, 80.0),
        ("2026-11-02T16:00:00Z", "2026-11-02T17:00:00Z", 12, 10.0),
    ]
    first = body["buckets"][0]
    assert first["occupancy_max"] == 80 and first["occupancy_pct_avg"] == 80.0
    assert first["ice_temp_c"] is None and first["people_avg"] is None
    offset = history_hub.get(f"{PATH}?from=2026-11-02T15:30:00%2B02:00&to=2026-11-02T14:00:00Z")
    assert offset["from"] == "2026-11-02T13:30:00Z" and offset["every_s"] == 900
    assert [b["occupancy_avg"] for b in offset["buckets"]] == [10.0, 10.0]


def test_history_as_csv(history_hub: HubProcess) -> None:
    query = "from=2026-11-02T14:00:00Z&to=2026-11-02T15:00:00Z&every=30m"
    for path, headers in [
        (f"{PATH}?{query}", {"Accept": "text/csv"}),
        (f"{PATH}?{query}&format=csv", {"Accept": "application/json"}),
    ]:
        request = urllib.request.Request(history_hub.url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(response.read().decode())))
        assert [(r["start"], r["samples"], r["occupancy_avg"], r["ice_temp_c"]) for r in rows] == [
            ("2026-11-02T14:00:00Z", "6", "80.0", ""),
            ("2026-11-02T14:30:00Z", "6", "80.0", ""),
        ]
    _, text = http_get(history_hub.url + f"{PATH}?{query}", {"Accept": "text/csv;q=0.5, */*"})
    assert json.loads(text)["every_s"] == 1800  # JSON is preferred there


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-11-03T00:00:00Z&to=2026-11-02T00:00:00Z", "`from` must be before `to`"),
        ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "longer than 400 days"),
        ("from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&every=10s", "at least 60 seconds"),
        ("from=2025-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&every=1m", "use every=1h or more"),
        ("from=yesterday", "not an RFC 3339 time"),
        ("from=2026-11-01T00:00:00", "has no time zone"),
        ("every=soon", "not an interval"),
        ("format=xml", "neither json nor csv"),
        # Dates no store keeps, even ones that cannot be put in UTC at all.
        ("from=0001-01-01T00:00:00%2B01:00", "outside the years 1900-2199"),
        ("to=9999-12-31T23:59:59-01:00", "outside the years 1900-2199"),
        ("from=1677-09-20T00:00:00Z&to=1677-09-22T00:00:00Z", "outside the years 1900-2199"),
        ("from=2262-04-10T00:00:00Z&to=2262-04-12T00:00:00Z", "outside the years 1900-2199"),
        ("to=1900-01-01T00:00:00%2B00:01", "outside the years 1900-2199"),
        ("every=999999999d", "at most 400 days"),
        ("every=%D9%A3h", "not an interval"),  # an Arabic-Indic digit three
        ("every=%C2%B2m", "not an interval"),  # a superscript two
        ("from=%D9%A2%D9%A0%D9%A2%D9%A6-11-01T00:00:00Z", "not an RFC 3339 time"),
    ],
)
def test_bad_parameters_get_a_clear_400(history_hub: HubProcess, query: str, message: str) -> None:
    status, body = http_get(f"{history_hub.url}{PATH}?{query}")
    assert status == 400, body
    assert message in json.loads(body)["detail"]


def test_unknown_facility_is_404(history_hub: HubProcess) -> None:
    status, _ = http_get(history_hub.url + "/api/v1/facilities/nowhere/history")
    assert status == 404


def test_any_origin_may_read_it(history_hub: HubProcess) -> None:
    request = urllib.request.Request(
        history_hub.url + PATH, headers={"Origin": "https://data.example.org"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = urllib.request.Request(
        history_hub.url + PATH,
        method="OPTIONS",
        headers={"Origin": "https://data.example.org", "Access-Control-Request-Method": "GET"},
    )
    with urllib.request.urlopen(preflight, timeout=5) as response:
        assert "GET" in response.headers["Access-Control-Allow-Methods"]


def test_documented_in_the_openapi_schema(history_hub: HubProcess) -> None:
    schema = history_hub.get("/openapi.json")
    operation = schema["paths"]["/api/v1/facilities/{facility_id}/history"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"from", "to", "every", "format"}
    assert "text/csv" in operation["responses"]["200"]["content"]
    assert "400" in operation["responses"]
    out = schema["components"]["schemas"]["HistoryOut"]
    assert out["examples"][0]["buckets"][0]["occupancy_avg"] == 41.5
    assert "/api/v1/facilities/{facility_id}/forecast" in schema["paths"]


def test_live_readings_show_up_in_the_history(hub: HubProcess, broker: Broker) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    for seq, headcount in enumerate((4, 7, 10), start=1):
        ts = (start + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z")
        payload = {"seq": seq, "ts": ts, "counter": "main", "occupancy": headcount}
        mosquitto_pub(broker, "ruuhka/v1/devices/test-gate/count", json.dumps(payload))
    wait_for(lambda: hub.facility("pool")["occupancy"] == 10, 15, "the readings")
    since, until = (
        (start + delta).isoformat().replace("+00:00", "Z")
        for delta in (timedelta(minutes=-1), timedelta(minutes=1))
    )
    body = hub.get(f"{PATH}?from={since}&to={until}&every=1h")
    assert 1 <= sum(b["samples"] for b in body["buckets"]) <= 3  # a point per batch
    assert max(b["occupancy_max"] for b in body["buckets"]) == 10


def test_a_restarted_hub_knows_the_trend_at_once(tmp_path: Path, broker: Broker) -> None:
    """The arrow compares now with ten minutes ago; after a restart the hub
    takes the last half hour from its store instead of waiting ten minutes."""
    from hub.state import Tracker
    from hub.store import SavedState
    from ruuhka.broker import free_port
    from ruuhka.contract import FacilityState
    from tests.conftest import HUB_CONFIG

    store = SQLiteStore(tmp_path / "hub.db")
    now = datetime.now(UTC).replace(microsecond=0)
    minutes = range(20, 0, -1)  # 20 minutes ago .. 1 minute ago, filling up
    store.commit(
        [],
        [
            SavedState(
                FacilityState(
                    facility="pool",
                    revision=n,
                    occupancy=10 + 2 * n,
                    updated_at=now - timedelta(minutes=ago),
                ),
                Tracker(),
            )
            for n, ago in enumerate(minutes, start=1)
        ],
        [],
    )
    store.close()
    port = free_port()
    config = tmp_path / "hub.toml"
    config.write_text(
        HUB_CONFIG.format(mqtt_url=broker.url, db=tmp_path / "hub.db", port=port, client_id="t"),
        encoding="utf-8",
    )
    hub = HubProcess(config, port, tmp_path / "hub.log").start()
    try:
        pool = hub.facility("pool")
        assert pool["occupancy"] == 50 and pool["trend"] == "rising"
    finally:
        hub.stop()
