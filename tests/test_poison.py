"""One message cannot stop ingest: poison times, seqs and retained readings are
refused, counted and acknowledged, and the next reading goes through; /healthz
says when the hub cannot take readings."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.ingest import Ingest, Message
from hub.metrics import Metrics
from hub.store import QUARANTINE_PAYLOAD_BYTES
from hub.store.sqlite import SQLiteStore
from ruuhka.broker import Broker
from ruuhka.contract import RESET_SEQ_TOPIC, ResetSeq, Stream, parse_payload
from tests.conftest import HubProcess, http_get, mosquitto_pub, wait_for
from tests.test_fuzz import hub_settings

GATE = "ruuhka/v1/devices/test-gate/count"
RINK = "ruuhka/v1/devices/test-rink/rink"
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "1969-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
]


def now() -> str:
    return datetime.now(UTC).isoformat()


def count(seq: int, entries: int, ts: str | None = None) -> str:
    body = {"seq": seq, "ts": ts or now(), "counter": "main", "entries": entries, "exits": 0}
    return json.dumps(body)


def rink(seq: int, ice: float) -> str:
    return json.dumps({"seq": seq, "ts": now(), "sensor": "ice", "ice_temp_c": ice})


@pytest.mark.parametrize("ts", HOSTILE_TIMES)
def test_the_contract_refuses_times_outside_its_range(ts: str) -> None:
    with pytest.raises(ValueError, match=r"(greater than or equal to 1970|less than 2200)-01-01"):
        parse_payload(Stream.HEARTBEAT, json.dumps({"seq": 1, "ts": ts}))


def test_poison_is_refused_and_ingest_goes_on(broker: Broker, hub: HubProcess) -> None:
    poison = [
        (f"ruuhka/v1/devices/test-{device}/{stream}", json.dumps({"seq": 1, "ts": ts, **extra}))
        for ts in HOSTILE_TIMES
        for device, stream, extra in [
            ("gate", "heartbeat", {}),
            ("gate", "count", {"counter": "main", "occupancy": 1}),
            ("rink", "rink", {"sensor": "ice", "ice_temp_c": -3.0}),
            ("cam", "snapshot", {"camera": "yard", "people": 1}),
        ]
    ]
    for topic, payload in poison:
        mosquitto_pub(broker, topic, payload)
    mosquitto_pub(broker, RINK, rink(1, -3.0))
    mosquitto_pub(broker, RINK, rink(2**63 - 1, -20.0))  # would freeze the rink's figure
    mosquitto_pub(broker, RINK, rink(10, -4.0))
    mosquitto_pub(broker, RINK, rink(11, -5.0))
    mosquitto_pub(broker, GATE, count(1, 100))
    mosquitto_pub(broker, GATE, count(2, 107))
    # Retained: taken now, but it would come back on every subscribe, for ever.
    mosquitto_pub(broker, GATE, count(3, 107), "-r")

    wait_for(lambda: hub.facility("pool")["occupancy"] == 7, 30, "the gate after the poison")
    wait_for(lambda: hub.facility("rink")["ice_temp_c"] == -5.0, 30, "the rink after the jump")
    invalid = hub.metric("ruuhka_readings_rejected_total", reason="invalid_payload")
    assert invalid == len(poison)
    assert hub.metric("ruuhka_readings_rejected_total", reason="seq_jump") == 1
    wait_for(lambda: hub.metric("ruuhka_readings_accepted_total", stream="count") == 3, 30)
    assert http_get(hub.url + "/healthz")[0] == 200

    hub.stop()
    hub.start()  # the retained reading comes back from the broker, and is refused
    wait_for(
        lambda: hub.metric("ruuhka_readings_rejected_total", reason="retained") == 1,
        30,
        "the retained reading refused after the restart",
    )
    assert hub.metric("ruuhka_readings_duplicate_total") == 0
    mosquitto_pub(broker, GATE, count(4, 110))
    wait_for(lambda: hub.facility("pool")["occupancy"] == 10, 30, "a reading after the restart")
    assert hub.facility("rink")["ice_temp_c"] == -5.0

    # Every refusal is in quarantine once, with what the device sent.
    command = [sys.executable, "-m", "ruuhka", "store", "--config", str(hub.config)]
    done = subprocess.run(
        [*command, "quarantine", "--json", "--limit", "100"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert Counter(e["reason"] for e in entries) == {
        "invalid_payload": len(poison),
        "seq_jump": 1,
        "retained": 1,
    }
    jump = next(e for e in entries if e["reason"] == "seq_jump")
    assert jump["device"] == "test-rink" and "after 1" in jump["detail"]
    assert b"9223372036854775807" in base64.b64decode(jump["payload_b64"])
    assert all(e["size"] == len(base64.b64decode(e["payload_b64"])) for e in entries)


def test_a_flood_of_garbage_keeps_a_few_a_minute(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = SQLiteStore(db)
    metrics = Metrics()
    ingest = Ingest(hub_settings(db), store, metrics, on_state=lambda state: None)
    flood = [Message(GATE, b"{not json" + bytes([n]), n, 1, datetime.now(UTC)) for n in range(30)]
    huge = Message(RINK, b"x" * 100_000, 99, 1, datetime.now(UTC))
    try:
        ingest._process([*flood, huge])
        assert metrics.rejected.labels("malformed_json")._value.get() == 30
        assert metrics.quarantine_skipped._value.get() == 20
        kept = store.quarantined()
        assert Counter(q.reason for q in kept) == {"malformed_json": 10, "oversized": 1}
        big = store.quarantined(reason="oversized")[0]
        assert big.size == 100_000 and len(big.payload) == QUARANTINE_PAYLOAD_BYTES
        store.quarantine(kept, keep=3)  # the bound: the oldest go
        assert len(store.quarantined(limit=100)) == 3
    finally:
        store.close()


def test_an_unforeseen_failure_drops_one_message_not_the_worker(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = SQLiteStore(db)
    metrics = Metrics()
    ingest = Ingest(hub_settings(db), store, metrics, on_state=lambda state: None)
    ingest._stop.set()  # no broker: acknowledgements go nowhere

    def fails_on_seq_2(reading, *args):  # a bug that one payload triggers
        if reading.seq == 2:
            raise RuntimeError("unforeseen")
        return original(reading, *args)

    deriver = ingest.derivers["pool"]
    original = deriver.apply
    deriver.apply = fails_on_seq_2
    ingest._stop.clear()
    topic = "ruuhka/v1/devices/gate/count"
    batch = [
        Message(topic, count(seq, 10 * seq).encode(), seq, 1, datetime.now(UTC))
        for seq in (1, 2, 3)
    ]
    try:
        ingest._process_guarded(batch)
        assert metrics.worker_errors._value.get() == 1
        assert metrics.rejected.labels("internal_error")._value.get() == 1
        assert list(store.max_seqs().values()) == [3]
        assert store.count_readings() == 2  # seq 1 and 3 kept, seq 2 dropped and counted
    finally:
        store.close()


def test_health_says_when_the_store_cannot_be_written(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = SQLiteStore(db)
    ingest = Ingest(hub_settings(db), store, Metrics(), on_state=lambda state: None)
    assert ingest.problems() == ["the ingest worker is not running"]
    ingest._stop.set()  # a failing commit gives up at once instead of retrying
    store.close()
    message = Message("ruuhka/v1/devices/gate/count", count(1, 5).encode(), 1, 1, datetime.now(UTC))
    with pytest.raises(Exception, match="closed"):
        ingest._process([message])
    assert "the store cannot be written" in ingest.problems()


def test_health_reports_a_broker_outage_without_failing_readiness(
    broker: Broker, hub_config: Path, hub_port: int, tmp_path: Path
) -> None:
    text = hub_config.read_text(encoding="utf-8")
    hub_config.write_text(
        text.replace("max_payload_bytes", "broker_down_warning_s = 1\nmax_payload_bytes"),
        encoding="utf-8",
    )
    hub = HubProcess(hub_config, hub_port, tmp_path / "hub.log").start()
    try:
        body = json.loads(http_get(hub.url + "/healthz")[1])
        assert body["mqtt_down_s"] == 0 and "warnings" not in body
        broker.stop()

        def warned() -> bool:
            status, text = http_get(hub.url + "/healthz")
            body = json.loads(text)
            return status == 200 and body["mqtt_down_s"] > 1 and "warnings" in body

        wait_for(warned, 20, "a warning while the broker is down, and still ready")
        assert hub.metric("ruuhka_mqtt_down_seconds") > 1
        broker.restart()
        wait_for(
            lambda: json.loads(http_get(hub.url + "/healthz")[1])["mqtt_down_s"] == 0,
            30,
            "the outage over once the hub is back at the broker",
        )
    finally:
        hub.stop()


def test_health_reports_the_oldest_reading_waiting(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = SQLiteStore(db)
    ingest = Ingest(hub_settings(db), store, Metrics(), on_state=lambda state: None)
    try:
        assert ingest.oldest_waiting_s() == 0
        received = datetime.now(UTC) - timedelta(seconds=90)
        ingest._inbox.append(Message(GATE, count(1, 5).encode(), 1, 1, received))
        ingest._inbox.append(Message(GATE, count(2, 6).encode(), 2, 1, datetime.now(UTC)))
        assert 90 <= ingest.oldest_waiting_s() < 100
        assert ingest.waiting() == 2
    finally:
        store.close()


def test_a_reimaged_device_with_a_new_epoch_loses_nothing(broker: Broker, hub: HubProcess) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)

    def send(epoch: str, seq: int, entries: int, minutes: int) -> None:
        at = (start + timedelta(minutes=minutes)).isoformat()
        body = {"seq": seq, "epoch": epoch, "ts": at, "counter": "main", "entries": entries}
        mosquitto_pub(broker, GATE, json.dumps(body | {"exits": 0}))

    for seq in range(1, 6):
        send("a1", seq, 10 * seq, seq)
    wait_for(lambda: hub.facility("pool")["occupancy"] == 40, 30, "the first installation")
    for seq in range(1, 6):  # re-imaged: seq and the counter start again
        send("b2", seq, seq, 10 + seq)
    wait_for(lambda: hub.facility("pool")["occupancy"] == 45, 30, "the new installation")
    assert hub.metric("ruuhka_readings_accepted_total", stream="count") == 10
    assert hub.metric("ruuhka_readings_duplicate_total") == 0


@pytest.mark.parametrize("epoch", [None, "e1"])
def test_reset_seq_lets_a_device_start_again_from_seq_1(
    broker: Broker, hub: HubProcess, epoch: str | None
) -> None:
    """A device whose first reading carried seq 5000: its readings from seq 1 on are
    out of order until the operator's reset reaches the hub, and shown after it."""

    def ice(seq: int, celsius: float) -> None:
        body = {"seq": seq, "ts": now(), "sensor": "ice", "ice_temp_c": celsius}
        mosquitto_pub(broker, RINK, json.dumps(body | ({"epoch": epoch} if epoch else {})))

    ice(5000, -20.0)
    wait_for(lambda: hub.facility("rink")["ice_temp_c"] == -20.0, 30, "seq 5000")
    ice(1, -4.0)
    wait_for(lambda: hub.metric("ruuhka_readings_out_of_order_total") == 1, 30, "seq 1")
    assert hub.facility("rink")["ice_temp_c"] == -20.0  # held at seq 5000
    reset = ResetSeq(device="test-rink", at=datetime.now(UTC))
    mosquitto_pub(broker, RESET_SEQ_TOPIC, reset.model_dump_json())
    wait_for(lambda: "reset by an operator" in hub.log.read_text(), 30, "the reset")
    for seq, celsius in [(2, -5.0), (3, -6.0)]:
        ice(seq, celsius)
    wait_for(lambda: hub.facility("rink")["ice_temp_c"] == -6.0, 30, "seq 2 and 3 shown")
    assert hub.metric("ruuhka_readings_out_of_order_total") == 1
    assert hub.metric("ruuhka_readings_accepted_total", stream="rink") == 4
