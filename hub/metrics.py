"""Prometheus metrics, one registry per hub so that tests can run several."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

REJECT_REASONS = (
    "bad_topic",
    "oversized",
    "malformed_json",
    "invalid_payload",
    "unknown_device",
    "device_mismatch",
    "unknown_source",
    "bad_state",
    "retained",
    "seq_jump",
    "internal_error",
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "ruuhka_readings_accepted", "Readings stored.", ["stream"], registry=r
        )
        self.rejected = Counter(
            "ruuhka_readings_rejected", "Payloads refused, by reason.", ["reason"], registry=r
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.duplicates = Counter(
            "ruuhka_readings_duplicate",
            "Readings already stored (same device and seq).",
            registry=r,
        )
        self.out_of_order = Counter(
            "ruuhka_readings_out_of_order",
            "Readings with a lower seq than the device's newest: stored, folded in by a recompute.",
            registry=r,
        )
        self.quarantine_skipped = Counter(
            "ruuhka_quarantine_skipped",
            "Refused messages counted but not kept: more than ten a minute from one sender "
            "for one reason.",
            registry=r,
        )
        self.late = Counter(
            "ruuhka_readings_late",
            "Readings older than their facility's state: stored, folded in at their own time "
            "by a recompute.",
            registry=r,
        )
        self.recomputes = Counter(
            "ruuhka_recomputes",
            "Recomputes of a facility's derived series after late readings.",
            registry=r,
        )
        self.worker_errors = Counter(
            "ruuhka_ingest_worker_errors",
            "Batches the ingest worker failed on unexpectedly (then retried one by one).",
            registry=r,
        )
        self.store_errors = Counter(
            "ruuhka_store_errors", "Failed store reads and commits (retried).", registry=r
        )
        self.lag = Histogram(
            "ruuhka_ingest_lag_seconds",
            "From receipt at the hub to commit in the store.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.queue_depth = Gauge(
            "ruuhka_ingest_queue_depth", "Received, not yet committed.", registry=r
        )
        self.mqtt_connected = Gauge(
            "ruuhka_mqtt_connected", "1 while connected to the broker.", registry=r
        )
        self.mqtt_down_seconds = Gauge(
            "ruuhka_mqtt_down_seconds",
            "How long the broker has been unreachable; 0 while connected.",
            registry=r,
        )
        self.oldest_waiting_seconds = Gauge(
            "ruuhka_ingest_oldest_waiting_seconds",
            "Age of the oldest reading received and not yet committed; 0 when none waits.",
            registry=r,
        )
        self.live_clients = Gauge("ruuhka_live_clients", "Open WebSocket connections.", registry=r)

    def watch_store(self, stats: Callable[[], dict[str, float]]) -> None:
        """Export the store's own counters as ``ruuhka_store_<name>_total``."""
        self.registry.register(_StoreCounters(stats))


class _StoreCounters(Collector):
    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in sorted(self._stats().items()):
            yield CounterMetricFamily(
                f"ruuhka_store_{name}", f"Store counter: {name.replace('_', ' ')}.", value=value
            )
