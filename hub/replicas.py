"""Several hub replicas on one broker: who stores a reading, who derives a state.

Storing scales out through the MQTT 5 shared subscription
``$share/{group}/ruuhka/v1/devices/#``: the broker hands each reading to one
replica of the group, which validates and stores it (the store's key on
(device, seq) makes a redelivered reading land once, whichever replica gets it).

Deriving cannot be split that way: occupancy is a fold over a device's readings
in order, and two replicas folding halves of the stream would publish different
numbers for one facility. So every facility has exactly one owner, chosen by
rendezvous hashing of its id over ``[ingest] replicas`` (the same list on every
replica; adding or removing a replica moves only the facilities it gains or
loses). The owner has a second, non-shared session subscribed to its
facilities' devices only; the broker delivers each device's readings to it in
publish order, so it folds exactly what a hub on its own would fold. Each
facility's tracker keeps the newest seq applied per device, committed with the
state before the readings are acknowledged, so a redelivery after a crash is
skipped. Only the owner publishes the facility's state; every replica reads
all states back from the retained state topics and serves any browser.

The owner's state and tracker live in the shared store, so another replica can
take a facility over when the list changes. A replica that is down leaves its
facilities' live state paused (the broker queues its stream); nothing is lost.
Two replicas with different lists would both derive some facility: each owner
watches its facilities' state topics and counts a state that another replica
published (``ruuhka_replica_state_conflicts_total``) and logs it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter, Gauge

from hub.config import HubSettings
from hub.ingest import Ingest, Message, Rejected
from hub.metrics import Metrics
from hub.rederive import fold, is_late, mark_late
from hub.state import FacilityDeriver
from hub.store import Derived, Store
from ruuhka.contract import (
    RESET_SEQ_TOPIC,
    TOPIC_ROOT,
    FacilityState,
    HeartbeatPayload,
    StatusPayload,
    encode,
    facility_state_topic,
    seq_key,
)
from ruuhka.settings import MqttSettings

log = logging.getLogger("ruuhka.replicas")

REPLICA_PROPERTY = "ruuhka-replica"


# How long an owner waits for the readings it has seen to be stored before it
# recomputes a facility after late readings.
STORED_WAIT_S = 60.0


def owner_of(facility_id: str, replicas: Sequence[str]) -> str:
    """The replica that derives this facility: highest hash of (replica, facility)."""

    def weight(replica: str) -> bytes:
        return hashlib.blake2b(f"{replica}\0{facility_id}".encode(), digest_size=8).digest()

    return max(replicas, key=weight)


def device_filter(device: str) -> str:
    return f"{TOPIC_ROOT}/devices/{device}/+"


class Partition:
    """What this replica owns, by the configured replica list."""

    def __init__(self, settings: HubSettings) -> None:
        ingest = settings.ingest
        if ingest.replica_id is None:
            raise ValueError("a partition needs [ingest] replica_id and replicas")
        self.replica_id = ingest.replica_id
        self.facilities = {f.id for f in settings.facilities}
        self.owned = {
            f.id for f in settings.facilities if owner_of(f.id, ingest.replicas) == self.replica_id
        }
        every = {s.device for f in settings.facilities for s in f.sources}
        self.devices = sorted(
            {s.device for f in settings.facilities if f.id in self.owned for s in f.sources}
        )
        self.other_devices = sorted(every - set(self.devices))


class ReplicaMetrics:
    def __init__(self, metrics: Metrics, partition: Partition) -> None:
        r = metrics.registry
        self.owned = Gauge(
            "ruuhka_replica_owned_facilities", "Facilities this replica derives.", registry=r
        )
        self.owned.set(len(partition.owned))
        self.connected = Gauge(
            "ruuhka_replica_derive_connected",
            "1 while the owner session is subscribed to this replica's facilities' devices.",
            registry=r,
        )
        self.skipped = Counter(
            "ruuhka_replica_derive_skipped",
            "Readings not folded in again: redelivered, or older than one already applied.",
            registry=r,
        )
        self.conflicts = Counter(
            "ruuhka_replica_state_conflicts",
            "States of this replica's facilities published by another replica: the replica "
            "lists differ.",
            registry=r,
        )


class OwnerIngest(Ingest):
    """Derives and publishes the state of the facilities this replica owns.

    It reuses the ingest worker (validation, batching, commit retries, manual
    acks) on its own session, and stores no readings: the shared session does.
    """

    def __init__(
        self,
        settings: HubSettings,
        store: Store,
        metrics: Metrics,
        on_state: Callable[[FacilityState], None],
        partition: Partition,
    ) -> None:
        self.partition = partition
        self.replica_metrics = ReplicaMetrics(metrics, partition)
        super().__init__(settings, store, metrics, on_state)
        self.derivers = {k: d for k, d in self.derivers.items() if k in partition.owned}
        self._publish_properties = Properties(PacketTypes.PUBLISH)
        self._publish_properties.UserProperty = [(REPLICA_PROPERTY, partition.replica_id)]
        self.client.on_subscribe = self._on_subscribe
        # Readings of facilities waiting for a recompute: another replica's session
        # stores them, and the recompute must not start before they are stored.
        self._awaiting: set[tuple[str, int]] = set()
        self._awaiting_since = 0.0

    def _mqtt(self) -> MqttSettings:
        ingest, mqtt_settings = self.settings.ingest, self.settings.mqtt
        if ingest.derive_username is None:
            return mqtt_settings
        return mqtt_settings.model_copy(
            update={"username": ingest.derive_username, "password": ingest.derive_password}
        )

    def _client_id(self) -> str:
        ingest = self.settings.ingest
        return f"{ingest.client_id}-{ingest.replica_id}-derive"

    def _subscriptions(self) -> list[tuple[str, int]]:
        devices = [(device_filter(d), 1) for d in self.partition.devices]
        states = [(facility_state_topic(f), 0) for f in sorted(self.partition.owned)]
        return [*devices, *states, (RESET_SEQ_TOPIC, 1)]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the owner session: %s", reason_code)
            return
        # The session outlives a restart with another replica list: drop what this
        # replica no longer owns (unsubscribing from a filter never held is harmless).
        stale = [device_filter(d) for d in self.partition.other_devices] + [
            facility_state_topic(f)
            for f in sorted(self.partition.facilities - self.partition.owned)
        ]
        if stale:
            client.unsubscribe(stale)
        wanted = self._subscriptions()
        if wanted:
            client.subscribe(wanted)
        else:
            self.replica_metrics.connected.set(1)
        log.info(
            "replica %s derives %d of %d facilities",
            self.partition.replica_id,
            len(self.partition.owned),
            len(self.partition.facilities),
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # The last is the operators' seq resets: a broker whose roles predate them
        # refuses it, and the owner session derives all the same.
        failed = [code for code in reason_codes[:-1] if code.is_failure]
        if reason_codes and reason_codes[-1].is_failure:
            log.warning(
                "the broker refused the seq resets subscription; see ruuhka device reset-seq"
            )
        if failed:
            log.error("broker refused the owner subscriptions: %s", failed)
            return
        self.replica_metrics.connected.set(1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.replica_metrics.connected.set(0)
        if not self._stop.is_set():
            log.warning("owner session disconnected (%s); reconnecting", reason_code)

    def _on_state_message(self, msg: mqtt.MQTTMessage) -> None:
        """A live (not retained) state of an owned facility must be this replica's."""
        if msg.retain:
            return
        properties = getattr(msg.properties, "UserProperty", None) or []
        publisher = dict(properties).get(REPLICA_PROPERTY)
        if publisher != self.partition.replica_id:
            self.replica_metrics.conflicts.inc()
            log.error(
                "%s: state published by %r as well as by this replica (%s); "
                "give every replica the same [ingest] replicas list",
                msg.topic,
                publisher,
                self.partition.replica_id,
            )

    def _process(self, batch: list[Message]) -> None:
        touched: dict[str, FacilityDeriver] = {}
        changed: dict[str, FacilityDeriver] = {}
        derived = Derived()
        for msg in batch:
            try:
                device, _stream, reading = self._validate(msg)
            except Rejected:
                continue  # counted and logged by the replica that stores it
            if isinstance(reading, StatusPayload | HeartbeatPayload):
                continue
            route = self.router.route(device, reading)
            deriver = self.derivers.get(route[0]) if route else None
            if route is None or deriver is None:
                continue  # unmapped, or another replica's facility on a shared device
            seqs = deriver.tracker.seqs
            counted_in = seq_key(device, reading.epoch)
            newest = seqs.get(counted_in)
            if newest is not None and reading.seq > newest + self.settings.ingest.max_seq_jump:
                continue  # counted and logged by the replica that stores it
            if reading.seq <= seqs.get(counted_in, -1):
                self.replica_metrics.skipped.inc()
                continue
            touched[route[0]] = deriver
            when, clock_flags = self._effective_time(reading, msg.received_at)
            if is_late(deriver, when):
                mark_late(deriver, when)
                self.metrics.late.inc()
            elif fold(deriver, counted_in, reading, route[1], when, clock_flags, derived):
                changed[route[0]] = deriver
            if deriver.tracker.late_from:
                if not self._awaiting:
                    self._awaiting_since = time.monotonic()
                self._awaiting.add((counted_in, reading.seq))
        if touched:
            self._commit([], touched, [], derived)
        for deriver in changed.values():
            self._publish(deriver.state.model_copy(deep=True))
        for msg in batch:
            self.client.ack(msg.mid, msg.qos)

    def _publish(self, state: FacilityState) -> None:
        self.client.publish(
            facility_state_topic(state.facility),
            encode(state),
            qos=1,
            retain=True,
            properties=self._publish_properties,
        )
        self.on_state(state)

    def _recompute_due(self) -> None:
        """Recompute only from stored readings: wait (up to STORED_WAIT_S) until the
        replica that stores them has committed what this one has seen."""
        if self._awaiting:
            try:
                missing = self._awaiting - self.store.known(sorted(self._awaiting))
            except Exception:
                log.exception("could not check which readings are stored")
                return
            waited = time.monotonic() - self._awaiting_since
            if missing and waited < STORED_WAIT_S:
                return
            if missing:
                log.warning(
                    "recomputing without %d readings not stored after %.0f s", len(missing), waited
                )
        super()._recompute_due()
        if not any(d.tracker.late_from for d in self.derivers.values()):
            self._awaiting.clear()
