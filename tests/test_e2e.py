"""End to end: a real Mosquitto, the hub as a process, devices that are not ours."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from websockets.sync.client import connect as ws_connect

from ruuhka.broker import Broker
from tests.conftest import HubProcess, http_get, mosquitto_pub, wait_for

GATE = "ruuhka/v1/devices/test-gate/count"


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def count(seq: int, entries: int, exits: int) -> str:
    return json.dumps(
        {"seq": seq, "ts": now(), "counter": "main", "entries": entries, "exits": exits}
    )


def test_a_reading_from_mosquitto_pub_reaches_the_api(broker: Broker, hub: HubProcess) -> None:
    assert hub.facility("pool")["occupancy"] is None
    mosquitto_pub(broker, GATE, count(1, 100, 90))  # the first reading is the baseline
    mosquitto_pub(broker, GATE, count(2, 107, 92))
    pool = wait_for(lambda: (f := hub.facility("pool"))["occupancy"] == 5 and f, 30, "occupancy 5")
    assert pool["occupancy_pct"] == 5.0
    assert pool["stale"] is False
    assert pool["level"] == "quiet"
    assert datetime.fromisoformat(pool["updated_at"]).tzinfo is not None
    assert pool["name"] == "Uimahalli"  # the site's default language
    english = hub.get("/api/v1/facilities/pool?lang=en")
    assert english["name"] == "Swimming hall"
    swedish = hub.get("/api/v1/facilities/pool", **{"Accept-Language": "sv-FI,sv;q=0.9"})
    assert swedish["name"] == "Simhallen"
    listed = {f["id"]: f for f in hub.get("/api/v1/facilities")}
    assert listed.keys() == {"pool", "rink", "carpets"}
    assert listed["pool"]["occupancy"] == 5
    assert listed["rink"]["stale"] is True  # nothing heard yet


def test_rink_and_camera_streams(broker: Broker, hub: HubProcess) -> None:
    mosquitto_pub(
        broker,
        "ruuhka/v1/devices/test-rink/rink",
        json.dumps({"seq": 1, "ts": now(), "sensor": "ice", "ice_temp_c": -4.5, "air_temp_c": 1}),
    )
    mosquitto_pub(
        broker,
        "ruuhka/v1/devices/test-cam/snapshot",
        json.dumps({"seq": 1, "ts": now(), "camera": "yard", "people": 3}),
    )
    rink = wait_for(lambda: (f := hub.facility("rink"))["ice_temp_c"] is not None and f, 30)
    assert (rink["ice_temp_c"], rink["air_temp_c"]) == (-4.5, 1.0)
    carpets = wait_for(lambda: (f := hub.facility("carpets"))["people"] is not None and f, 30)
    assert carpets["people"] == 3


def test_bad_input_is_rejected_counted_and_ingest_keeps_going(
    broker: Broker, hub: HubProcess
) -> None:
    mosquitto_pub(broker, GATE, count(10, 50, 40))
    mosquitto_pub(broker, GATE, count(11, 60, 40))
    wait_for(lambda: hub.facility("pool")["occupancy"] == 10, 30, "occupancy 10")

    bad = [
        (GATE, "{not json", "malformed_json"),
        (
            GATE,
            json.dumps({"seq": "x", "ts": now(), "counter": "main", "occupancy": 1}),
            "invalid_payload",
        ),
        (
            GATE,
            json.dumps({"seq": 12, "ts": now(), "counter": "main", "entries": -5, "exits": 0}),
            "invalid_payload",
        ),
        ("ruuhka/v1/devices/stranger/count", count(1, 5, 0), "unknown_device"),
        (GATE, "x" * 5000, "oversized"),
        ("ruuhka/v1/devices/test-gate/count/extra", count(13, 70, 40), "bad_topic"),
        ("ruuhka/v1/devices/Test_Gate/count", count(14, 70, 40), "bad_topic"),
        ("ruuhka/v1/devices/test-gate/weather", count(15, 70, 40), "bad_topic"),
    ]
    for topic, payload, _ in bad:
        mosquitto_pub(broker, topic, payload)
    mosquitto_pub(broker, GATE, count(11, 60, 40))  # duplicate of an accepted reading
    mosquitto_pub(broker, GATE, count(5, 0, 0))  # older than the newest: out of order
    mosquitto_pub(broker, GATE, count(20, 75, 42))  # and then a valid reading

    wait_for(lambda: hub.facility("pool")["occupancy"] == 23, 30, "the valid reading")
    expected: dict[str, int] = {}
    for _, _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    for reason, n in expected.items():
        assert hub.metric("ruuhka_readings_rejected_total", reason=reason) == n, reason
    assert hub.metric("ruuhka_readings_duplicate_total") == 1
    assert hub.metric("ruuhka_readings_out_of_order_total") == 1
    # Rejected payloads left no trace in the state: entries − exits since seq 10.
    assert hub.facility("pool")["occupancy"] == (75 - 50) - (42 - 40)
    status, _ = http_get(hub.url + "/healthz")
    assert status == 200


def test_live_websocket_pushes_a_change_and_the_page_is_server_rendered(
    broker: Broker, hub: HubProcess
) -> None:
    mosquitto_pub(broker, GATE, count(1, 0, 0))
    wait_for(lambda: hub.facility("pool")["updated_at"], 30)
    with ws_connect(hub.url.replace("http", "ws") + "/api/v1/live?lang=en") as ws:
        initial = {}
        while len(initial) < 1:
            message = json.loads(ws.recv(timeout=30))
            initial[message["facility"]["id"]] = message["facility"]
        assert initial["pool"]["name"] == "Swimming hall"
        mosquitto_pub(broker, GATE, count(2, 12, 3))
        while True:
            facility = json.loads(ws.recv(timeout=30))["facility"]
            if facility["id"] == "pool" and facility["occupancy"] == 9:
                break

    status, page = http_get(hub.url + "/?lang=fi")
    assert status == 200
    assert 'lang="fi"' in page and "Uimahalli" in page
    assert '<span class="occupancy">9</span>' in page
    status, page = http_get(hub.url + "/", {"Accept-Language": "en"})
    assert "Swimming hall" in page and 'lang="en"' in page


def test_contract_schema_metrics_and_health(hub: HubProcess) -> None:
    schema = hub.get("/api/v1/contract")
    assert set(schema["streams"]) == {"count", "rink", "snapshot", "status", "heartbeat"}
    for stream in schema["streams"].values():
        assert {"seq", "ts"} <= set(stream["required"])
    _, text = http_get(hub.url + "/metrics")
    assert "ruuhka_readings_accepted_total" in text
    assert "ruuhka_ingest_lag_seconds_bucket" in text
    status, body = http_get(hub.url + "/api/v1/facilities/nope")
    assert status == 404 and "nope" in body
    status, _ = http_get(hub.url + "/api/v1/facilities?lang=xx")
    assert status == 422


def test_a_killed_hub_loses_nothing_and_stores_nothing_twice(
    broker: Broker, hub: HubProcess
) -> None:
    """kill -9 mid-stream: what was not committed was not acked, so it comes again."""
    total = 3000
    published = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="crash-dev")
    client.max_inflight_messages_set(200)
    client.connect(broker.host, broker.port)
    client.loop_start()

    def publish() -> None:
        infos = [client.publish(GATE, count(seq, 2 * seq, seq), qos=1) for seq in range(total)]
        for info in infos:
            info.wait_for_publish(30)
        published.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    wait_for(lambda: hub.metric("ruuhka_readings_accepted_total", stream="count") > 300, 20)
    hub.kill()
    publisher.join(60)
    assert published.is_set()
    client.loop_stop()
    client.disconnect()
    hub.start()
    wait_for(lambda: hub.facility("pool")["occupancy"] == total - 1, 60, "all readings")

    import sqlite3

    db = sqlite3.connect(hub.config.parent / "hub.db")
    rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM readings")
    assert rows.fetchone() == (total, total, 0, total - 1)
