"""Run simulated devices for every source in a hub configuration.

Each simulated device is a real agent (outbox, publisher, heartbeat, last
will) with simulated sources, so the demo exercises the same path as a Pi.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from edge.agent import Agent, build_source
from edge.config import EdgeSettings
from edge.sources.simulated import SimulatedCameraConfig, SimulatedGateConfig, SimulatedRinkConfig
from hub.config import HubSettings
from ruuhka.settings import MqttSettings

log = logging.getLogger("ruuhka.simulate")


def agents_for(
    hub: HubSettings,
    mqtt: MqttSettings,
    state_dir: Path,
    interval_s: float | None = None,
    always_open: bool = True,
) -> list[Agent]:
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
            if source.camera:
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
            device_id=device, state_dir=state_dir, mqtt=mqtt, sources=sources, heartbeat_s=60
        )
        agents.append(Agent(settings, [build_source(c, seed=index) for c in sources]))
    return agents


def run(agents: list[Agent], stop: threading.Event) -> None:
    threads = [threading.Thread(target=a.run, name=a.settings.device_id) for a in agents]
    for thread in threads:
        thread.start()
    log.info("simulating %d devices", len(agents))
    try:
        stop.wait()
    finally:
        for agent in agents:
            agent.stop()
        for thread in threads:
            thread.join(timeout=10)
