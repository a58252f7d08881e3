"""The agent: poll each source on its interval, store, publish, report health."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import UTC, datetime

from edge.config import EdgeSettings, SourceConfig
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.sources import Source
from edge.sources.simulated import (
    SimulatedCamera,
    SimulatedCameraConfig,
    SimulatedGate,
    SimulatedGateConfig,
    SimulatedRink,
)
from ruuhka import __version__
from ruuhka.contract import Stream

log = logging.getLogger("ruuhka.edge")

# A Pi without a real-time clock boots at the last saved time or in 1970; any
# time before this build cannot be right.
EARLIEST_PLAUSIBLE = datetime(2026, 1, 1, tzinfo=UTC)


def build_source(config: SourceConfig, seed: int | None = None) -> Source:
    if isinstance(config, SimulatedGateConfig):
        return SimulatedGate(config, seed)
    if isinstance(config, SimulatedCameraConfig):
        return SimulatedCamera(config, seed)
    return SimulatedRink(config, seed)


def clock_synced(now: datetime) -> bool:
    return now >= EARLIEST_PLAUSIBLE


class Agent:
    def __init__(self, settings: EdgeSettings, sources: list[Source] | None = None) -> None:
        self.settings = settings
        self.sources = (
            sources if sources is not None else [build_source(c) for c in settings.sources]
        )
        self.outbox = Outbox(
            settings.state_dir / f"{settings.device_id}.outbox.db",
            settings.device_id,
            settings.outbox.max_rows,
        )
        self.publisher = Publisher(settings.mqtt, settings.device_id, self.outbox)
        self.started = time.monotonic()
        self._stop = threading.Event()

    def run(self) -> None:
        """Until stop(): read due sources, then sleep until the next one is due."""
        self.publisher.start()
        due = {id(s): time.monotonic() for s in self.sources}
        next_heartbeat = time.monotonic() + 5
        try:
            while not self._stop.is_set():
                now_mono = time.monotonic()
                for source in self.sources:
                    if now_mono >= due[id(source)]:
                        due[id(source)] = now_mono + source.interval_s
                        self._read(source)
                if now_mono >= next_heartbeat:
                    next_heartbeat = now_mono + self.settings.heartbeat_s
                    self._heartbeat()
                wake = min([*due.values(), next_heartbeat])
                self._stop.wait(max(0.0, wake - time.monotonic()))
        finally:
            self.publisher.stop()
            self.outbox.close()

    def stop(self) -> None:
        self._stop.set()

    def _read(self, source: Source) -> None:
        now = datetime.now(UTC)
        try:
            readings = source.read(now)
        except Exception:
            log.exception("source %s failed; trying again on its next interval", source.name)
            return
        if readings:
            self.outbox.put_many(readings, now, clock_synced(now))
            self.publisher.notify()

    def _heartbeat(self) -> None:
        now = datetime.now(UTC)
        disk = shutil.disk_usage(self.settings.state_dir)
        fields = {
            "agent_version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "outbox_depth": self.outbox.depth(),
            "dropped": self.outbox.dropped(),
            "disk_free_mb": round(disk.free / 1e6, 1),
        }
        temp = cpu_temperature()
        if temp is not None:
            fields["cpu_temp_c"] = temp
        self.outbox.put(Stream.HEARTBEAT, fields, now, clock_synced(now))
        self.publisher.notify()


def cpu_temperature() -> float | None:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp", encoding="ascii") as f:
            return round(int(f.read().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None
