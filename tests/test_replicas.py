"""Three hub replicas on one Mosquitto and one store: each reading stored once,
each facility derived by one replica, every replica's browsers see the same end state."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError
from websockets.sync.client import connect

from hub.config import IngestSettings
from hub.replicas import REPLICA_PROPERTY, owner_of
from ruuhka.broker import Broker, free_port
from ruuhka.contract import RESET_SEQ_TOPIC, TOPIC_ROOT, ResetSeq, Stream, device_topic
from ruuhka.local_hub import local_hub_toml
from tests.conftest import HUB_CONFIG, HubProcess, http_get, mosquitto_pub, wait_for
from tests.test_device_acl import add_quietly, production_broker
from tests.test_device_acl import connect as acl_connect

REPLICAS = ["hub-a", "hub-b", "hub-c"]
READINGS = 3000
GATE_FACILITIES = 5  # two gate counters each
GATES = [f"gate-{i}" for i in range(2 * GATE_FACILITIES)]
DEVICES = [*GATES, "rink-sensor", "gym-desk"]
PER_DEVICE = READINGS // len(DEVICES)
INTRUDED_READINGS = 1000

CONFIG_HEAD = local_hub_toml(
    "{mqtt_url}",
    "{db}",
    "{port}",
    "replica-test",
    http="api_rate_per_s = 0",
    ingest='shared_group = "ruuhka-hub"\nreplica_id = "{replica}"\nreplicas = {replicas}',
)

FACILITY = """
[[facilities]]
id = "{id}"
kind = "{kind}"
capacity = 1000
name = {{ en = "{id}" }}
"""

SOURCE = """[[facilities.sources]]
device = "{device}"
"""


def config_text(broker: Broker, db: Path, port: int, replica: str) -> str:
    text = CONFIG_HEAD.format(
        mqtt_url=broker.url, db=db, port=port, replica=replica, replicas=json.dumps(REPLICAS)
    )
    for f in range(GATE_FACILITIES):
        text += FACILITY.format(id=f"hall-{f}", kind="swimming_hall")
        text += SOURCE.format(device=GATES[2 * f]) + SOURCE.format(device=GATES[2 * f + 1])
    text += FACILITY.format(id="rink", kind="ice_rink") + SOURCE.format(device="rink-sensor")
    text += FACILITY.format(id="gym", kind="gym") + SOURCE.format(device="gym-desk")
    return text


def payload(device: str, k: int, ts: str) -> dict[str, Any]:
    """The k-th reading (k = 0, 1, ...) of a device; seq = k + 1."""
    body: dict[str, Any] = {"seq": k + 1, "ts": ts}
    if device in GATES:
        d = GATES.index(device)
        body |= {"counter": "main", "entries": (d + 2) * k, "exits": (d + 1) * k}
    elif device == "rink-sensor":
        body |= {"sensor": "ice", "ice_temp_c": -5 - (k % 10) / 10, "air_temp_c": 5 + k / 100}
    else:
        body |= {"counter": "desk", "occupancy": k % 37}
    return body


def expected_states() -> dict[str, dict[str, Any]]:
    """What a single hub folding each device's readings in order would show."""
    last = PER_DEVICE - 1
    out: dict[str, dict[str, Any]] = {
        # Each gate's first reading is its baseline; net = k_last - k_first per gate.
        f"hall-{f}": {"occupancy": 2 * last}
        for f in range(GATE_FACILITIES)
    }
    rink = payload("rink-sensor", last, "")
    out["rink"] = {"ice_temp_c": rink["ice_temp_c"], "air_temp_c": rink["air_temp_c"]}
    out["gym"] = {"occupancy": last % 37}
    return out


def matches(shown: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(shown.get(key) == value for key, value in expected.items())


class LiveWatcher:
    """A browser stand-in: keeps the newest message per facility from one replica."""

    def __init__(self, url: str) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.messages = 0
        self.socket = connect(url, open_timeout=10)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.socket:
                facility = json.loads(text)["facility"]
                self.latest[facility["id"]] = facility
                self.messages += 1
        except Exception:  # closed at the end of the test
            return

    def close(self) -> None:
        self.socket.close()
        self.thread.join(5)


class StateWatcher:
    """Every state published on the broker: which replica, which revision, what content."""

    def __init__(self, broker: Broker) -> None:
        self.published: dict[str, list[tuple[str | None, dict[str, Any]]]] = defaultdict(list)
        self.ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.on_connect = lambda c, *_: c.subscribe("ruuhka/v1/facilities/+/state", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.ready.wait(10), "no SUBACK for the state watcher"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return
        replica = dict(getattr(msg.properties, "UserProperty", None) or []).get(REPLICA_PROPERTY)
        state = json.loads(msg.payload)
        self.published[state["facility"]].append((replica, state))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(broker: Broker) -> None:
    """The workload, round-robin over the devices, QoS 1, as fast as the broker takes it;
    then every device sends one old reading again, as an edge agent does when a PUBACK
    was lost (stored already, and it must not move the state back)."""
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for k in [*range(PER_DEVICE), PER_DEVICE // 2]:
            for device in DEVICES:
                stream = Stream.RINK if device == "rink-sensor" else Stream.COUNT
                body = json.dumps(payload(device, k, ts))
                infos.append(client.publish(device_topic(device, stream), body, qos=1))
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()


def accepted(hub: HubProcess) -> float:
    _, text = http_get(hub.url + "/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ruuhka_readings_accepted_total{")
    )


@contextmanager
def running_replicas(tmp_path: Path, broker: Broker) -> Iterator[tuple[Path, list[HubProcess]]]:
    """The three replicas on one shared store, each with its owner session subscribed."""
    db = tmp_path / "shared.db"
    hubs = []
    try:
        for replica in REPLICAS:
            port = free_port()
            config = tmp_path / f"{replica}.toml"
            config.write_text(config_text(broker, db, port, replica), encoding="utf-8")
            hubs.append(HubProcess(config, port, tmp_path / f"{replica}.log").start())
        for hub in hubs:
            wait_for(
                lambda hub=hub: hub.metric("ruuhka_replica_derive_connected") == 1,
                30,
                "the owner session's subscriptions",
            )
        yield db, hubs
    finally:
        for hub in hubs:
            hub.stop()


@pytest.fixture
def replicas(tmp_path: Path, broker: Broker) -> Iterator[tuple[Path, list[HubProcess]]]:
    with running_replicas(tmp_path, broker) as running:
        yield running


def live_url(hub: HubProcess) -> str:
    return f"ws://127.0.0.1:{hub.port}/api/v1/live?lang=en"


@pytest.mark.parametrize("crash", [False, True], ids=["steady", "an-owner-killed-midway"])
def test_three_replicas_store_each_reading_once_and_agree(
    replicas: Any, broker: Broker, crash: bool
) -> None:
    db, hubs = replicas
    expected = expected_states()
    states = StateWatcher(broker)
    browsers = [LiveWatcher(live_url(hub)) for hub in hubs]

    def stored() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])

    failures: list[BaseException] = []

    def publish() -> None:
        try:
            publish_all(broker)
        except BaseException as exc:
            failures.append(exc)

    publisher = threading.Thread(target=publish)
    try:
        publisher.start()
        if crash:
            # SIGKILL an owner with readings in flight on both of its sessions; the
            # broker redelivers what it had not acked, and it carries on from the store.
            victim = REPLICAS.index(owner_of("hall-0", REPLICAS))
            wait_for(lambda: stored() >= READINGS // 10, 60, "the first readings stored")
            hubs[victim].kill()
            browsers[victim].close()
            hubs[victim].start()
            browsers[victim] = LiveWatcher(live_url(hubs[victim]))
        publisher.join(120)
        assert not publisher.is_alive() and not failures, failures
        wait_for(lambda: stored() == READINGS, 120, f"{READINGS} readings in the store")
        for number, browser in enumerate(browsers):
            wait_for(
                lambda b=browser: all(
                    matches(b.latest.get(f, {}), want) for f, want in expected.items()
                ),
                120,
                f"every facility's final state on replica {REPLICAS[number]}'s WebSocket",
            )
    finally:
        for browser in browsers:
            browser.close()

    # Stored exactly once: every key there, and each reading accepted by one replica only.
    with sqlite3.connect(db) as conn:
        keys = set(conn.execute("SELECT device, seq FROM readings").fetchall())
        saved = {
            facility: json.loads(state)
            for facility, state in conn.execute("SELECT facility, state FROM facility_state")
        }
    assert keys == {(d, k + 1) for d in DEVICES for k in range(PER_DEVICE)}
    counts = [accepted(hub) for hub in hubs]
    if not crash:  # a killed replica's counters start again from zero
        assert sum(counts) == READINGS, counts
    assert all(count > 0 for count in counts), f"the shared subscription did not spread: {counts}"

    # The store holds the same final states the browsers see.
    for facility, want in expected.items():
        assert matches(saved[facility], want), (facility, saved[facility])
        for browser in browsers:
            shown = browser.latest[facility]
            assert shown["updated_at"] is not None
            assert datetime.fromisoformat(shown["updated_at"]) == datetime.fromisoformat(
                saved[facility]["updated_at"]
            )

    # One publisher per facility (its owner), revisions strictly increasing, and the
    # last one published is the one stored: no conflicting occupancy, ever.
    wait_for(
        lambda: all(
            states.published[f] and states.published[f][-1][1]["revision"] == saved[f]["revision"]
            for f in expected
        ),
        30,
        "the final revisions on the state topics",
    )
    states.stop()
    owners = set()
    for facility in expected:
        publishes = states.published[facility]
        publishers = {replica for replica, _ in publishes}
        assert publishers == {owner_of(facility, REPLICAS)}, (facility, publishers)
        owners |= publishers
        revisions = [state["revision"] for _, state in publishes]
        assert revisions == sorted(set(revisions)), (facility, revisions)
    assert len(owners) > 1, "one replica derived everything; the partition is not spread"
    for hub in hubs:
        assert hub.metric("ruuhka_replica_state_conflicts_total") == 0
    if not crash:
        resent = sum(hub.metric("ruuhka_readings_duplicate_total") for hub in hubs)
        assert resent == len(DEVICES)


def test_each_facility_has_one_owner_and_a_new_replica_takes_only_its_share() -> None:
    facilities = [f"facility-{i}" for i in range(300)]
    three = {f: owner_of(f, ["a", "b", "c"]) for f in facilities}
    four = {f: owner_of(f, ["a", "b", "c", "d"]) for f in facilities}
    moved = [f for f in facilities if three[f] != four[f]]
    assert all(four[f] == "d" for f in moved), "a facility moved between old replicas"
    assert 40 < len(moved) < 110, len(moved)  # about a quarter
    assert min(Counter(three.values()).values()) > 60  # about a third each
    assert all(owner_of(f, ["c", "a", "b"]) == three[f] for f in facilities)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"shared_group": "g"}, "needs replica_id"),
        ({"shared_group": "g", "replica_id": "a", "replicas": ["b"]}, "is not in replicas"),
        ({"shared_group": "g", "replica_id": "a", "replicas": ["a", "a"]}, "appears twice"),
        ({"replica_id": "a", "replicas": ["a"]}, "need shared_group"),
    ],
)
def test_replica_settings_must_agree(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IngestSettings(**fields)


def test_two_replicas_on_the_production_broker_configuration(tmp_path: Path) -> None:
    """Mosquitto as deployed (dynamic security, user name = client id): each replica's
    two sessions log in with their own hub accounts, the shared subscription is allowed,
    and a device that subscribes to the hubs' group takes no reading away."""
    names = ["hub-a", "hub-b"]
    with production_broker(tmp_path) as (broker, _, _):
        port = broker.port
        access = tmp_path / "access"
        passwords = {
            account: add_quietly(access, port, "add-hub", account)
            for name in names
            for account in (name, f"{name}-derive")
        }
        for device in ("test-gate", "intruder"):
            passwords[device] = add_quietly(access, port, "add", device, "--facility", "pool")
        intruder = acl_connect(port, "intruder", passwords["intruder"])
        refused = intruder.subscribe(f"$share/ruuhka-hub/{TOPIC_ROOT}/devices/#")
        assert [code.value for code in refused] == [0x87]
        hubs = []
        try:
            for name in names:
                hub_port = free_port()
                config = tmp_path / f"{name}.toml"
                text = HUB_CONFIG.format(
                    mqtt_url=f"mqtt://127.0.0.1:{port}",
                    db=tmp_path / "shared.db",
                    port=hub_port,
                    client_id="ignored-the-broker-uses-the-user-name",
                ).replace(
                    "[mqtt]\n",
                    f'[mqtt]\nusername = "{name}"\npassword = "{passwords[name]}"\n',
                    1,
                )
                text = text.replace(
                    "[ingest]\n",
                    f'[ingest]\nshared_group = "ruuhka-hub"\nreplica_id = "{name}"\n'
                    f"replicas = {json.dumps(names)}\n"
                    f'derive_username = "{name}-derive"\n'
                    f'derive_password = "{passwords[name + "-derive"]}"\n',
                    1,
                )
                text = text.replace("[http]\n", "[http]\napi_rate_per_s = 0\n", 1)
                config.write_text(text, encoding="utf-8")
                config.chmod(0o600)
                hubs.append(HubProcess(config, hub_port, tmp_path / f"{name}.log").start())
            for hub in hubs:
                wait_for(
                    lambda hub=hub: hub.metric("ruuhka_replica_derive_connected") == 1,
                    30,
                    "the owner session's subscriptions",
                )
            gate = acl_connect(port, "test-gate", passwords["test-gate"])
            try:
                for seq in range(1, INTRUDED_READINGS + 1):
                    body = {"seq": seq, "ts": datetime.now(UTC).isoformat(), "counter": "main"}
                    body |= {"entries": 10 * seq, "exits": 9 * seq}
                    gate.publish("ruuhka/v1/devices/test-gate/count", json.dumps(body).encode())
            finally:
                gate.close()
            last = INTRUDED_READINGS - 1
            for hub in hubs:
                wait_for(lambda h=hub: h.facility("pool")["occupancy"] == last, 60, "occupancy")
            stored = [accepted(hub) for hub in hubs]
            assert sum(stored) == INTRUDED_READINGS and all(stored), stored
            assert intruder.messages == []
            for hub in hubs:
                log = hub.log.read_text()
                assert "refused" not in log and "disconnected" not in log, log[-2000:]
        finally:
            for hub in hubs:
                hub.stop()


def test_a_seq_reset_reaches_every_replica(replicas: Any, broker: Broker) -> None:
    """A rink sensor whose first reading carried an absurd seq: each replica that
    stores a later one counts it out of order, and the facility's owner does not
    show it. One reset on the control topic (what ``ruuhka device reset-seq``
    sends) and the next reading is shown by all three, whichever replica the
    shared subscription hands it to."""
    _, hubs = replicas

    def ice(seq: int, celsius: float) -> None:
        body = {"seq": seq, "ts": datetime.now(UTC).isoformat(), "sensor": "ice"}
        body["ice_temp_c"] = celsius
        mosquitto_pub(broker, device_topic("rink-sensor", Stream.RINK), json.dumps(body))

    ice(2**63 - 1, -20.0)
    for hub in hubs:
        wait_for(lambda h=hub: h.facility("rink")["ice_temp_c"] == -20.0, 20, "the absurd one")
    for seq in range(10, 16):
        ice(seq, -4.0)
    wait_for(
        lambda: sum(h.metric("ruuhka_readings_accepted_total", stream="rink") for h in hubs) >= 7,
        20,
        "the later readings stored",
    )
    assert all(h.facility("rink")["ice_temp_c"] == -20.0 for h in hubs)  # frozen
    reset = ResetSeq(device="rink-sensor", at=datetime.now(UTC)).model_dump_json()
    mosquitto_pub(broker, RESET_SEQ_TOPIC, reset)
    for hub in hubs:
        wait_for(lambda h=hub: "reset by an operator" in h.log.read_text(), 20, "the reset")
    for seq, celsius in enumerate([-5.0, -6.0, -7.0, -8.0, -9.0, -10.0], start=16):
        ice(seq, celsius)
    for hub in hubs:
        wait_for(lambda h=hub: h.facility("rink")["ice_temp_c"] == -10.0, 20, "shown after it")
