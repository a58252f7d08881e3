"""From broker to store: validate, deduplicate, store, derive, publish, then ack.

A reading is acknowledged to the broker only after the store has committed it
(paho's manual acknowledgement on a persistent QoS 1 session), so a hub that
dies at any moment loses nothing: the broker redelivers what was not acked and
deduplication by (device, seq) drops what had already landed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from hub.config import HubSettings
from hub.metrics import Metrics
from hub.rederive import fold, is_late, mark_late, recompute
from hub.snapshots import Picture, SnapshotStore, decode_jpeg
from hub.state import FacilityDeriver, Tracker
from hub.store import (
    QUARANTINE_PAYLOAD_BYTES,
    Derived,
    DeviceStatus,
    Quarantined,
    Record,
    SavedState,
    Store,
)
from ruuhka.contract import (
    RESET_SEQ_TOPIC,
    TOPIC_ROOT,
    CountPayload,
    FacilityState,
    HeartbeatPayload,
    Quality,
    Reading,
    ResetSeq,
    RinkPayload,
    SnapshotPayload,
    StatusPayload,
    Stream,
    TopicError,
    encode,
    facility_state_topic,
    parse_payload,
    parse_topic,
    seq_key,
)
from ruuhka.mqtt import connect_async, make_client
from ruuhka.settings import MqttSettings

log = logging.getLogger("ruuhka.ingest")

T = TypeVar("T")

DEVICE_SUBSCRIPTION = TOPIC_ROOT + "/devices/#"
STATE_SUBSCRIPTION = TOPIC_ROOT + "/facilities/+/state"
_STATE_PREFIX = TOPIC_ROOT + "/facilities/"


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    # Sent because the hub subscribed, not because the device published just now.
    retained: bool = False


class RejectLog:
    """Logs a rejection at most once per (sender, reason) per minute, and admits a
    few a minute to the quarantine: a flood of garbage must not fill the store."""

    def __init__(self, every_s: float = 60.0, keep_per_minute: int = 10) -> None:
        self.every_s = every_s
        self.keep_per_minute = keep_per_minute
        self._last: dict[tuple[str, str], float] = {}
        self._kept: dict[tuple[str, str], tuple[float, int]] = {}

    def keep(self, sender: str, reason: str) -> bool:
        now = time.monotonic()
        if len(self._kept) > 10_000:
            self._kept.clear()  # many senders: start counting again rather than grow
        key = (sender, reason)
        since, n = self._kept.get(key, (now, 0))
        if now - since >= 60:
            since, n = now, 0
        self._kept[key] = (since, n + 1)
        return n < self.keep_per_minute

    def warn(self, sender: str, reason: str, detail: str) -> None:
        now = time.monotonic()
        key = (sender, reason)
        if now - self._last.get(key, -1e9) >= self.every_s:
            self._last[key] = now
            log.warning("rejected from %s: %s: %s", sender, reason, detail[:300])


class Router:
    """Which facility (and which of its sources) a reading belongs to."""

    def __init__(self, settings: HubSettings) -> None:
        self._routes: dict[tuple[str, Stream, str | None], str] = {}
        self.devices: set[str] = set()
        for facility in settings.facilities:
            for source in facility.sources:
                self.devices.add(source.device)
                for key in source.routes():
                    self._routes[key] = facility.id

    def route(self, device: str, reading: Reading) -> tuple[str, str] | None:
        if isinstance(reading, CountPayload):
            stream, name = Stream.COUNT, reading.counter
        elif isinstance(reading, RinkPayload):
            stream, name = Stream.RINK, reading.sensor
        elif isinstance(reading, SnapshotPayload):
            stream, name = Stream.SNAPSHOT, reading.camera
        else:
            return None
        facility = self._routes.get((device, stream, name)) or self._routes.get(
            (device, stream, None)
        )
        if facility is None:
            return None
        return facility, f"{device}/{name}"


class Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Ingest:
    """Owns the hub's broker connection: device readings in, facility state out."""

    def __init__(
        self,
        settings: HubSettings,
        store: Store,
        metrics: Metrics,
        on_state: Callable[[FacilityState], None],
        snapshots: SnapshotStore | None = None,
        on_remote_state: Callable[[FacilityState], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.snapshots = snapshots
        self.metrics = metrics
        self.on_state = on_state
        # States read back from the broker: this replica's own, or another's.
        self.on_remote_state = on_remote_state or on_state
        # One of several replicas: this one stores what the shared subscription
        # brings and leaves deriving to each facility's owner (hub/replicas.py).
        self.shared = settings.ingest.shared_group is not None
        self.router = Router(settings)
        self.reject_log = RejectLog()
        # Received and waiting for the worker. A deque, not a queue.Queue: appending and
        # popping are atomic and far cheaper than the Queue's locks, per message, and
        # the head can be read for its age. ``_arrived`` wakes an idle worker.
        self._inbox: deque[Message] = deque()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="ingest", daemon=True)
        self.store_failing = False
        self._down_since: float | None = time.monotonic()  # not connected yet
        self._in_hand: datetime | None = None  # the oldest reading of the batch in hand
        self._in_hand_count = 0
        self._quarantine: list[Quarantined] = []
        self._recomputed_at = 0.0  # when the last recompute after late readings ended
        self._recompute_took = 0.0  # and how long it took (monotonic seconds)
        self._max_seq = store.max_seqs()
        self._max_skew = timedelta(seconds=settings.ingest.max_clock_skew_s)
        saved = store.load_states()
        self.derivers: dict[str, FacilityDeriver] = {}
        for facility in settings.facilities:
            prior = saved.get(facility.id)
            self.derivers[facility.id] = FacilityDeriver(
                facility,
                prior.state if prior else None,
                prior.tracker if prior else Tracker(),
            )
        self.client = make_client(self._mqtt(), self._client_id(), persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def states(self) -> list[FacilityState]:
        return [d.state for d in self.derivers.values()]

    def _mqtt(self) -> MqttSettings:
        return self.settings.mqtt

    def _client_id(self) -> str:
        """The broker session's name: each replica needs its own."""
        ingest = self.settings.ingest
        return f"{ingest.client_id}-{ingest.replica_id}" if self.shared else ingest.client_id

    def _subscriptions(self) -> list[tuple[str, int]]:
        group = self.settings.ingest.shared_group
        devices = f"$share/{group}/{DEVICE_SUBSCRIPTION}" if group else DEVICE_SUBSCRIPTION
        return [(devices, 1), (STATE_SUBSCRIPTION, 1), (RESET_SEQ_TOPIC, 1)]

    def start(self) -> None:
        self._worker.start()
        connect_async(
            self.client,
            self._mqtt(),
            persistent=True,
            receive_maximum=self.settings.ingest.receive_maximum,
        )

    def problems(self) -> list[str]:
        """Why this hub should not get traffic now (empty when it should).

        A broker outage is not among them: it would take every replica out at once."""
        reasons: list[str] = []
        if not self._worker.is_alive():
            reasons.append("the ingest worker is not running")
        if self.store_failing:
            reasons.append("the store cannot be written")
        return reasons

    def broker_down_s(self) -> float:
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def waiting(self) -> int:
        """Readings received and not yet committed (read when /metrics is scraped,
        not counted per message on the hot path)."""
        return len(self._inbox) + self._in_hand_count

    def oldest_waiting_s(self) -> float:
        """The age of the oldest reading received and not yet committed."""
        try:
            head: datetime | None = self._inbox[0].received_at
        except IndexError:
            head = None
        oldest = min((t for t in (self._in_hand, head) if t is not None), default=None)
        return 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect; the rest stays at the broker."""
        self._stop.set()
        self._worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    # paho's network thread -------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        log.info("connected to %s", self.settings.mqtt.url)
        self.metrics.mqtt_connected.set(1)
        self._down_since = None
        client.subscribe(self._subscriptions())

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.metrics.mqtt_connected.set(0)
        if self._down_since is None:
            self._down_since = time.monotonic()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(_STATE_PREFIX):
            self._on_state_message(msg)
            client.ack(msg.mid, msg.qos)
            return
        self._inbox.append(
            Message(msg.topic, msg.payload, msg.mid, msg.qos, datetime.now(UTC), bool(msg.retain))
        )
        if not self._arrived.is_set():
            self._arrived.set()

    def _on_state_message(self, msg: mqtt.MQTTMessage) -> None:
        """Another replica (or this one) published a facility's state."""
        try:
            state = FacilityState.model_validate_json(msg.payload)
        except ValidationError as exc:
            self.metrics.rejected.labels("bad_state").inc()
            self.reject_log.warn(msg.topic, "bad_state", str(exc))
            return
        if msg.topic != facility_state_topic(state.facility) or state.facility not in self.derivers:
            self.metrics.rejected.labels("bad_state").inc()
            self.reject_log.warn(msg.topic, "bad_state", "topic and facility disagree")
            return
        self.on_remote_state(state)

    # the worker thread -----------------------------------------------------

    def _run(self) -> None:
        batch_size = self.settings.ingest.batch_size
        inbox = self._inbox
        while not self._stop.is_set():
            self._recompute_due()
            if not inbox:
                # Cleared after waking and before looking again: a message appended
                # meanwhile either set the event anew or is seen by that look.
                self._arrived.wait(0.2)
                self._arrived.clear()
                continue
            batch = [inbox.popleft() for _ in range(min(batch_size, len(inbox)))]
            self._in_hand, self._in_hand_count = batch[0].received_at, len(batch)
            self._process_guarded(batch)
            self._in_hand, self._in_hand_count = None, 0

    def _process_guarded(self, batch: list[Message]) -> None:
        """Readings in batches, an operator's command in its place between them."""
        start = 0
        for n, msg in enumerate(batch):
            if msg.topic == RESET_SEQ_TOPIC:
                if start < n:
                    self._process_readings(batch[start:n])
                self._reset_seq(msg)
                start = n + 1
        if start < len(batch):
            self._process_readings(batch[start:])

    def _reset_seq(self, msg: Message) -> None:
        """Forget the device's seq here, in every facility's tracker and in the store,
        so that a restarted hub forgets it too."""
        try:
            command = ResetSeq.model_validate_json(msg.payload)
        except ValidationError as exc:
            log.error("ignored a seq reset that does not parse: %s", str(exc)[:300])
            self.client.ack(msg.mid, msg.qos)
            return
        device = command.device
        for key in _keys_of(device, self._max_seq):
            del self._max_seq[key]
        touched = []
        for deriver in self.derivers.values():
            keys = _keys_of(device, deriver.tracker.seqs)
            for key in keys:
                del deriver.tracker.seqs[key]
            if keys:
                touched.append(deriver)
        states = [SavedState(d.state, d.tracker) for d in touched]
        self._retrying("commit", lambda: self.store.reset_seq(device, command.at))
        self._retrying("commit", lambda: self.store.commit([], states, [], Derived()))
        log.warning("the seq of %s was reset by an operator: its next reading starts again", device)
        self.client.ack(msg.mid, msg.qos)

    def _process_readings(self, batch: list[Message]) -> None:
        """No message may stop the worker: when a batch fails for a reason the
        checks did not foresee, its messages go through again one at a time, and
        the one that still fails is counted, logged and acknowledged."""
        try:
            self._process(batch)
            return
        except Exception:
            if self._stop.is_set():
                return  # the store commit gave up because the hub is stopping
            self.metrics.worker_errors.inc()
            log.exception("ingest failed on a batch of %d; retrying one by one", len(batch))
        self._restore_derivers()
        for msg in batch:
            try:
                self._process([msg])
            except Exception:
                if self._stop.is_set():
                    return
                self._restore_derivers()
                log.exception(
                    "dropped a message from %s that ingest cannot handle", _sender(msg.topic)
                )
                self._refuse(msg, "internal_error", "ingest failed on it; see the hub's log")
                self._keep_quarantined()
                self.client.ack(msg.mid, msg.qos)

    def _recompute_due(self) -> None:
        """Fold late readings in at their own time: when nothing waits, or while a
        backlog drains at least every ``[ingest] recompute_every_s`` and never
        more than a fifth of the worker's time (each recompute covers all late
        readings stored by then)."""
        late = [d for d in self.derivers.values() if d.tracker.late_from]
        if not late:
            return
        pause = max(self.settings.ingest.recompute_every_s, 4 * self._recompute_took)
        if self._inbox and time.monotonic() - self._recomputed_at < pause:
            return
        started = time.monotonic()
        for deriver in late:
            if self._stop.is_set():
                return
            try:
                self._recompute(deriver)
            except Exception:
                if self._stop.is_set():
                    return
                self.metrics.worker_errors.inc()
                log.exception("recomputing %s after late readings failed", deriver.facility.id)
        self._recomputed_at = time.monotonic()
        self._recompute_took = self._recomputed_at - started

    def _recompute(self, deriver: FacilityDeriver) -> None:
        since = datetime.fromisoformat(deriver.tracker.late_from)
        started = time.monotonic()
        done = self._retrying("read", lambda: recompute(self.store, deriver.facility, since))
        state = done.deriver.state
        state.revision = deriver.state.revision + 1
        state.snapshot_at = deriver.state.snapshot_at  # pictures are not replayed
        saved = SavedState(state, done.deriver.tracker)
        self._retrying("commit", lambda: self.store.commit([], [saved], [], done.derived))
        deriver.state, deriver.tracker = state, done.deriver.tracker
        self.metrics.recomputes.inc()
        log.info(
            "%s: folded late readings in from %s (%d readings since %s, %.2f s)",
            deriver.facility.id,
            since.isoformat(),
            done.readings,
            done.start.date().isoformat(),
            time.monotonic() - started,
        )
        self._publish(state.model_copy(deep=True))

    def _publish(self, state: FacilityState) -> None:
        self.client.publish(facility_state_topic(state.facility), encode(state), qos=1, retain=True)
        self.on_state(state)

    def _restore_derivers(self) -> None:
        """Back to the states last committed: a batch that failed half-way must not
        leave the readings it did not store in the live state."""
        saved = self._retrying("read", self.store.load_states)
        for facility, deriver in self.derivers.items():
            prior = saved.get(facility)
            deriver.state = prior.state if prior else FacilityState(facility=facility)
            deriver.tracker = prior.tracker if prior else Tracker()

    def _validate(self, msg: Message) -> tuple[str, Stream, Reading]:
        try:
            device, stream = parse_topic(msg.topic)
        except TopicError as exc:
            raise Rejected("bad_topic", str(exc)) from None
        if msg.retained and stream != Stream.STATUS:
            # Only status is retained by design; a retained reading would come back
            # on every subscribe, after a wiped session and a revoked account.
            raise Rejected("retained", f"{stream.value} published with the retain flag")
        limit = (
            self.settings.ingest.max_image_payload_bytes
            if stream == Stream.SNAPSHOT
            else self.settings.ingest.max_payload_bytes
        )
        if len(msg.payload) > limit:
            raise Rejected("oversized", f"{len(msg.payload)} bytes > {limit}")
        try:
            reading = parse_payload(stream, msg.payload)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise Rejected("malformed_json", str(exc)) from None
            raise Rejected("invalid_payload", str(exc)) from None
        if reading.device is not None and reading.device != device:
            # The broker's ACL ties a topic to one account; a payload naming another
            # device is forged or misconfigured, and must not count for either.
            raise Rejected(
                "device_mismatch", f"payload claims {reading.device!r}, topic says {device!r}"
            )
        if device not in self.router.devices:
            raise Rejected("unknown_device", f"{device!r} is not in the hub's configuration")
        return device, stream, reading

    def _refuse(self, msg: Message, reason: str, detail: str) -> None:
        """Count and log a refused message, and keep it in quarantine for operators."""
        sender = _sender(msg.topic)
        self.metrics.rejected.labels(reason).inc()
        self.reject_log.warn(sender, reason, detail)
        if self.reject_log.keep(sender, reason):
            self._quarantine.append(
                Quarantined(
                    msg.received_at,
                    msg.topic[:300],
                    sender,
                    reason,
                    detail[:2000],
                    len(msg.payload),
                    bytes(msg.payload[:QUARANTINE_PAYLOAD_BYTES]),
                )
            )
        else:
            self.metrics.quarantine_skipped.inc()

    def _keep_quarantined(self) -> None:
        if self._quarantine:
            entries, self._quarantine = self._quarantine, []
            keep = self.settings.ingest.quarantine_keep
            self._retrying("commit", lambda: self.store.quarantine(entries, keep))

    def _seq_jump(self, msg: Message, seq: int, previous: int | None) -> bool:
        """A seq far ahead of the device's last would hold back every later reading
        as out of order; a device that has never been seen sets its own start."""
        if previous is None or seq <= previous + self.settings.ingest.max_seq_jump:
            return False
        self._refuse(msg, "seq_jump", f"seq {seq} after {previous}")
        return True

    def _effective_time(
        self, reading: Reading, received_at: datetime
    ) -> tuple[datetime, list[Quality]]:
        """The device's time, unless it says its clock is unset or it lies in the future.

        A time in the past is trusted: it is how a device catching up on a
        backlog after an outage reports when each reading was taken."""
        if not reading.clock_synced:
            return _to_ms(received_at), [Quality.CLOCK_UNSYNCED]
        if reading.ts - received_at > self._max_skew:
            return _to_ms(received_at), [Quality.CLOCK_SKEW]
        return _to_ms(reading.ts.astimezone(UTC)), []

    def _process(self, batch: list[Message]) -> None:
        self._quarantine = []  # a batch tried again must not keep its refusals twice
        valid: list[tuple[Message, str, Stream, Reading]] = []
        statuses: list[DeviceStatus] = []
        for msg in batch:
            try:
                device, stream, reading = self._validate(msg)
            except Rejected as exc:
                self._refuse(msg, exc.reason, str(exc))
                continue
            if isinstance(reading, StatusPayload):
                # Retained and re-sent on every subscribe: not a seq-ordered reading.
                statuses.append(DeviceStatus(device, reading.state == "online", msg.received_at))
                continue
            valid.append((msg, device, stream, reading))

        keys = [(seq_key(device, r.epoch), r.seq) for _, device, _, r in valid]
        known = self._retrying("read", lambda: self.store.known(keys))
        records: list[Record] = []
        pictures: list[Picture] = []
        changed: dict[str, FacilityDeriver] = {}
        touched: dict[str, FacilityDeriver] = {}
        derived = Derived()
        for msg, device, stream, reading in valid:
            counted_in = seq_key(device, reading.epoch)
            key = (counted_in, reading.seq)
            if key in known:
                self.metrics.duplicates.inc()
                continue
            if self._seq_jump(msg, reading.seq, self._max_seq.get(counted_in)):
                continue
            route = self.router.route(device, reading)
            if route is None and not isinstance(reading, HeartbeatPayload):
                self._refuse(msg, "unknown_source", f"{stream.value} not mapped")
                continue
            known.add(key)
            when, clock_flags = self._effective_time(reading, msg.received_at)
            facility, source = route if route else (None, None)
            records.append(
                Record(
                    device=device,
                    seq=reading.seq,
                    stream=stream.value,
                    facility=facility,
                    source=source,
                    ts=when,
                    device_ts=reading.ts,
                    received_at=msg.received_at,
                    data=reading.model_dump(mode="json", exclude=_NOT_IN_DATA, exclude_none=True),
                    epoch=reading.epoch or "",
                )
            )
            if isinstance(reading, SnapshotPayload) and reading.jpeg_b64 and facility and source:
                self._picture(pictures, facility, source, when, reading)
            out_of_order = reading.seq < self._max_seq.get(counted_in, -1)
            if out_of_order:
                self.metrics.out_of_order.inc()
            else:
                self._max_seq[counted_in] = reading.seq
            if isinstance(reading, HeartbeatPayload):
                if not out_of_order:
                    statuses.append(
                        DeviceStatus(device, True, msg.received_at, reading.model_dump(mode="json"))
                    )
                continue
            assert facility is not None and source is not None
            if self.shared:
                continue  # derived by the facility's owner replica (hub/replicas.py)
            deriver = self.derivers[facility]
            touched[facility] = deriver
            if is_late(deriver, when):
                # Stored now, folded in at its own time by the recompute it asks for.
                mark_late(deriver, when)
                self.metrics.late.inc()
            elif fold(deriver, counted_in, reading, source, when, clock_flags, derived):
                changed[facility] = deriver

        self._commit(records, touched, statuses, derived)
        self._keep_quarantined()
        if pictures and self.snapshots is not None:
            self.snapshots.offer(pictures)  # checked and kept on the picture store's thread
        now = datetime.now(UTC)
        for stream, n in Counter(record.stream for record in records).items():
            self.metrics.accepted.labels(stream).inc(n)
        for msg in batch:
            self.metrics.lag.observe((now - msg.received_at).total_seconds())
        for deriver in changed.values():
            self._publish(deriver.state.model_copy(deep=True))
        for msg in batch:
            self.client.ack(msg.mid, msg.qos)

    def _commit(
        self,
        records: list[Record],
        touched: dict[str, FacilityDeriver],
        statuses: list[DeviceStatus],
        derived: Derived,
    ) -> None:
        states = [SavedState(d.state, d.tracker) for d in touched.values()]
        self._retrying("commit", lambda: self.store.commit(records, states, statuses, derived))

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Retry until the store answers: unacked readings must not be dropped, and
        a store that fails is not the message's fault."""
        delay = 0.5
        while True:
            try:
                result = call()
                self.store_failing = False
                return result
            except Exception:
                self.store_failing = True
                self.metrics.store_errors.inc()
                log.exception("store %s failed; retrying in %.1f s", what, delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 30)

    def _picture(
        self,
        pictures: list[Picture],
        facility: str,
        source: str,
        when: datetime,
        reading: SnapshotPayload,
    ) -> None:
        """Collect a picture to keep; a broken one is counted and dropped (its
        count and metadata are kept with the reading)."""
        assert reading.jpeg_b64 is not None and reading.width and reading.height
        try:
            jpeg = decode_jpeg(reading.jpeg_b64)
        except ValueError as exc:
            self.metrics.rejected.labels("bad_image").inc()
            self.reject_log.warn(source.split("/")[0], "bad_image", str(exc))
            return
        pictures.append(
            Picture(
                facility,
                source,
                when,
                jpeg,
                reading.width,
                reading.height,
                reading.people,
                reading.spots,
                reading.spots_in_use,
            )
        )


# What a stored reading keeps apart from its data (the picture goes to its own store).
_NOT_IN_DATA = {"seq", "ts", "jpeg_b64", "device", "epoch"}


def _to_ms(when: datetime) -> datetime:
    """In whole milliseconds, as stored: a recompute must see the same times."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _keys_of(device: str, seqs: dict[str, int]) -> list[str]:
    """The seq keys a device counts in: its own, and one per epoch it has sent."""
    return [key for key in seqs if key.partition("#")[0] == device]


def _sender(topic: str) -> str:
    parts = topic.split("/")
    return parts[3][:64] if len(parts) > 3 else json.dumps(topic[:64])
