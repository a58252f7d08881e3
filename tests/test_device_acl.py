"""Device identity on the broker: the real Mosquitto with the generated configuration."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from hub.config import HubSettings
from hub.ingest import Ingest, Message
from hub.metrics import Metrics
from hub.store.sqlite import SQLiteStore
from ruuhka.broker import Broker, free_port, free_ports, start_broker
from ruuhka.broker_access import (
    MosquittoConfig,
    find_plugin,
    hash_password,
    load_registry,
    mosquitto_conf,
)
from ruuhka.cli import main
from tests.conftest import HUB_CONFIG, HubProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
NOT_AUTHORIZED = 0x87


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def count(seq: int, entries: int, exits: int, **extra: Any) -> bytes:
    body = {"seq": seq, "ts": now(), "counter": "main", "entries": entries, "exits": exits}
    return json.dumps({**body, **extra}).encode()


# Certificates made here, for this test only -----------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    directory: Path, name: str
) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(
    directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[Path, Path]:
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# An MQTT v5 client that records what the broker said --------------------------


@dataclass
class Probe:
    client: mqtt.Client
    connack: ReasonCode | None = None
    disconnected: ReasonCode | None = None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    connected: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return wait_for(lambda: self.pubacks.get(info.mid), 10, f"PUBACK for {topic}")

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        _, mid = self.client.subscribe([(t, 1) for t in topics])
        return wait_for(lambda: self.subacks.get(mid), 10, "SUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    username: str | None = None,
    password: str | None = None,
    client_id: str = "",
    ca: Path | None = None,
) -> Probe:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or f"probe-{os.urandom(4).hex()}",
        protocol=mqtt.MQTTv5,
    )
    probe = Probe(client)
    if username is not None:
        client.username_pw_set(username, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: ReasonCode, p: object) -> None:
        probe.connack = rc
        probe.answered.set()
        if not rc.is_failure:
            probe.connected.set()

    def on_disconnect(c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        probe.disconnected = rc
        probe.connected.clear()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = lambda c, u, m: probe.messages.append((m.topic, m.payload))
    client.on_publish = lambda c, u, mid, rc, p: probe.pubacks.__setitem__(mid, rc)
    client.on_subscribe = lambda c, u, mid, rcs, p: probe.subacks.__setitem__(mid, rcs)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not probe.answered.wait(10):
        probe.close()
        raise AssertionError("no CONNACK within 10 s")
    if probe.connack is not None and probe.connack.is_failure:
        probe.close()
    return probe


def accepted(port: int, username: str, password: str) -> bool:
    probe = connect(port, username, password)
    probe.close()
    return probe.connack is not None and not probe.connack.is_failure


# The broker, configured as in production ----------------------------------------


@dataclass
class SecuredBroker:
    broker: Broker
    access_dir: Path
    tls_port: int
    ca: Path
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.broker.port

    def device(self, *args: str) -> int:
        return main(["device", *args, *access_options(self.access_dir, self.port)])

    def add(self, capsys: pytest.CaptureFixture[str], *args: str) -> str:
        """``ruuhka device add ...``; returns the password it printed."""
        assert self.device(*args) == 0
        out = capsys.readouterr().out
        match = re.search(r'password = "([^"]+)"|RUUHKA_MQTT__PASSWORD=(\S+)', out)
        assert match, out
        return match.group(1) or match.group(2)


def access_options(directory: Path, port: int) -> list[str]:
    return ["--dir", str(directory), "--control-url", f"mqtt://127.0.0.1:{port}"]


def add_quietly(directory: Path, port: int, *args: str) -> str:
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        assert main(["device", *args, *access_options(directory, port)]) == 0
    match = re.search(r'password = "([^"]+)"|RUUHKA_MQTT__PASSWORD=(\S+)', out.getvalue())
    assert match
    return match.group(1) or match.group(2)


@contextmanager
def production_broker(tmp_path: Path, *init_args: str) -> Iterator[tuple[Broker, int, Path]]:
    """Mosquitto with the generated configuration, after ``ruuhka device init``;
    yields the broker, its TLS port and the CA that signed its certificate."""
    access = tmp_path / "access"
    plugin_file = tmp_path / "dynamic-security.json"
    init = ["device", "init", "--dir", str(access), "--plugin-file", str(plugin_file)]
    assert main([*init, *init_args]) == 0
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, ca_key, ca_cert = make_ca(certs, "test-ca")
    certfile, keyfile = make_server_cert(certs, ca_key, ca_cert)
    port, tls_port = free_ports(2)
    config = MosquittoConfig(
        plugin=find_plugin(),
        plugin_file=plugin_file,
        tls_port=tls_port,
        certfile=certfile,
        keyfile=keyfile,
        local_port=port,
    )
    with start_broker(
        tmp_path / "broker", port=port, prefer="mosquitto", listeners=mosquitto_conf(config)
    ) as broker:
        yield broker, tls_port, ca


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with production_broker(tmp_path) as (broker, tls_port, ca):
        access = tmp_path / "access"
        passwords = {
            "ruuhka-hub": add_quietly(access, broker.port, "add-hub", "ruuhka-hub"),
            "test-gate": add_quietly(access, broker.port, "add", "test-gate", "--facility", "pool"),
            "test-rink": add_quietly(access, broker.port, "add", "test-rink", "--facility", "rink"),
        }
        yield SecuredBroker(broker, access, tls_port, ca, passwords)


@pytest.fixture
def hub_probe(secured: SecuredBroker) -> Iterator[Probe]:
    # The hub's default client id, which a device could otherwise claim too.
    probe = connect(secured.port, "ruuhka-hub", secured.passwords["ruuhka-hub"], "ruuhka-hub")
    granted = probe.subscribe("ruuhka/v1/devices/#", "ruuhka/v1/facilities/+/state")
    assert [code.value for code in granted] == [1, 1]
    yield probe
    probe.close()


def test_the_deployed_configuration_is_the_generated_one() -> None:
    deployed = (ROOT / "deploy" / "mosquitto" / "ruuhka.conf").read_text(encoding="utf-8")
    assert deployed == mosquitto_conf(MosquittoConfig())
    assert "allow_anonymous true" not in deployed
    assert "allow_anonymous false" in deployed and "per_listener_settings false" in deployed
    assert deployed.count("\nlistener ") == 2


def test_anonymous_and_wrong_passwords_are_refused(secured: SecuredBroker) -> None:
    anonymous = connect(secured.port)
    assert anonymous.connack is not None and anonymous.connack.value == NOT_AUTHORIZED
    wrong = connect(secured.port, "test-gate", "not-the-password")
    assert wrong.connack is not None and wrong.connack.is_failure
    unknown = connect(secured.port, "nobody", secured.passwords["test-gate"])
    assert unknown.connack is not None and unknown.connack.is_failure


def test_a_device_publishes_only_under_its_own_id(secured: SecuredBroker, hub_probe: Probe) -> None:
    gate = connect(secured.port, "test-gate", secured.passwords["test-gate"])
    try:
        assert gate.connected.is_set()
        forged = gate.publish("ruuhka/v1/devices/test-rink/rink", b'{"forged": 1}')
        assert forged.value == NOT_AUTHORIZED
        state = gate.publish("ruuhka/v1/facilities/pool/state", b'{"facility": "pool"}', True)
        assert state.value == NOT_AUTHORIZED
        outside = gate.publish("elsewhere/topic", b"x")
        assert outside.value == NOT_AUTHORIZED
        own = gate.publish("ruuhka/v1/devices/test-gate/count", count(1, 5, 1))
        assert not own.is_failure
        # The broker handles one connection's packets in order: once the hub has
        # the device's own reading, the refused ones would have arrived before it.
        wait_for(lambda: hub_probe.messages, 10, "the device's own reading at the hub")
        assert [topic for topic, _ in hub_probe.messages] == ["ruuhka/v1/devices/test-gate/count"]
    finally:
        gate.close()


def test_only_the_hub_publishes_facility_state_and_a_device_receives_nothing(
    secured: SecuredBroker, hub_probe: Probe
) -> None:
    gate = connect(secured.port, "test-gate", secured.passwords["test-gate"])
    rink = connect(secured.port, "test-rink", secured.passwords["test-rink"])
    try:
        refused = gate.subscribe(
            "#",
            "$SYS/#",
            "ruuhka/v1/devices/test-gate/#",
            "ruuhka/v1/facilities/#",
            "$share/ruuhka-hub/ruuhka/v1/devices/#",
            "$CONTROL/dynamic-security/v1/#",
        )
        assert [code.value for code in refused] == [NOT_AUTHORIZED] * 6
        state = b'{"facility": "pool", "revision": 1}'
        assert not hub_probe.publish("ruuhka/v1/facilities/pool/state", state).is_failure
        assert not rink.publish("ruuhka/v1/devices/test-rink/heartbeat", b"{}").is_failure
        assert not gate.publish("ruuhka/v1/devices/test-gate/heartbeat", b"{}").is_failure
        # Anything queued for the device would have come before its own PUBACK.
        assert not gate.publish("ruuhka/v1/devices/test-gate/heartbeat", b"{}").is_failure
        wait_for(lambda: len(hub_probe.messages) == 4, 10, "all four messages at the hub")
        assert gate.messages == []
    finally:
        gate.close()
        rink.close()


def test_a_device_cannot_take_over_the_hubs_session(
    secured: SecuredBroker, hub_probe: Probe
) -> None:
    thief = connect(secured.port, "test-gate", secured.passwords["test-gate"], "ruuhka-hub")
    try:
        assert thief.connected.is_set()
        assert not thief.publish("ruuhka/v1/devices/test-gate/heartbeat", b"{}").is_failure
        wait_for(lambda: hub_probe.messages, 10, "the heartbeat at the hub")
        assert hub_probe.connected.is_set() and hub_probe.disconnected is None
    finally:
        thief.close()


def test_a_revoked_device_is_refused_and_cut_off(
    secured: SecuredBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    old = secured.passwords["test-gate"]
    gate = connect(secured.port, "test-gate", old)
    assert gate.connected.is_set()
    assert secured.device("revoke", "test-gate") == 0
    assert "revoked test-gate" in capsys.readouterr().out
    wait_for(lambda: not gate.connected.is_set(), 10, "the broker to drop the revoked device")
    gate.close()
    again = connect(secured.port, "test-gate", old)
    assert again.connack is not None and again.connack.is_failure
    assert "test-gate" not in load_registry(secured.access_dir / "accounts.toml").accounts
    # Re-adding gives a new password; the old one stays refused.
    new = secured.add(capsys, "add", "test-gate", "--facility", "pool")
    assert new != old
    wait_for(lambda: accepted(secured.port, "test-gate", new), 10, "the re-added device")
    assert not accepted(secured.port, "test-gate", old)


def test_rotate_replaces_the_password(
    secured: SecuredBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    old = secured.passwords["test-rink"]
    assert secured.device("add", "test-rink", "--facility", "rink") == 1
    assert "--rotate" in capsys.readouterr().err
    new = secured.add(capsys, "add", "test-rink", "--facility", "rink", "--rotate")
    wait_for(lambda: not accepted(secured.port, "test-rink", old), 10, "the old one refused")
    assert accepted(secured.port, "test-rink", new)


def test_tls_with_a_ca_made_in_the_test(secured: SecuredBroker, hub_probe: Probe) -> None:
    device = connect(secured.tls_port, "test-gate", secured.passwords["test-gate"], ca=secured.ca)
    try:
        assert device.connected.is_set()
        assert not device.publish("ruuhka/v1/devices/test-gate/count", count(1, 1, 0)).is_failure
        wait_for(lambda: hub_probe.messages, 10, "the TLS reading at the hub")
    finally:
        device.close()
    other_ca, _, _ = make_ca(secured.ca.parent, "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(secured.tls_port, "test-gate", secured.passwords["test-gate"], ca=other_ca)
    anonymous = connect(secured.tls_port, ca=secured.ca)
    assert anonymous.connack is not None and anonymous.connack.is_failure


def test_registry_files_and_list(
    secured: SecuredBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = load_registry(secured.access_dir / "accounts.toml")
    assert {n: (a.role, a.facility) for n, a in registry.accounts.items()} == {
        "ruuhka-hub": ("hub", None),
        "test-gate": ("device", "pool"),
        "test-rink": ("device", "rink"),
    }
    assert (secured.access_dir / "accounts.toml").stat().st_mode & 0o777 == 0o640
    assert (secured.access_dir / "admin.toml").stat().st_mode & 0o777 == 0o600
    plugin_file = secured.access_dir.parent / "dynamic-security.json"
    assert plugin_file.stat().st_mode & 0o777 == 0o600
    registry = (secured.access_dir / "accounts.toml").read_text()
    assert all(p not in registry for p in secured.passwords.values())
    assert secured.device("list") == 0
    listing = capsys.readouterr().out
    assert re.search(r"test-gate\s+device\s+pool\s+\S+\s+yes", listing)
    assert "ruuhka-admin" not in listing
    assert secured.device("add", "Bad_Id", "--facility", "pool") == 1
    assert secured.device("revoke", "nobody") == 1
    assert "no account 'nobody'" in capsys.readouterr().err


def test_the_hub_on_the_secured_broker(secured: SecuredBroker, tmp_path: Path) -> None:
    """The real hub with its own account: readings in, state out, forgeries dropped."""
    hub_port = free_port()
    config = tmp_path / "hub.toml"
    hub_password = secured.passwords["ruuhka-hub"]
    text = HUB_CONFIG.format(
        mqtt_url=f"mqtt://127.0.0.1:{secured.port}",
        db=tmp_path / "hub.db",
        port=hub_port,
        client_id="ignored-the-broker-uses-the-user-name",
    ).replace("[mqtt]\n", f'[mqtt]\nusername = "ruuhka-hub"\npassword = "{hub_password}"\n', 1)
    config.write_text(text, encoding="utf-8")
    config.chmod(0o644)
    hub = HubProcess(config, hub_port, tmp_path / "hub.log").start()
    gate = connect(secured.port, "test-gate", secured.passwords["test-gate"])
    rink = connect(secured.port, "test-rink", secured.passwords["test-rink"])
    try:
        gate.publish("ruuhka/v1/devices/test-gate/count", count(1, 100, 90))
        gate.publish("ruuhka/v1/devices/test-gate/count", count(2, 107, 92))
        wait_for(lambda: hub.facility("pool")["occupancy"] == 5, 10, "occupancy 5")
        forged = rink.publish("ruuhka/v1/devices/test-gate/count", count(3, 500, 0))
        assert forged.value == NOT_AUTHORIZED
        claimed = gate.publish(
            "ruuhka/v1/devices/test-gate/count", count(4, 300, 0, device="test-rink")
        )
        assert not claimed.is_failure  # the broker cannot see inside; the hub can
        wait_for(
            lambda: hub.metric("ruuhka_readings_rejected_total", reason="device_mismatch") == 1,
            10,
            "the device_mismatch rejection",
        )
        gate.publish("ruuhka/v1/devices/test-gate/count", count(5, 108, 92, device="test-gate"))
        wait_for(lambda: hub.facility("pool")["occupancy"] == 6, 10, "occupancy 6")
        assert hub.metric("ruuhka_readings_accepted_total", stream="count") == 3
    finally:
        gate.close()
        rink.close()
        hub.stop()
    log = (tmp_path / "hub.log").read_text()
    assert "holds secrets (mqtt.password)" in log
    assert all(p not in log for p in secured.passwords.values())


def test_a_payload_claiming_another_device_changes_nothing(tmp_path: Path) -> None:
    settings = HubSettings(
        store={"url": f"sqlite:///{tmp_path / 'hub.db'}"},
        facilities=[
            {
                "id": "pool",
                "kind": "swimming_hall",
                "name": {"en": "Pool"},
                "sources": [{"device": "test-gate"}, {"device": "test-rink"}],
            }
        ],
    )
    store = SQLiteStore(tmp_path / "hub.db")
    metrics = Metrics()
    ingest = Ingest(settings, store, metrics, on_state=lambda state: None)
    received = dt.datetime.now(dt.UTC)

    def message(device: str, payload: bytes) -> Message:
        return Message(f"ruuhka/v1/devices/{device}/count", payload, 1, 1, received)

    try:
        ingest._process([message("test-gate", count(1, 10, 0))])
        before = (store.count_readings(), ingest.derivers["pool"].state.model_dump())
        ingest._process([message("test-gate", count(2, 50, 0, device="test-rink"))])
        assert metrics.rejected.labels("device_mismatch")._value.get() == 1
        assert (store.count_readings(), ingest.derivers["pool"].state.model_dump()) == before
        ingest._process([message("test-gate", count(2, 12, 0, device="test-gate"))])
        assert store.count_readings() == 2
        assert ingest.derivers["pool"].state.occupancy == 2
    finally:
        store.close()


def test_a_broker_on_password_files_moves_over_with_its_passwords(tmp_path: Path) -> None:
    """``ruuhka device init --from-passwd``: the accounts of a password-file broker keep
    their passwords, and the device's SUBSCRIBE to the hubs' group is now refused."""
    access = tmp_path / "access"
    access.mkdir()
    created = "2026-01-01T00:00:00+00:00"
    (access / "accounts.toml").write_text(
        f'[accounts.old-gate]\nrole = "device"\nfacility = "pool"\ncreated = {created}\n'
        f'[accounts.ruuhka-hub]\nrole = "hub"\ncreated = {created}\n',
        encoding="utf-8",
    )
    passwd = tmp_path / "passwd"
    passwd.write_text(
        f"old-gate:{hash_password('gate-password-1234')}\n"
        f"ruuhka-hub:{hash_password('hub-password-12345')}\n"
        f"stranger:{hash_password('not-in-the-registry')}\n",
        encoding="utf-8",
    )
    with production_broker(tmp_path, "--from-passwd", str(passwd)) as (broker, _, _):
        assert accepted(broker.port, "old-gate", "gate-password-1234")
        assert accepted(broker.port, "ruuhka-hub", "hub-password-12345")
        assert not accepted(broker.port, "stranger", "not-in-the-registry")
        gate = connect(broker.port, "old-gate", "gate-password-1234")
        try:
            refused = gate.subscribe("$share/ruuhka-hub/ruuhka/v1/devices/#")
            assert [code.value for code in refused] == [NOT_AUTHORIZED]
        finally:
            gate.close()
    again = ["device", "init", "--dir", str(access)]
    assert main([*again, "--plugin-file", str(tmp_path / "dynamic-security.json")]) == 1


def test_changes_need_the_broker_and_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    access = tmp_path / "access"
    options = access_options(access, free_port())
    assert main(["device", "add", "gate", "--facility", "pool", *options]) == 1
    assert "ruuhka device init" in capsys.readouterr().err
    plugin_file = ["--plugin-file", str(tmp_path / "dynamic-security.json")]
    assert main(["device", "init", "--dir", str(access), *plugin_file]) == 0
    assert main(["device", "add", "gate", "--facility", "pool", *options]) == 1
    assert "cannot reach the broker" in capsys.readouterr().err
    assert load_registry(access / "accounts.toml").accounts == {}


def test_clear_retained_removes_what_a_device_left_on_the_broker(
    secured: SecuredBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = connect(secured.port, "test-gate", secured.passwords["test-gate"])
    rink = connect(secured.port, "test-rink", secured.passwords["test-rink"])
    try:
        poison = b'{"seq": 1, "ts": "0001-01-01T00:00:00+01:00"}'
        prefix = "ruuhka/v1/devices/test-gate"
        assert not gate.publish(f"{prefix}/heartbeat", poison, True).is_failure
        assert not gate.publish(f"{prefix}/count", count(2, 1, 0), True).is_failure
        assert not rink.publish("ruuhka/v1/devices/test-rink/status", b"online", True).is_failure
    finally:
        gate.close()
        rink.close()
    assert secured.device("clear-retained", "test-gate") == 0
    out = capsys.readouterr().out
    assert "cleared ruuhka/v1/devices/test-gate/heartbeat" in out and "2 retained" in out
    hub = connect(secured.port, "ruuhka-hub", secured.passwords["ruuhka-hub"], "ruuhka-hub")
    try:
        hub.subscribe("ruuhka/v1/devices/#")
        wait_for(lambda: hub.messages, 10, "the other device's retained status")
        # The broker sends every retained message right after the SUBACK, in one go.
        assert not hub.publish("ruuhka/v1/facilities/pool/state", b"{}").is_failure
        assert [topic for topic, _ in hub.messages] == ["ruuhka/v1/devices/test-rink/status"]
    finally:
        hub.close()
    assert secured.device("clear-retained", "Not_A_Device") == 1


def test_reset_seq_unfreezes_a_device_on_the_running_hub_and_after_a_restart(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    """A device whose first reading carried an absurd seq: every later one is older
    by seq and is stored without being shown, until an operator resets its seq."""
    hub_port = free_port()
    config = tmp_path / "hub.toml"
    text = HUB_CONFIG.format(
        mqtt_url=f"mqtt://127.0.0.1:{secured.port}",
        db=tmp_path / "hub.db",
        port=hub_port,
        client_id="ignored-the-broker-uses-the-user-name",
    ).replace(
        "[mqtt]\n",
        f'[mqtt]\nusername = "ruuhka-hub"\npassword = "{secured.passwords["ruuhka-hub"]}"\n',
        1,
    )
    config.write_text(text, encoding="utf-8")
    rink = connect(secured.port, "test-rink", secured.passwords["test-rink"])

    def ice(seq: int, celsius: float) -> None:
        body = {"seq": seq, "ts": dt.datetime.now(dt.UTC).isoformat(), "sensor": "ice"}
        assert not rink.publish(
            "ruuhka/v1/devices/test-rink/rink", json.dumps(body | {"ice_temp_c": celsius}).encode()
        ).is_failure

    hub = HubProcess(config, hub_port, tmp_path / "hub.log").start()
    try:
        ice(2**63 - 1, -20.0)
        wait_for(lambda: hub.facility("rink")["ice_temp_c"] == -20.0, 10, "the absurd reading")
        ice(10, -4.0)
        wait_for(lambda: hub.metric("ruuhka_readings_out_of_order_total") == 1, 10, "seq 10")
        assert hub.facility("rink")["ice_temp_c"] == -20.0  # frozen
        assert secured.device("reset-seq", "test-rink") == 0
        wait_for(lambda: "reset by an operator" in hub.log.read_text(), 10, "the reset")
        ice(11, -5.0)
        wait_for(lambda: hub.facility("rink")["ice_temp_c"] == -5.0, 10, "seq 11 shown")
    finally:
        hub.stop()
    hub = HubProcess(config, hub_port, tmp_path / "hub2.log").start()
    try:
        ice(12, -6.0)
        wait_for(lambda: hub.facility("rink")["ice_temp_c"] == -6.0, 10, "seq 12 after a restart")
        assert hub.metric("ruuhka_readings_out_of_order_total") == 0
    finally:
        hub.stop()
        rink.close()
    assert secured.device("reset-seq", "Not_A_Device") == 1
