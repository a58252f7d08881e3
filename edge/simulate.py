"""Run simulated devices for every source in a hub configuration.

Each simulated device is a real agent (outbox, publisher, heartbeat, last
will) with simulated sources, so the demo and the benchmarks exercise the same
path as a Pi. On request the simulator also does what real devices do to a
hub: counters that restart from zero, clocks that jump, network outages, and a
backlog of hours of readings that arrives all at once when a device that was
offline comes back.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.agent import Agent, build_source
from edge.clock import ClockCheck, ClockCheckMode
from edge.config import EdgeSettings, OutboxSettings, ReconnectSettings, SourceConfig
from edge.sources import Source
from edge.sources.simulated import (
    SimulatedCameraConfig,
    SimulatedGate,
    SimulatedGateConfig,
    SimulatedRinkConfig,
)
from edge.sources.yard import YardCameraConfig
from hub.config import HubSettings
from ruuhka import __version__
from ruuhka.contract import Stream
from ruuhka.settings import MqttSettings

log = logging.getLogger("ruuhka.simulate")

_FAULT_TICK_S = 0.25


@dataclass
class Faults:
    """What goes wrong, and how often. Devices take turns, spread over each period."""

    counter_reset_every_s: float | None = None
    clock_jump_s: float = 0.0
    clock_jump_after_s: float | None = None
    outage_every_s: float | None = None
    outage_for_s: float = 60.0

    @property
    def any(self) -> bool:
        return bool(
            self.counter_reset_every_s
            or (self.clock_jump_s and self.clock_jump_after_s is not None)
            or self.outage_every_s
        )


class DeviceClock:
    """A device's wall clock, which the simulator can make jump."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def agents_for(
    hub: HubSettings,
    mqtt: MqttSettings,
    state_dir: Path,
    interval_s: float | None = None,
    always_open: bool = True,
    clock_check: ClockCheckMode = "floor",
    reconnect: ReconnectSettings | None = None,
    yard_camera: bool = False,
) -> list[Agent]:
    """One agent per device named in the hub's configuration.

    ``clock_check`` is "floor" by default: a simulation runs on whatever machine
    is at hand, whose kernel may not report NTP status even with a right clock.
    ``yard_camera``: cameras draw a yard and publish real anonymised pictures
    (edge/sources/yard.py) where the camera extra and models are installed;
    otherwise, and by default, they send only a simulated count.
    """
    configs: dict[str, list] = {}
    for facility in hub.facilities:
        capacity = facility.capacity or 100
        for source in facility.sources:
            found = configs.setdefault(source.device, [])
            if source.counter or not (source.sensor or source.camera):
                found.append(
                    SimulatedGateConfig(
                        counter=source.counter or "main",
                        kind=facility.kind.value,
                        capacity=capacity,
                        always_open=always_open,
                        interval_s=interval_s or 3.0,
                    )
                )
            if source.sensor:
                found.append(SimulatedRinkConfig(sensor=source.sensor, interval_s=interval_s or 20))
            if source.camera and yard_camera:
                found.append(YardCameraConfig(camera=source.camera, interval_s=interval_s or 5))
            elif source.camera:
                found.append(
                    SimulatedCameraConfig(
                        camera=source.camera,
                        kind=facility.kind.value,
                        capacity=capacity,
                        always_open=always_open,
                        interval_s=interval_s or 10,
                    )
                )
    agents = []
    for index, (device, sources) in enumerate(sorted(configs.items())):
        settings = EdgeSettings(
            device_id=device,
            state_dir=state_dir,
            mqtt=mqtt,
            sources=sources,
            heartbeat_s=60,
            clock_check=clock_check,
            reconnect=reconnect or ReconnectSettings(),
            outbox=OutboxSettings(),
        )
        agents.append(
            Agent(
                settings,
                [_build(c, index) for c in sources],
                clock=DeviceClock(),
                clock_check=ClockCheck(clock_check),
            )
        )
    return agents


def _build(config: SourceConfig, seed: int) -> Source:
    """The source; a yard camera without OpenCV or its models becomes a simulated count."""
    try:
        return build_source(config, seed=seed)
    except (ImportError, RuntimeError) as exc:  # RuntimeError: ModelMissing
        if not isinstance(config, YardCameraConfig):
            raise
        log.warning(
            "the demo camera needs the camera extra and its models (make demo installs "
            "them): %s; sending simulated counts without a picture",
            exc,
        )
        fallback = SimulatedCameraConfig(camera=config.camera, interval_s=config.interval_s)
        return build_source(fallback, seed=seed)


def backfill(
    agent: Agent,
    hours: float,
    sources: list[Source] | None = None,
    end: datetime | None = None,
) -> int:
    """Fill the agent's outbox with ``hours`` of readings up to ``end``, as a
    device offline that long would have: every source at its interval,
    heartbeats included, stamped with their (past) device time. Returns the
    number of readings."""
    end = end or datetime.now(UTC)
    start = end - timedelta(hours=hours)
    chosen = agent.sources if sources is None else sources
    timeline: list[tuple[datetime, int]] = [(start, i) for i in range(len(chosen) + 1)]
    heapq.heapify(timeline)
    heartbeat = len(chosen)
    count = 0
    while timeline:
        when, index = heapq.heappop(timeline)
        if when >= end:
            continue
        if index == heartbeat:
            readings = [(Stream.HEARTBEAT, _heartbeat_fields(agent, when - start))]
            step = agent.settings.heartbeat_s
        else:
            readings = chosen[index].read(when)
            step = chosen[index].interval_s
        agent.outbox.put_many(readings, when, True)
        count += len(readings)
        heapq.heappush(timeline, (when + timedelta(seconds=step), index))
    agent.outbox.flush()
    return count


def _heartbeat_fields(agent: Agent, uptime: timedelta) -> dict[str, object]:
    return {
        "agent_version": __version__,
        "uptime_s": round(uptime.total_seconds(), 1),
        "outbox_depth": agent.outbox.depth(),
        "dropped": agent.outbox.dropped(),
    }


def _inject(agents: list[Agent], faults: Faults, stop: threading.Event) -> None:
    """Apply the faults on schedule until stop; device i of n is offset by i/n of a period."""
    started = time.monotonic()
    n = max(1, len(agents))
    done: dict[tuple[str, int, int], bool] = {}
    jumped = False
    while not stop.wait(_FAULT_TICK_S):
        elapsed = time.monotonic() - started
        for i, agent in enumerate(agents):
            name = agent.settings.device_id
            if faults.counter_reset_every_s:
                period = faults.counter_reset_every_s
                k = int((elapsed - period * i / n) // period)
                if k >= 1 and not done.get(("reset", i, k)):
                    done["reset", i, k] = True
                    for source in agent.sources:
                        if isinstance(source, SimulatedGate):
                            source.reset()
                    log.info("%s: counters restart from zero", name)
            if faults.outage_every_s:
                period = faults.outage_every_s
                k = int((elapsed - period * i / n) // period)
                if k >= 1 and not done.get(("outage", i, k)):
                    done["outage", i, k] = True
                    agent.publisher.suspend(faults.outage_for_s)
                    log.info("%s: network outage for %.0f s", name, faults.outage_for_s)
        if (
            not jumped
            and faults.clock_jump_after_s is not None
            and faults.clock_jump_s
            and elapsed >= faults.clock_jump_after_s
        ):
            jumped = True
            for agent in agents:
                if isinstance(agent.clock, DeviceClock):
                    agent.clock.offset += timedelta(seconds=faults.clock_jump_s)
            log.info("device clocks jump by %+.0f s", faults.clock_jump_s)


def run(agents: list[Agent], stop: threading.Event, faults: Faults | None = None) -> None:
    threads = [threading.Thread(target=a.run, name=a.settings.device_id) for a in agents]
    for thread in threads:
        thread.start()
    if faults is not None and faults.any:
        threads.append(threading.Thread(target=_inject, args=(agents, faults, stop), daemon=True))
        threads[-1].start()
    log.info("simulating %d devices", len(agents))
    try:
        stop.wait()
    finally:
        for agent in agents:
            agent.stop()
        for thread in threads:
            thread.join(timeout=10)
