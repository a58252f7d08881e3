"""Drains the outbox to the broker, oldest first, deleting only what was PUBACKed.

paho calls ``on_publish`` from its network thread, possibly while holding its
own locks, so the callback only queues the message id; the drain thread owns
all bookkeeping and the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from edge.outbox import Outbox
from ruuhka.contract import StatusPayload, Stream, device_topic, encode
from ruuhka.mqtt import connect_async, make_client
from ruuhka.settings import MqttSettings

log = logging.getLogger("ruuhka.publisher")


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        outbox: Outbox,
        window: int = 100,
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.outbox = outbox
        self.window = window
        self.published = 0
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._inflight: dict[int, int] = {}
        self._cursor = -1
        self._thread = threading.Thread(target=self._run, name=f"drain-{device_id}", daemon=True)
        self.client = make_client(settings, f"ruuhka-edge-{device_id}", persistent=False)
        self.client.max_inflight_messages_set(window)
        will = StatusPayload(seq=outbox.allocate_seq(), ts=datetime.now(UTC), state="offline")
        self._status_topic = device_topic(device_id, Stream.STATUS)
        self.client.will_set(self._status_topic, encode(will), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def start(self) -> None:
        self._thread.start()
        connect_async(self.client, self.settings, persistent=False)

    def notify(self) -> None:
        """Tell the drain thread that new readings are in the outbox."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish an orderly ``offline`` and disconnect; unacked readings stay on disk."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._connected.is_set():
            offline = StatusPayload(
                seq=self.outbox.allocate_seq(), ts=datetime.now(UTC), state="offline"
            )
            info = self.client.publish(self._status_topic, encode(offline), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def in_flight(self) -> int:
        return len(self._inflight)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("%s: broker refused the connection: %s", self.device_id, reason_code)
            return
        online = StatusPayload(seq=self.outbox.allocate_seq(), ts=datetime.now(UTC), state="online")
        client.publish(self._status_topic, encode(online), qos=1, retain=True)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("%s: disconnected (%s); paho reconnects", self.device_id, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            self._collect_acks()
            if self._connected.is_set():
                self._send()

    def _collect_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                done.append(seq)
        if done:
            self.outbox.delete(done)
            self.published += len(done)

    def _send(self) -> None:
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for pending in self.outbox.after(self._cursor, room):
            info = self.client.publish(pending.topic, pending.payload, qos=1)
            # NO_CONN still queues a QoS 1 message inside paho, which resends it.
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("%s: publish refused (%s); retrying", self.device_id, info.rc)
                self._wake.set()
                return
            self._inflight[info.mid] = pending.seq
            self._cursor = pending.seq
        if len(self._inflight) >= self.window:
            return
        if self.outbox.after(self._cursor, 1):
            self._wake.set()
