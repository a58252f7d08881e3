"""Drains the outbox to the broker and deletes only what the broker acknowledged.

One thread owns the MQTT connection: it connects, runs paho's network I/O
through paho's external-loop API (``loop_read``/``loop_write``/``loop_misc``
around our own ``select``), publishes and collects PUBACKs. Owning the loop
gives three things paho's ``loop_start`` does not:

- reconnecting with exponential backoff *and jitter* (``edge.backoff``);
- a fresh client per connection: whatever was in flight when the link broke is
  simply sent again from the outbox, which stays the one source of truth, and
  the hub drops what it had already seen as a duplicate of (device, seq);
- an immediate wake-up when the agent commits new readings.

At most ``window`` readings are in flight (paho's ``max_inflight_messages`` is
set to the same; fewer when the broker's Receive Maximum is lower), so paho
never queues a message of its own; every ``publish`` return code is checked and a
refused one is simply tried again later.

After a reconnect the backlog is drained oldest first, but readings committed
since the reconnect go first in every round, so that an outage of a day does
not keep the current occupancy from the hub while yesterday's readings drain.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import sqlite3
import ssl
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from edge.backoff import Backoff
from edge.outbox import Outbox, Pending
from ruuhka.contract import StatusPayload, Stream, device_topic, encode
from ruuhka.mqtt import make_client
from ruuhka.settings import MqttSettings

log = logging.getLogger("ruuhka.publisher")

_IDLE_WAKE_S = 1.0  # keepalive bookkeeping and timed outbox commits
_GOODBYE_TIMEOUT_S = 2.0


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        outbox: Outbox,
        window: int = 100,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.outbox = outbox
        self.window = window
        self.backoff = backoff or Backoff(1.0, 60.0)
        self.published = 0
        self.connections = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._offline_until = 0.0
        self._drain_until = 0.0
        self._status_topic = device_topic(device_id, Stream.STATUS)
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{device_id}", daemon=True)
        # Per connection:
        self._client: mqtt.Client | None = None
        self._limit = window
        self._inflight: dict[int, int] = {}
        self._acks: list[int] = []
        self._fresh_cursor = -1
        self._backlog_cursor = -1
        self._backlog_end = -1

    # the agent's side ----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New readings are committed: wake the publishing thread."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def stop(self, drain_s: float = 2.0, timeout: float = 10.0) -> None:
        """Send what is owed for up to ``drain_s``, say ``offline`` and disconnect;
        whatever is still unacknowledged stays on disk for the next start."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        self.notify()
        self._thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def suspend(self, seconds: float) -> None:
        """Drop the link as a cut cable would (the broker publishes the last will)
        and stay offline this long: for the simulator's outages and the tests."""
        self._offline_until = time.monotonic() + seconds
        self.notify()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def in_flight(self) -> int:
        return len(self._inflight)

    # the publishing thread -------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            outage = self._offline_until - time.monotonic()
            if outage > 0:
                self._sleep(outage)
                continue
            try:
                client = self._new_client()
                self._connect(client)
            except (OSError, ValueError) as exc:  # refused, unreachable, TLS, a bad host
                self._retry_later(f"cannot connect to {self.settings.url}: {exc}")
                continue
            try:
                reason = self._serve(client)
            except Exception:
                # A bug or a broken disk must not end publishing for good.
                log.exception("%s: publishing failed", self.device_id)
                reason = "publishing failed"
            self._close(client)
            if reason is not None:
                self._retry_later(reason)

    def _sleep(self, seconds: float) -> None:
        """Wait, but wake up for stop()."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(OSError, ValueError):
                select.select([self._wake_r], [], [], min(left, _IDLE_WAKE_S))
                self._drain_wake()
            self._flush()

    def _retry_later(self, reason: str) -> None:
        delay = self.backoff.next()
        level = logging.WARNING if self.backoff.failures <= 3 else logging.DEBUG
        log.log(level, "%s: %s; retrying in %.1f s", self.device_id, reason, delay)
        self._sleep(delay)

    def _new_client(self) -> mqtt.Client:
        client = make_client(self.settings, f"ruuhka-edge-{self.device_id}", persistent=False)
        client.max_inflight_messages_set(self.window)
        will = StatusPayload(seq=self.outbox.allocate_seq(), ts=datetime.now(UTC), state="offline")
        client.will_set(self._status_topic, encode(will), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        return client

    def _connect(self, client: mqtt.Client) -> None:
        s = self.settings
        if s.protocol == "5":
            client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=True)
        else:
            client.connect(s.host, s.port, keepalive=s.keepalive_s)

    def _serve(self, client: mqtt.Client) -> str | None:
        """Run one connection until it breaks (the reason) or we stop (None)."""
        while True:
            if self._stop.is_set() and not (
                self._connected.is_set() and time.monotonic() < self._drain_until and self._owing()
            ):
                self._goodbye(client)
                return None
            if self._offline_until > time.monotonic():
                return "simulated outage"
            sock = client.socket()
            if sock is None:
                return "connection lost"
            pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
            wanted_w = [sock] if client.want_write() else []
            try:
                readable, writable, _ = select.select(
                    [sock, self._wake_r], wanted_w, [], 0 if pending else self._idle_wait()
                )
            except (OSError, ValueError):
                return "connection lost"
            self._drain_wake()
            rc = mqtt.MQTT_ERR_SUCCESS
            if sock in readable or pending:
                rc = client.loop_read()
            if rc == mqtt.MQTT_ERR_SUCCESS and sock in writable:
                rc = client.loop_write()
            if rc == mqtt.MQTT_ERR_SUCCESS:
                rc = client.loop_misc()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return f"connection lost ({mqtt.error_string(rc)})"
            self._collect_acks()
            if self._connected.is_set():
                self._send(client)
            self._flush()

    def _flush(self) -> None:
        """Commit deletions when due; a disk error is the agent's to report."""
        try:
            self.outbox.maybe_flush()
        except sqlite3.Error as exc:
            log.debug("%s: outbox commit failed: %s", self.device_id, exc)

    def _idle_wait(self) -> float:
        return 0.05 if self._stop.is_set() else _IDLE_WAKE_S

    def _owing(self) -> bool:
        """Anything in flight or not yet sent on this connection?"""
        if self._inflight or self.outbox.after(self._fresh_cursor, 1):
            return True
        return self._backlog_cursor < self._backlog_end and bool(
            self.outbox.after(self._backlog_cursor, 1, until=self._backlog_end)
        )

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_r.recv(4096):
                pass

    def _close(self, client: mqtt.Client) -> None:
        """Forget the connection; what was in flight is sent again on the next one."""
        self._collect_acks()
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("%s: disconnected from %s", self.device_id, self.settings.url)
        self._connected.clear()
        self._inflight.clear()
        self._acks.clear()
        with contextlib.suppress(OSError):
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _goodbye(self, client: mqtt.Client) -> None:
        """An orderly ``offline`` (the will is only for disappearing), then DISCONNECT."""
        if self._connected.is_set():
            offline = StatusPayload(
                seq=self.outbox.allocate_seq(), ts=datetime.now(UTC), state="offline"
            )
            info = client.publish(self._status_topic, encode(offline), qos=1, retain=True)
            deadline = time.monotonic() + _GOODBYE_TIMEOUT_S
            while not info.is_published() and time.monotonic() < deadline:
                if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                    break
            self._collect_acks()
        client.disconnect()
        with contextlib.suppress(OSError):
            client.loop_write()

    # paho callbacks (on this same thread, from loop_read) -----------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("%s: the broker refused the connection: %s", self.device_id, reason_code)
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        # paho's own limit cannot change on a live connection; ours stays below it.
        self._limit = min(self.window, receive_maximum or self.window)
        # Deletions of readings acknowledged on the old connection go to disk
        # first, so that the new one starts from exactly what is still owed.
        try:
            self.outbox.flush()
        except sqlite3.Error as exc:
            log.debug("%s: outbox commit failed: %s", self.device_id, exc)
        newest = self.outbox.committed_seq()
        self._fresh_cursor = self._backlog_end = newest
        self._backlog_cursor = -1
        backlog = self.outbox.depth()
        online = StatusPayload(seq=self.outbox.allocate_seq(), ts=datetime.now(UTC), state="online")
        client.publish(self._status_topic, encode(online), qos=1, retain=True)
        self.connections += 1
        self.backoff.reset()
        self._connected.set()
        log.info(
            "%s: connected to %s; %d readings to send", self.device_id, self.settings.url, backlog
        )

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.append(mid)

    # bookkeeping ---------------------------------------------------------------

    def _collect_acks(self) -> None:
        if not self._acks:
            return
        done = [seq for mid in self._acks if (seq := self._inflight.pop(mid, None)) is not None]
        self._acks.clear()
        if done:
            self.published += len(done)
            self.outbox.ack(done)

    def _send(self, client: mqtt.Client) -> None:
        room = self._limit - len(self._inflight)
        if room <= 0:
            return
        # Readings committed since the connection came up go first ...
        fresh = self.outbox.after(self._fresh_cursor, room)
        sent = self._publish(client, fresh)
        if fresh[:sent]:
            self._fresh_cursor = fresh[sent - 1].seq
        room -= sent
        if sent < len(fresh) or room <= 0 or self._backlog_cursor >= self._backlog_end:
            return
        # ... and the backlog fills the rest of the window, oldest first.
        old = self.outbox.after(self._backlog_cursor, room, until=self._backlog_end)
        if not old:
            self._backlog_cursor = self._backlog_end
            log.info("%s: backlog sent", self.device_id)
            return
        sent = self._publish(client, old)
        if sent:
            self._backlog_cursor = old[sent - 1].seq

    def _publish(self, client: mqtt.Client, batch: list[Pending]) -> int:
        """Publish in order until paho refuses one; returns how many went out."""
        for count, pending in enumerate(batch):
            info = client.publish(pending.topic, pending.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                # NO_CONN: the link just broke; anything else: paho is full. Either
                # way this reading stays unsent and is tried again later.
                log.debug("%s: publish refused (%s)", self.device_id, mqtt.error_string(info.rc))
                return count
            self._inflight[info.mid] = pending.seq
        return len(batch)
