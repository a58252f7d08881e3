"""Hub ingest throughput against a bare MQTT subscriber, on one Mosquitto.

A separate process publishes N ``count`` readings with QoS 1 as fast as the
broker takes them, twice, against the same broker in the same run:

1. baseline: a bare paho subscriber (persistent QoS 1 session, auto-ack, same
   Receive Maximum as the hub) drains the stream and only keeps the bytes. Its
   rate is the ceiling this machine, broker and publisher allow (on a small
   machine it is usually the Python publisher's own rate).
2. hub: ``ruuhka hub`` as a subprocess ingests the same workload from other
   device ids: validated, deduplicated, stored in SQLite, folded into facility
   state, then acked.

A rate is the readings that arrived after the first one seen, divided by the
time from the first to the last (baseline: messages received; hub: commits,
seen by polling ``ruuhka_readings_accepted_total`` on /metrics). Lost = published
(device, seq) keys never received or stored; duplicated = keys delivered or
stored more than once. The hub's own count of redeliveries it dropped is shown
too, and each facility's derived occupancy is checked against the workload.

Goal (exit status 0): hub/baseline >= 0.6, nothing lost, nothing duplicated,
derived state right.

Usage:
    .venv/bin/python bench/ingest.py [--readings 50000] [--devices 10] [--workdir DIR]

Hub settings can be varied through the environment, e.g.
``RUUHKA_INGEST__BATCH_SIZE=2000``; extra Mosquitto lines with ``--broker-config``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hubrun import (
    HUB_READY_TIMEOUT_S,
    HubProcess,
    device_facilities,
    http_get,
    write_hub_config,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import TOPIC_ROOT, Stream, device_topic

GOAL_RATIO = 0.6
# The hub's default [ingest] receive_maximum; the baseline gets the same flow control.
RECEIVE_MAXIMUM = 1000
# Most QoS 1 messages the publisher keeps unacked; lowered to the broker's
# Receive Maximum (Mosquitto advertises its max_inflight_messages) when smaller.
PUBLISH_INFLIGHT = 1000
EXITS_EVERY = 7  # exits catch up with entries every 7 readings: occupancy stays 0..6
PROGRESS_EVERY_S = 2.0
SUBSCRIPTION = TOPIC_ROOT + "/devices/#"
# Converts this process's monotonic clock to wall time, to line up with the publisher's.
_WALL_OFFSET = time.time() - time.monotonic()


def log(text: str) -> None:
    """Progress goes to stderr so that stdout stays the report."""
    print(text, file=sys.stderr, flush=True)


# The workload -----------------------------------------------------------------


def device_ids(prefix: str, devices: int) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(devices)]


def counters_at(k: int) -> tuple[int, int]:
    """Cumulative (entries, exits) of a device's k-th reading: never decreasing."""
    return k, k - k % EXITS_EVERY


def workload(prefix: str, readings: int, devices: int) -> list[tuple[str, bytes]]:
    """(topic, payload) in publish order, round-robin over the devices.

    Each device has its own seq 1, 2, 3, ... One timestamp for all, taken now,
    so the whole run falls on one local day for the hub's daily re-baseline.
    """
    ids = device_ids(prefix, devices)
    topics = [device_topic(d, Stream.COUNT) for d in ids]
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = []
    for g in range(readings):
        k = g // devices
        entries, exits = counters_at(k)
        body = {"seq": k + 1, "ts": ts, "counter": "main", "entries": entries, "exits": exits}
        out.append((topics[g % devices], json.dumps(body, separators=(",", ":")).encode()))
    return out


def expected_keys(prefix: str, readings: int, devices: int) -> set[tuple[str, int]]:
    ids = device_ids(prefix, devices)
    return {(ids[g % devices], g // devices + 1) for g in range(readings)}


def expected_occupancy(prefix: str, readings: int, devices: int) -> dict[str, int]:
    """What the hub must derive per device: its first reading is the counter's baseline."""
    out = {}
    for i, device in enumerate(device_ids(prefix, devices)):
        n = len(range(i, readings, devices))
        if n:
            (e0, x0), (e1, x1) = counters_at(0), counters_at(n - 1)
            out[device] = (e1 - e0) - (x1 - x0)
    return out


# The publisher (a separate process) ---------------------------------------------


class InFlight:
    """Publisher-side flow control: at most ``limit`` QoS 1 messages unacked.

    paho's own limit (max_inflight_messages_set) rescans every message it holds
    on each PUBACK, which caps a Python publisher near 10k/s at 1000 in flight,
    and it numbers messages with 16-bit ids, refusing a publish whose id is still
    queued. So paho is told "no limit" and this keeps the window instead.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.limit = PUBLISH_INFLIGHT
        self.sent = 0  # written by the main thread only
        self.acked = 0  # written by paho's network thread only
        self.refused = 0
        self.done = threading.Event()
        self._cond = threading.Condition()
        self._blocked = False

    def before_send(self) -> None:
        """Block while the window is full, until half of it has been acked."""
        if self.sent - self.acked >= self.limit:
            with self._cond:
                self._blocked = True
                while self.sent - self.acked > self.limit // 2:
                    self._cond.wait(0.01)  # the timeout covers a notify that raced us
                self._blocked = False
        self.sent += 1

    def on_ack(self, failed: bool) -> None:
        self.acked += 1
        self.refused += failed
        if self._blocked and self.sent - self.acked <= self.limit // 2:
            with self._cond:
                self._cond.notify()
        if self.acked >= self.total:
            self.done.set()


def publish_main(argv: list[str]) -> int:
    """Publish the workload QoS 1 as fast as the broker acks; print timings as JSON."""
    parser = argparse.ArgumentParser(prog="ingest.py _publish")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--readings", type=int, required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--inflight", type=int, default=PUBLISH_INFLIGHT)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)

    messages = workload(args.prefix, args.readings, args.devices)
    flow = InFlight(len(messages))
    connected = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            broker_max = getattr(props, "ReceiveMaximum", 65535)
            flow.limit = max(1, min(args.inflight, broker_max))
            connected.set()

    def on_publish(client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        flow.on_ack(rc.is_failure)

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{args.prefix}-publisher",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(0)  # see InFlight
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(args.host, args.port, keepalive=60, clean_start=True)
    client.loop_start()
    try:
        if not connected.wait(10):
            print(json.dumps({"error": "could not connect"}), flush=True)
            return 1
        start = time.time()
        for topic, payload in messages:
            flow.before_send()
            info = client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                print(json.dumps({"error": f"publish refused locally: {info.rc}"}), flush=True)
                return 1
        handed_over = time.time()
        all_acked = flow.done.wait(args.timeout) if messages else True
        end = time.time()
    finally:
        client.disconnect()
        client.loop_stop()
    result = {
        "published": len(messages),
        "acked": flow.acked,
        "refused": flow.refused,
        "inflight": flow.limit,
        "start": start,
        "handed_over": handed_over,
        "end": end,
        "all_acked": all_acked,
    }
    print(json.dumps(result), flush=True)
    return 0 if all_acked and not flow.refused else 1


@dataclass
class Publisher:
    """The publisher subprocess; result() holds its JSON line once it exits."""

    process: subprocess.Popen[str]

    @classmethod
    def launch(
        cls, broker: Broker, prefix: str, readings: int, devices: int, workdir: Path
    ) -> Publisher:
        command = [
            sys.executable, str(Path(__file__).resolve()), "_publish",
            "--host", broker.host, "--port", str(broker.port), "--prefix", prefix,
            "--readings", str(readings), "--devices", str(devices),
        ]  # fmt: skip
        with (workdir / f"publisher-{prefix}.log").open("ab") as err:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True
            )
        return cls(process)

    def running(self) -> bool:
        return self.process.poll() is None

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return {"error": "publisher did not finish"}
        lines = [line for line in (out or "").splitlines() if line.strip()]
        try:
            return json.loads(lines[-1]) if lines else {"error": "publisher printed nothing"}
        except json.JSONDecodeError:
            return {"error": f"publisher printed {lines[-1][:200]!r}"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def publish_rate(result: dict[str, Any]) -> float | None:
    """Readings acked by the broker per second, as the publisher saw it."""
    span = result.get("end", 0) - result.get("start", 0)
    return result["acked"] / span if span > 0 and result.get("acked") else None


# Baseline: a bare paho subscriber -----------------------------------------------


class Drain:
    """A bare paho subscriber: keeps (topic, payload) and lets paho ack; nothing else."""

    def __init__(self, broker: Broker, client_id: str, expected: int) -> None:
        self.broker = broker
        self.expected = expected
        self.messages: list[tuple[str, bytes]] = []
        self.first: float | None = None
        self.last: float | None = None
        # CPU time of paho's network thread (it runs on_message) at the first and last message.
        self.cpu_first: float | None = None
        self.cpu_last: float | None = None
        self.subscribed = threading.Event()
        self.all_in = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect with a persistent session and subscribe before anything is published."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect(
            self.broker.host, self.broker.port, keepalive=60, clean_start=False, properties=props
        )
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("baseline subscriber: no SUBACK within 10 s")

    def stop(self) -> None:
        """End the session too, so the broker queues nothing for it during the hub run."""
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self.client.unsubscribe(SUBSCRIPTION)
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(SUBSCRIPTION, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, p: Any) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
            self.cpu_first = time.thread_time()
        self.last = now
        self.messages.append((msg.topic, msg.payload))
        if len(self.messages) >= self.expected:
            self.cpu_last = time.thread_time()
            self.all_in.set()

    def keys(self) -> Counter[tuple[str, int]]:
        """(device, seq) of everything received, counted."""
        out: Counter[tuple[str, int]] = Counter()
        for topic, payload in self.messages:
            out[(topic.split("/")[3], int(json.loads(payload)["seq"]))] += 1
        return out


# The hub --------------------------------------------------------------------------


def wait_subscribed(hub: HubProcess, broker: Broker, probe_device: str) -> None:
    """/healthz turns true before the SUBSCRIBE is acknowledged, so prove the
    subscription: publish a reading from a device the hub does not know until
    the hub counts a rejection (unknown_device; any reason will do)."""

    def rejected() -> float:
        metrics = hub.metrics()
        return sum(v for k, v in metrics.items() if k.startswith("ruuhka_readings_rejected_total"))

    body = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "counter": "main", "occupancy": 0}
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{probe_device}-client",
        protocol=mqtt.MQTTv5,
    )
    client.connect(broker.host, broker.port, keepalive=60)
    client.loop_start()
    try:
        deadline = time.monotonic() + HUB_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            client.publish(device_topic(probe_device, Stream.COUNT), json.dumps(body), qos=1)
            for _ in range(5):
                time.sleep(0.05)
                if rejected() >= 1:
                    return
        raise RuntimeError("the hub never received the probe reading: not subscribed?")
    finally:
        client.disconnect()
        client.loop_stop()


# Measuring ------------------------------------------------------------------------


@dataclass
class Run:
    """What one half of the benchmark measured."""

    received: int = 0  # baseline: messages; hub: readings stored
    rate: float | None = None  # readings/s, first to last
    end_to_end_rate: float | None = None  # readings/s, publisher start to last
    lost: int = 0
    duplicated: int = 0
    publish_rate: float | None = None
    # CPU time per reading, µs: the subscriber's network thread, or the whole hub process.
    # Unlike a rate it hardly moves when other work shares the machine.
    cpu_us: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def window_rate(
    count_first: int, t_first: float | None, count_last: int, t_last: float | None
) -> float | None:
    """Readings after the first observation, per second up to the last one."""
    if t_first is None or t_last is None or t_last <= t_first or count_last <= count_first:
        return None
    return (count_last - count_first) / (t_last - t_first)


def wait_until(
    label: str,
    count: Callable[[], int],
    target: int,
    publisher: Publisher,
    stall_s: float,
    timeout_s: float,
    poll_s: float,
    alive: Callable[[], bool] = lambda: True,
    on_poll: Callable[[float, int], None] | None = None,
) -> int:
    """Poll count() until it reaches target, stops moving for stall_s, or times
    out; show progress on stderr every few seconds."""
    start = last_change = last_progress = time.monotonic()
    previous = -1
    while True:
        now = time.monotonic()
        value = count()
        if on_poll:
            on_poll(now, value)
        if value != previous:
            previous, last_change = value, now
        if now - last_progress >= PROGRESS_EVERY_S:
            last_progress = now
            log(f"  {label}: {value}/{target}")
        if value >= target:
            return value
        if not alive():
            log(f"  {label}: the process under test exited")
            return value
        if now - last_change > stall_s:
            state = "still publishing" if publisher.running() else "publisher done"
            log(f"  {label}: no progress for {stall_s:.0f} s ({state}); giving up")
            return value
        if now - start > timeout_s:
            log(f"  {label}: timed out after {timeout_s:.0f} s")
            return value
        time.sleep(poll_s)


def run_baseline(args: argparse.Namespace, broker: Broker, prefix: str, workdir: Path) -> Run:
    """The ceiling: how fast a subscriber that does nothing drains the stream."""
    n = args.readings
    drain = Drain(broker, f"{prefix}-drain", n)
    drain.start()
    publisher = Publisher.launch(broker, prefix, n, args.devices, workdir)
    try:
        wait_until(
            "baseline received", lambda: len(drain.messages), n, publisher,
            args.stall, args.timeout, 0.05,
        )  # fmt: skip
        result = publisher.result()
    finally:
        publisher.stop()
        drain.stop()
    run = Run(received=len(drain.messages), publish_rate=publish_rate(result))
    run.notes["publisher"] = result
    if drain.first is not None and drain.last is not None:
        run.rate = window_rate(1, drain.first, len(drain.messages), drain.last)
        if "start" in result:
            span = drain.last + _WALL_OFFSET - result["start"]
            run.end_to_end_rate = len(drain.messages) / span if span > 0 else None
    got = drain.keys()
    wanted = expected_keys(prefix, n, args.devices)
    if drain.cpu_first is not None and drain.cpu_last is not None and n > 1:
        run.cpu_us = (drain.cpu_last - drain.cpu_first) / (n - 1) * 1e6
    run.lost = len(wanted - got.keys())
    run.duplicated = sum(c - 1 for c in got.values() if c > 1)
    run.notes["unexpected"] = len(got.keys() - wanted)
    return run


@dataclass
class CommitWatch:
    """First and last observation of the hub's accepted-readings counter."""

    pid: int
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    value: int = 0
    cpu_first: float | None = None
    cpu_last: float | None = None

    def see(self, now: float, value: int) -> None:
        if value > 0 and self.first is None:
            self.first = (now, value)
            self.cpu_first = process_cpu_s(self.pid)
        if value > self.value or self.last is None:
            self.last = (now, value)
            if value > 0:
                self.cpu_last = process_cpu_s(self.pid)
        self.value = max(self.value, value)

    def cpu_us(self) -> float | None:
        """The hub's CPU time per reading committed between the first and last look."""
        if self.first is None or self.last is None or self.cpu_first is None:
            return None
        if self.cpu_last is None or self.last[1] <= self.first[1]:
            return None
        return (self.cpu_last - self.cpu_first) / (self.last[1] - self.first[1]) * 1e6


def process_cpu_s(pid: int) -> float | None:
    """User and system CPU time of a process, all its threads, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_hub(args: argparse.Namespace, broker: Broker, prefix: str, workdir: Path) -> Run:
    """The hub under the same load: stored, deduplicated and folded into state."""
    n, devices = args.readings, device_ids(prefix, args.devices)
    db = workdir / "bench.db"
    config = workdir / "hub.toml"
    port = free_port()
    write_hub_config(
        config, broker.url, db, port, "ruuhka-hub", device_facilities(devices), api_limit=True
    )
    hub = HubProcess(config, port, workdir / "hub.log")
    run = Run()
    try:
        hub.wait_connected()
        wait_subscribed(hub, broker, f"{prefix}-probe")
        log(f"  hub pid {hub.process.pid} subscribed; publishing")
        accepted_key = 'ruuhka_readings_accepted_total{stream="count"}'
        watch = CommitWatch(hub.process.pid)

        def accepted() -> int:
            try:
                return int(hub.metrics().get(accepted_key, 0))
            except (OSError, urllib.error.URLError):
                return watch.value

        publisher = Publisher.launch(broker, prefix, n, args.devices, workdir)
        try:
            wait_until(
                "hub stored", accepted, n, publisher, args.stall, args.timeout,
                args.poll_ms / 1000, hub.alive, watch.see,
            )  # fmt: skip
            result = publisher.result()
        finally:
            publisher.stop()
        run.publish_rate = publish_rate(result)
        run.notes["publisher"] = result
        if watch.first and watch.last:
            run.rate = window_rate(watch.first[1], watch.first[0], watch.last[1], watch.last[0])
            run.cpu_us = watch.cpu_us()
            if "start" in result:
                span = watch.last[0] + _WALL_OFFSET - result["start"]
                run.end_to_end_rate = watch.last[1] / span if span > 0 else None
        check_store(run, db, prefix, n, args.devices)
        check_api(run, hub, expected_occupancy(prefix, n, args.devices))
        if hub.alive():
            metrics = hub.metrics()
            run.notes["dropped_as_duplicate"] = int(
                metrics.get("ruuhka_readings_duplicate_total", 0)
            )
            run.notes["out_of_order"] = int(metrics.get("ruuhka_readings_out_of_order_total", 0))
            run.notes["store_errors"] = int(metrics.get("ruuhka_store_errors_total", 0))
            run.notes["rejected"] = {
                k.split('"')[1]: int(v)
                for k, v in metrics.items()
                if k.startswith("ruuhka_readings_rejected_total") and v
            }
            lag_n = metrics.get("ruuhka_ingest_lag_seconds_count", 0)
            if lag_n:
                run.notes["mean_lag_s"] = round(
                    metrics.get("ruuhka_ingest_lag_seconds_sum", 0) / lag_n, 3
                )
        else:
            run.notes["hub_exited"] = hub.process.returncode
            log(hub.log_tail())
    finally:
        hub.stop()
    return run


def check_store(run: Run, db: Path, prefix: str, readings: int, devices: int) -> None:
    """Lost and duplicated by the store's own rows; the hub's receive rate from them."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT device, seq, received_ms FROM readings WHERE device LIKE ?", (prefix + "-%",)
        ).fetchall()
        states = {
            facility: json.loads(state).get("occupancy")
            for facility, state in conn.execute("SELECT facility, state FROM facility_state")
        }
    finally:
        conn.close()
    stored = Counter((device, seq) for device, seq, _ in rows)
    wanted = expected_keys(prefix, readings, devices)
    run.received = len(stored)
    run.lost = len(wanted - stored.keys())
    run.duplicated = sum(c - 1 for c in stored.values() if c > 1)
    run.notes["unexpected"] = len(stored.keys() - wanted)
    received = [ms for *_, ms in rows]
    if len(received) > 1 and max(received) > min(received):
        run.notes["receive_rate"] = round(
            (len(received) - 1) / ((max(received) - min(received)) / 1000), 1
        )
    expected = expected_occupancy(prefix, readings, devices)
    wrong = {d: (states.get(d), want) for d, want in expected.items() if states.get(d) != want}
    run.notes["stored_state_ok"] = not wrong
    if wrong:
        run.notes["stored_state_wrong"] = dict(list(wrong.items())[:5])


def check_api(run: Run, hub: HubProcess, expected: dict[str, int]) -> None:
    """The live view (what the API serves) must agree too; it follows the store shortly."""
    deadline = time.monotonic() + 5
    wrong: dict[str, tuple[Any, int]] = {}
    while hub.alive():
        try:
            shown = {
                f["id"]: f["occupancy"]
                for f in json.loads(http_get(hub.url + "/api/v1/facilities"))
            }
        except (OSError, ValueError):
            shown = {}
        wrong = {d: (shown.get(d), want) for d, want in expected.items() if shown.get(d) != want}
        if not wrong or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    run.notes["api_state_ok"] = hub.alive() and not wrong
    if wrong:
        run.notes["api_state_wrong"] = dict(list(wrong.items())[:5])


# Report ---------------------------------------------------------------------------


def fmt_rate(rate: float | None) -> str:
    return f"{rate:,.0f} readings/s" if rate else "n/a"


def report(args: argparse.Namespace, broker: Broker, base: Run, hub: Run) -> bool:
    """Print the human report and the one-line JSON summary; True when goals are met."""
    ratio = hub.rate / base.rate if hub.rate and base.rate else None
    state_ok = bool(hub.notes.get("stored_state_ok")) and bool(hub.notes.get("api_state_ok"))
    ok = (
        ratio is not None
        and ratio >= GOAL_RATIO
        and hub.lost == 0
        and hub.duplicated == 0
        and base.lost == 0
        and base.duplicated == 0
        and state_ok
    )
    n = args.readings
    print()
    print(f"Ruuhka ingest benchmark: {n:,} count readings, QoS 1, {args.devices} devices")
    print(f"  broker: {broker.kind} on {broker.url}; {os.cpu_count()} CPUs")
    notes = hub.notes
    print(f"  baseline (bare paho subscriber): {fmt_rate(base.rate)}")
    print(f"      received {base.received:,}/{n:,}, lost {base.lost}, duplicated {base.duplicated}")
    window = base.notes.get("publisher", {}).get("inflight", "?")
    print(f"      publisher {fmt_rate(base.publish_rate)} ({window} in flight), ", end="")
    print(f"end to end {fmt_rate(base.end_to_end_rate)}")
    if base.rate and base.publish_rate and base.rate >= 0.95 * base.publish_rate:
        print("      (the subscriber kept up: this rate is bounded by the publisher)")
    print(f"  hub (stored + state derived):    {fmt_rate(hub.rate)}")
    print(
        f"      stored {hub.received:,}/{n:,}, lost {hub.lost}, duplicated {hub.duplicated}, ",
        end="",
    )
    print(f"redeliveries dropped by the hub {notes.get('dropped_as_duplicate', 'n/a')}")
    print(f"      publisher {fmt_rate(hub.publish_rate)}, ", end="")
    print(f"end to end {fmt_rate(hub.end_to_end_rate)}, ", end="")
    print(f"receive rate {fmt_rate(notes.get('receive_rate'))}, ", end="")
    print(f"mean lag {notes.get('mean_lag_s', 'n/a')} s")
    store_ok = "OK" if notes.get("stored_state_ok") else "FAIL"
    api_ok = "OK" if notes.get("api_state_ok") else "FAIL"
    print(f"      derived occupancy: store {store_ok}, API {api_ok}")
    for key in ("stored_state_wrong", "api_state_wrong", "hub_exited"):
        if hub.notes.get(key):
            print(f"      {key}: {hub.notes[key]}")
    if notes.get("rejected"):
        print(f"      rejected: {notes['rejected']} (one is the start-up probe)")
    ratio_text = f"{ratio:.2f}" if ratio is not None else "n/a"
    print(f"  ratio hub/baseline: {ratio_text} (goal >= {GOAL_RATIO})")
    if base.cpu_us and hub.cpu_us:
        print(
            f"  CPU per reading: hub {hub.cpu_us:.0f} µs (whole process), bare subscriber "
            f"{base.cpu_us:.0f} µs (its network thread); ratio {base.cpu_us / hub.cpu_us:.2f}"
        )
    print(f"  result: {'PASS' if ok else 'FAIL'}")
    summary = {
        "readings": n,
        "devices": args.devices,
        "broker": broker.kind,
        "baseline_rate": round(base.rate, 1) if base.rate else None,
        "hub_rate": round(hub.rate, 1) if hub.rate else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "baseline_lost": base.lost,
        "baseline_duplicated": base.duplicated,
        "hub_lost": hub.lost,
        "hub_duplicated": hub.duplicated,
        "hub_dropped_duplicates": hub.notes.get("dropped_as_duplicate"),
        "hub_receive_rate": hub.notes.get("receive_rate"),
        "baseline_publish_rate": round(base.publish_rate, 1) if base.publish_rate else None,
        "hub_publish_rate": round(hub.publish_rate, 1) if hub.publish_rate else None,
        "baseline_cpu_us": round(base.cpu_us, 1) if base.cpu_us else None,
        "hub_cpu_us": round(hub.cpu_us, 1) if hub.cpu_us else None,
        "state_ok": state_ok,
        "pass": ok,
    }
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return ok


# Main -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="Hub ingest rate vs a bare MQTT subscriber on the same Mosquitto.",
    )
    parser.add_argument("--readings", type=int, default=50_000, help="N per run (default 50000)")
    parser.add_argument("--devices", type=int, default=10, help="readings spread round-robin")
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp workdir")
    parser.add_argument("--broker-config", default="", help="extra mosquitto.conf lines")
    parser.add_argument("--poll-ms", type=float, default=50, help="/metrics poll interval")
    parser.add_argument("--stall", type=float, default=30, help="give up after this many s idle")
    parser.add_argument("--timeout", type=float, default=900, help="per-run limit in s")
    args = parser.parse_args(argv)
    if args.readings < 2 or args.devices < 1:
        parser.error("need --readings >= 2 and --devices >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_publish"]:
        return publish_main(argv[1:])
    args = parse_args(argv)
    token = format(int(time.time() * 1000) % 16**6, "06x")
    temp = args.workdir is None
    root = Path(tempfile.mkdtemp(prefix="ruuhka-bench-")) if temp else args.workdir
    workdir = root / f"run-{token}"
    workdir.mkdir(parents=True)
    ok = False
    broker = start_broker(
        workdir / "broker", prefer="mosquitto", extra_config=args.broker_config.replace("\\n", "\n")
    )
    try:
        log(f"workdir {workdir}; broker {broker.kind} on {broker.url}")
        log(f"baseline: {args.readings} readings to a bare subscriber")
        base = run_baseline(args, broker, f"b{token}-base", workdir)
        log(f"hub: {args.readings} readings to ruuhka hub")
        hub = run_hub(args, broker, f"b{token}-hub", workdir)
        ok = report(args, broker, base, hub)
    finally:
        broker.stop()
        if temp and ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
