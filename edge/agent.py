"""The agent: poll each source on its interval, store, publish, report health.

The agent's loop reads whichever sources are due, stamps the readings with
the device's clock (marked when the clock is not synchronised), and hands them
to the outbox; the publisher drains the outbox on its own thread. A failing
source is retried with exponential backoff and jitter, and the others carry
on. Every ``heartbeat_s`` a heartbeat reports the agent's version, uptime,
outbox depth, readings dropped, free disk and CPU temperature.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge.backoff import Backoff
from edge.clock import ClockCheck
from edge.config import EdgeSettings, SourceConfig
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.sources import Readings, Source, SourceError
from edge.sources.simulated import (
    SimulatedCamera,
    SimulatedCameraConfig,
    SimulatedGate,
    SimulatedGateConfig,
    SimulatedRink,
    SimulatedRinkConfig,
)
from edge.systemd import Notifier
from ruuhka import __version__
from ruuhka.contract import Stream

log = logging.getLogger("ruuhka.edge")

_FIRST_HEARTBEAT_S = 5.0
_CLOCK_JUMP_S = 2.0
_COMMIT_RETRY_S = 5.0


def build_source(config: SourceConfig, seed: int | None = None) -> Source:
    """The source for a config; hardware libraries are imported only when used."""
    if isinstance(config, SimulatedGateConfig):
        return SimulatedGate(config, seed)
    if isinstance(config, SimulatedRinkConfig):
        return SimulatedRink(config, seed)
    if isinstance(config, SimulatedCameraConfig):
        return SimulatedCamera(config, seed)
    if config.type == "gpio_gate":
        from edge.sources.gpio import GpioGate

        return GpioGate(config)
    if config.type == "http_poll":
        from edge.sources.http_poll import HttpPoll

        return HttpPoll(config)
    if config.type == "yard_camera":
        from edge.sources.yard import build_yard_camera

        return build_yard_camera(config, seed)
    if config.type == "camera":
        from edge.sources.camera import CameraSource

        return CameraSource(config)
    if config.type == "onewire_rink":
        from edge.sources.onewire import OneWireRink

        return OneWireRink(config)
    from edge.sources.modbus import ModbusSource

    return ModbusSource(config)


def source_label(source: Source) -> str:
    return f"{type(source).__name__} {source.name!r}"


class Deferred:
    """A source that could not be set up (pins busy at boot, a library missing):
    setting it up is retried like a failing read, and the other sources run."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.type
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        self.inner: Source | None = None

    def read(self, now: datetime) -> Readings:
        if self.inner is None:
            self.inner = build_source(self.config)
            self.name = self.inner.name
            log.info("%s is set up now", source_label(self.inner))
        return self.inner.read(now)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def build_sources(configs: list[SourceConfig]) -> list[Source]:
    sources: list[Source] = []
    for index, config in enumerate(configs):
        try:
            sources.append(build_source(config))
        except Exception as exc:
            log.warning("sources[%d] %s cannot be set up yet: %s", index, config.type, exc)
            sources.append(Deferred(config))
    return sources


class Agent:
    def __init__(
        self,
        settings: EdgeSettings,
        sources: list[Source] | None = None,
        clock: Callable[[], datetime] | None = None,
        clock_check: ClockCheck | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources if sources is not None else build_sources(settings.sources)
        self.outbox = Outbox(
            settings.state_dir / f"{settings.device_id}.outbox.db",
            settings.device_id,
            max_rows=settings.outbox.max_rows,
            max_picture_bytes=settings.outbox.max_picture_bytes,
            commit_interval_s=settings.outbox.commit_interval_s,
            delete_delay_s=settings.outbox.delete_delay_s,
        )
        self.publisher = Publisher(
            settings.mqtt,
            settings.device_id,
            self.outbox,
            window=settings.publish_window,
            backoff=Backoff(settings.reconnect.min_s, settings.reconnect.max_s),
        )
        self.outbox.on_commit = self.publisher.notify
        self.clock = clock or (lambda: datetime.now(UTC))
        self.clock_check = clock_check or ClockCheck(settings.clock_check)
        self.readings = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._failing: dict[int, Backoff] = {}
        self._commit_failing = False
        self._commit_retry_at = 0.0
        self._systemd = Notifier()

    def run(self) -> None:
        """Until stop(): read due sources, then sleep until something is due."""
        self.publisher.start()
        self._systemd.notify("READY=1")
        start = time.monotonic()
        due = {id(s): start for s in self.sources}
        next_heartbeat = start + min(_FIRST_HEARTBEAT_S, self.settings.heartbeat_s)
        watchdog = self._systemd.watchdog_s
        next_watchdog = start
        wall_anchor = (time.time(), start)
        try:
            while not self._stop.is_set():
                now_mono = time.monotonic()
                wall_anchor = self._check_jump(wall_anchor, now_mono)
                for source in self.sources:
                    if now_mono >= due[id(source)]:
                        due[id(source)] = now_mono + self._read(source)
                if now_mono >= next_heartbeat:
                    next_heartbeat = now_mono + self.settings.heartbeat_s
                    self._heartbeat()
                self._commit(now_mono)
                wake = [*due.values(), next_heartbeat]
                if (flush_at := self.outbox.flush_due_at()) is not None:
                    wake.append(max(flush_at, self._commit_retry_at))
                if watchdog is not None:
                    if now_mono >= next_watchdog and self.publisher.alive:
                        self._systemd.notify("WATCHDOG=1")
                        next_watchdog = now_mono + watchdog
                    wake.append(next_watchdog)
                self._stop.wait(max(0.0, min(wake) - time.monotonic()))
        finally:
            self._systemd.notify("STOPPING=1")
            self._commit(time.monotonic(), force=True)
            self.publisher.stop()
            try:
                self.outbox.close()
            except sqlite3.Error as exc:
                log.error("readings not yet on disk are lost: %s", exc)
            for source in self.sources:
                try:
                    source.close()
                except Exception:
                    log.exception("%s did not close cleanly", source_label(source))
            log.info(
                "%s stopped after %.0f s: %d readings taken, %d published, %d outbox commits",
                self.settings.device_id,
                time.monotonic() - self.started,
                self.readings,
                self.publisher.published,
                self.outbox.commits,
            )

    def stop(self) -> None:
        self._stop.set()

    def _commit(self, now_mono: float, force: bool = False) -> None:
        """Commit when due; a full or broken disk keeps readings in memory and is retried."""
        if now_mono < self._commit_retry_at and not force:
            return
        try:
            if force:
                self.outbox.flush()
            else:
                self.outbox.maybe_flush()
        except sqlite3.Error as exc:
            if not self._commit_failing:
                log.error("cannot write the outbox (%s); readings wait in memory", exc)
            self._commit_failing = True
            self._commit_retry_at = now_mono + _COMMIT_RETRY_S
            return
        if self._commit_failing:
            log.info("the outbox is written again")
        self._commit_failing = False

    def _check_jump(self, anchor: tuple[float, float], now_mono: float) -> tuple[float, float]:
        """Log when the wall clock steps (NTP's first sync, someone setting the date)."""
        wall = time.time()
        jump = (wall - anchor[0]) - (now_mono - anchor[1])
        if abs(jump) > _CLOCK_JUMP_S:
            log.warning("the wall clock jumped by %+.1f s", jump)
        return wall, now_mono

    def _read(self, source: Source) -> float:
        """Read one source; returns the seconds until it is due again."""
        now = self.clock()
        try:
            readings = source.read(now)
        except Exception as exc:
            return self._failed(source, exc)
        backoff = self._failing.pop(id(source), None)
        if backoff is not None:
            log.info("%s reads again after %d failures", source_label(source), backoff.failures)
        if readings:
            self.outbox.put_many(readings, now, self.clock_check.synced(now), commit=False)
            self.readings += len(readings)
        return source.interval_s

    def _failed(self, source: Source, exc: Exception) -> float:
        backoff = self._failing.get(id(source))
        if backoff is None:
            backoff = Backoff(source.interval_s, max(source.interval_s, source.max_backoff_s))
            self._failing[id(source)] = backoff
            if isinstance(exc, SourceError):
                log.warning("%s failed: %s; retrying with backoff", source_label(source), exc)
            else:
                log.exception("%s failed; retrying with backoff", source_label(source))
        else:
            log.debug("%s failed again: %s", source_label(source), exc)
        return backoff.next()

    def _heartbeat(self) -> None:
        now = self.clock()
        fields: dict[str, object] = {
            "agent_version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "outbox_depth": self.outbox.depth(),
            "dropped": self.outbox.dropped(),
        }
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(self.settings.state_dir).free
            fields["disk_free_mb"] = round(free / 1e6, 1)
        temp = cpu_temperature()
        if temp is not None:
            fields["cpu_temp_c"] = temp
        synced = self.clock_check.synced(now)
        self.outbox.put_many([(Stream.HEARTBEAT, fields)], now, synced, commit=False)


def cpu_temperature() -> float | None:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp", encoding="ascii") as f:
            return round(int(f.read().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None
