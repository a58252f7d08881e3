"""The edge agent's machinery: backoff, clock, heartbeat, reconnects, systemd,
the simulator's faults, and the shipped configuration and unit files."""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import edge.sources.gpio
import edge.sources.http_poll
import edge.sources.modbus
import edge.sources.onewire
import edge.sources.simulated
from edge.agent import Agent
from edge.backoff import Backoff
from edge.clock import BUILD_FLOOR, ClockCheck, kernel_ntp_synced
from edge.config import EdgeSettings
from edge.outbox import Outbox
from edge.simulate import DeviceClock
from edge.sources.simulated import SimulatedGate, SimulatedGateConfig
from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import HeartbeatPayload, Stream, parse_payload
from ruuhka.settings import load_settings
from tests.conftest import HubProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    for n, delay in enumerate(delays):
        cap = min(30.0, 2.0**n)
        assert cap / 2 <= delay <= cap
    assert delays[5] > delays[0] * 8
    assert max(delays) <= 30.0
    backoff.reset()
    assert backoff.next() <= 1.0
    # Devices that lost the broker together do not come back in lock-step.
    herd = [Backoff(1.0, 30.0, rng=random.Random(seed)) for seed in range(20)]
    third = [round(b.next() + b.next() + b.next(), 3) for b in herd]
    assert len(set(third)) == len(third)
    with pytest.raises(ValueError):
        Backoff(0, 10)
    long = Backoff(1.0, 60.0)
    long.failures = 10_000  # months of failures must not overflow
    assert 30.0 <= long.next() <= 60.0


def test_clock_check_uses_ntp_status_and_the_build_floor() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    asked: list[str] = []

    def answer(name: str, value: bool | None):
        def probe() -> bool | None:
            asked.append(name)
            return value

        return probe

    synced = ClockCheck("auto", kernel=answer("kernel", True), timedatectl=answer("tdc", False))
    assert synced.synced(now) and asked == ["kernel"]
    assert not synced.synced(datetime(1970, 1, 1, tzinfo=UTC))  # before this build
    assert not synced.synced(BUILD_FLOOR - timedelta(seconds=1))
    unsynced = ClockCheck("auto", kernel=answer("kernel", False), timedatectl=answer("tdc", True))
    assert not unsynced.synced(now)
    asked.clear()
    fallback = ClockCheck("auto", kernel=answer("kernel", None), timedatectl=answer("tdc", False))
    assert not fallback.synced(now) and asked == ["kernel", "tdc"]
    unknown = ClockCheck("auto", kernel=answer("kernel", None), timedatectl=answer("tdc", None))
    assert unknown.synced(now)  # nothing to ask: trust the floor alone
    floor = ClockCheck("floor", kernel=answer("kernel", False), timedatectl=answer("tdc", False))
    assert floor.synced(now)
    assert "NTP not synchronised" in unsynced.describe(now)
    assert "readings are marked" in unsynced.describe(now)
    assert "before this build" in synced.describe(datetime(1970, 1, 1, tzinfo=UTC))


@pytest.mark.skipif(sys.platform != "linux", reason="adjtimex(2) is Linux's")
def test_kernel_ntp_status_is_the_kernels_answer() -> None:
    """Read-only ntp_adjtime(3), asked here directly, says the same as the agent."""
    timex = ctypes.create_string_buffer(512)  # modes = 0: only read
    state = ctypes.CDLL(None).ntp_adjtime(timex)
    assert state >= 0
    assert kernel_ntp_synced() is (state != 5)  # TIME_ERROR: not synchronised


def edge_settings(tmp_path: Path, url: str, **extra: object) -> EdgeSettings:
    values: dict[str, object] = {
        "device_id": "test-gate",
        "state_dir": tmp_path / "edge",
        "heartbeat_s": 3600,
        "clock_check": "floor",
        "mqtt": {"url": url},
        "reconnect": {"min_s": 0.1, "max_s": 0.5},
        "outbox": {"commit_interval_s": 0.05},
    }
    return EdgeSettings(**(values | extra))


def gate(interval_s: float = 0.01) -> SimulatedGate:
    return SimulatedGate(SimulatedGateConfig(interval_s=interval_s, always_open=True), seed=3)


def test_full_outbox_is_thinned_and_the_heartbeat_says_so(tmp_path: Path) -> None:
    nobody = f"mqtt://127.0.0.1:{free_port()}"
    settings = edge_settings(tmp_path, nobody, heartbeat_s=0.2, outbox={"max_rows": 40})
    agent = Agent(settings, [gate(0.05)])

    def heartbeat_reporting_drops() -> HeartbeatPayload | None:
        for pending in reversed(agent.outbox.after(-1, 1000)):
            if pending.topic.endswith("/heartbeat"):
                beat = parse_payload(Stream.HEARTBEAT, pending.payload)
                assert isinstance(beat, HeartbeatPayload)
                return beat if beat.dropped else None
        return None

    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        beat = wait_for(heartbeat_reporting_drops, 30, "a heartbeat that reports drops")
        assert agent.outbox.depth() <= 40
    finally:
        agent.stop()
        thread.join(20)
    assert beat.dropped and beat.dropped > 0
    assert beat.outbox_depth and beat.agent_version
    assert beat.disk_free_mb and beat.disk_free_mb > 0
    assert agent.outbox.dropped() >= beat.dropped


def test_agent_waits_for_a_broker_that_is_not_there_yet(tmp_path: Path) -> None:
    port = free_port()
    agent = Agent(edge_settings(tmp_path, f"mqtt://127.0.0.1:{port}"), [gate(0.05)])
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        wait_for(lambda: agent.publisher.backoff.failures >= 3, 20, "failed attempts")
        assert not agent.publisher.connected
        with start_broker(tmp_path / "broker", port=port, prefer="mosquitto"):
            wait_for(lambda: agent.publisher.connected, 20, "the connection")
            assert agent.publisher.backoff.failures == 0
            wait_for(lambda: agent.publisher.published >= 20, 20, "the backlog to be sent")
    finally:
        agent.stop()
        thread.join(20)


def test_systemd_readiness_and_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    agent = Agent(edge_settings(tmp_path, f"mqtt://127.0.0.1:{free_port()}"), [])
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        got = [listener.recv(100).decode() for _ in range(3)]
    finally:
        agent.stop()
        thread.join(20)
        listener.close()
    assert got[0] == "READY=1"
    assert got[1:] == ["WATCHDOG=1", "WATCHDOG=1"]


def test_unsynchronised_clock_is_marked_and_the_hub_uses_its_own_time(
    tmp_path: Path, broker: Broker, hub: HubProcess
) -> None:
    """A Pi that booted in 1970: its readings still count, at the hub's time."""
    clock = DeviceClock()
    clock.offset = datetime(1970, 1, 1, tzinfo=UTC) - datetime.now(UTC)
    agent = Agent(edge_settings(tmp_path, broker.url), [gate(0.1)], clock=clock)
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        pool = wait_for(
            lambda: (f := hub.facility("pool"))["occupancy"] is not None and f, 20, "occupancy"
        )
    finally:
        agent.stop()
        thread.join(20)
    assert "clock_unsynced" in pool.get("quality", [])
    updated = datetime.fromisoformat(pool["updated_at"])
    assert abs(updated - datetime.now(UTC)) < timedelta(minutes=5)


def retained_states(broker: Broker, device: str, states: list[str]) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: states.append(json.loads(m.payload)["state"])
    client.connect(broker.host, broker.port)
    client.subscribe(f"ruuhka/v1/devices/{device}/status", qos=1)
    client.loop_start()
    return client


def test_simulator_resets_counters_jumps_clocks_and_cuts_the_network(
    tmp_path: Path, broker: Broker, hub: HubProcess, hub_config: Path
) -> None:
    states: list[str] = []
    watcher = retained_states(broker, "test-gate", states)
    command = [
        sys.executable,
        "-m",
        "ruuhka",
        "simulate",
        "--config",
        str(hub_config),
        "--state-dir",
        str(tmp_path / "sim"),
        "--interval",
        "0.2",
        "--counter-reset-every",
        "2",
        "--clock-jump",
        "3600",
        "--clock-jump-after",
        "1",
        "--outage-every",
        "2.5",
        "--outage-for",
        "1",
        "--reconnect-min",
        "0.1",
        "--reconnect-max",
        "0.3",
        "--backlog-hours",
        "0.05",  # three minutes: within the hub's clock-skew bound, so not a skew itself
    ]
    log = tmp_path / "simulate.log"
    with log.open("wb") as out:
        sim = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        flags: set[str] = set()

        def seen(flag: str) -> bool:
            flags.update(hub.facility("pool").get("quality", []))
            return flag in flags

        wait_for(lambda: seen("counter_reset"), 30, "a counter reset at the hub")
        wait_for(lambda: seen("clock_skew"), 30, "the clock jump at the hub")
        wait_for(lambda: "offline" in states and states[-1] == "online", 30, "an outage")
    finally:
        sim.send_signal(signal.SIGTERM)
        code = sim.wait(30)
        watcher.loop_stop()
        watcher.disconnect()
    text = log.read_text()
    assert code == 0, text
    # Three minutes of a gate read every 0.2 s, and a heartbeat a minute.
    assert "test-gate: 903 readings of backlog" in text
    assert "counters restart from zero" in text and "network outage" in text


def docstring_samples(module: object) -> list[str]:
    """The TOML samples in a module's docstring (indented blocks after '::')."""
    doc = module.__doc__ or ""
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", doc)
    return [re.sub(r"^    ", "", block, flags=re.M) for block in blocks if "[[sources]]" in block]


@pytest.mark.parametrize(
    "module",
    [
        edge.sources.gpio,
        edge.sources.http_poll,
        edge.sources.modbus,
        edge.sources.onewire,
        edge.sources.simulated,
    ],
)
def test_documented_sample_configs_are_valid(module: object) -> None:
    samples = docstring_samples(module)
    assert samples, f"{module.__name__} documents no sample configuration"
    for sample in samples:
        data = tomllib.loads(sample.replace("…", "x"))
        EdgeSettings(device_id="sample", **data)


@pytest.mark.parametrize("path", sorted((ROOT / "deploy" / "edge").glob("*.toml")), ids=str)
def test_shipped_edge_configs_are_valid(path: Path) -> None:
    settings = load_settings(EdgeSettings, path)
    assert settings.sources


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "systemd" / "ruuhka-edge.service").read_text()
    assert "/var/lib/ruuhka-edge" in unit or "StateDirectory=ruuhka-edge" in unit
    for needed in ("Restart=always", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert needed in unit
    assert re.search(r"^SupplementaryGroups=gpio video$", unit, re.M)
    local = tmp_path / "ruuhka-edge.service"
    local.write_text(unit.replace("/opt/ruuhka-edge/venv/bin/ruuhka", shutil.which("true") or ""))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(local)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    assert security.returncode == 0, security.stdout[-2000:]


def test_a_source_that_cannot_be_set_up_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpiozero import Device

    from edge.agent import Deferred

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    nobody = f"mqtt://127.0.0.1:{free_port()}"
    settings = edge_settings(
        tmp_path,
        nobody,
        sources=[
            {"type": "gpio_gate", "counter": "a", "entries_pin": 22, "interval_s": 0.05},
            {"type": "gpio_gate", "counter": "b", "entries_pin": 22, "interval_s": 0.05},
            {"type": "simulated_gate", "interval_s": 0.05},
        ],
    )
    agent = Agent(settings)
    try:
        assert [type(s).__name__ for s in agent.sources] == [
            "GpioGate",
            "Deferred",
            "SimulatedGate",
        ]
        deferred = agent.sources[1]
        assert isinstance(deferred, Deferred)
        thread = threading.Thread(target=agent.run)
        thread.start()
        try:
            wait_for(lambda: agent.readings >= 20, 20, "readings from the working sources")
            assert deferred.inner is None  # pin 22 is still taken: retried, with backoff
            agent.sources[0].close()  # the pin comes free
            wait_for(lambda: deferred.inner is not None, 20, "the deferred source set up")
        finally:
            agent.stop()
            thread.join(20)
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None


def test_a_full_disk_keeps_readings_in_memory_until_it_has_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = f"mqtt://127.0.0.1:{free_port()}"
    agent = Agent(edge_settings(tmp_path, nobody), [gate(0.02)])
    box = agent.outbox

    def limit_pages(pages: str) -> None:
        with box._lock:  # SQLite's own way to make a database "full"
            box._db.execute(f"PRAGMA max_page_count = {pages}")

    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        wait_for(lambda: box.committed_seq() >= 10, 20, "some committed readings")
        with box._lock:
            pages = box._db.execute("PRAGMA page_count").fetchone()[0]
        limit_pages(pages)
        # Enough readings that they cannot fit into the pages that are left.
        wait_for(lambda: agent.readings >= 400, 30, "readings while the disk is full")
        stuck = box.committed_seq()
        assert "cannot write the outbox (database or disk is full)" in caplog.text
        assert agent.readings > stuck + 100 and thread.is_alive()
        limit_pages("1000000")
        wait_for(lambda: box.committed_seq() > stuck + 100, 30, "the backlog committed")
    finally:
        agent.stop()
        thread.join(20)
    again = Outbox(tmp_path / "edge" / "test-gate.outbox.db", "test-gate")
    committed = [p.seq for p in again.after(-1, 100_000) if p.topic.endswith("/count")]
    again.close()
    # Every reading taken is on disk (seqs skip those the status messages used).
    assert committed == sorted(set(committed)) and len(committed) == agent.readings
