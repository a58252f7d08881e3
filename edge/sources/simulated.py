"""Simulated devices that behave like the real ones, for the demo and benchmarks.

Occupancy follows the typical weekday and hour-of-day curves in
``edge.profiles`` (fitted on real pool and ice-rink data), with noise; a gate
counter reports cumulative entries and exits, as a turnstile does, and can be
told to restart from zero (``reset()``), as a counter does after a power cut.

Sample configuration::

    [[sources]]
    type = "simulated_gate"
    counter = "main"
    kind = "swimming_hall"       # the profile to follow: swimming_hall, ice_rink, carpet_washing
    capacity = 300
    interval_s = 5
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Literal

from pydantic import Field, PositiveInt

from edge.profiles import typical_fraction
from edge.sources import Readings, SourceConfigBase
from ruuhka.contract import SourceName, Stream


class SimulatedGateConfig(SourceConfigBase):
    type: Literal["simulated_gate"] = "simulated_gate"
    counter: SourceName = "main"
    kind: str = "swimming_hall"
    capacity: PositiveInt = 300
    mean_stay_min: float = Field(default=75.0, gt=0)
    always_open: bool = Field(
        default=False, description="Keep a floor of visitors at night, so a demo shows motion."
    )
    occupancy_mode: bool = Field(
        default=False, description="Report a headcount (ticketing) instead of entries/exits."
    )


class SimulatedRinkConfig(SourceConfigBase):
    type: Literal["simulated_rink"] = "simulated_rink"
    sensor: SourceName = "ice"
    interval_s: float = Field(default=30.0, gt=0)


class SimulatedCameraConfig(SourceConfigBase):
    type: Literal["simulated_camera"] = "simulated_camera"
    camera: SourceName = "yard"
    kind: str = "carpet_washing"
    capacity: PositiveInt = 8
    interval_s: float = Field(default=10.0, gt=0)
    always_open: bool = False


def _target(kind: str, capacity: int, now: datetime, always_open: bool) -> float:
    fraction = typical_fraction(kind, now)
    if always_open:
        fraction = max(fraction, 0.15 + 0.1 * math.sin(now.timestamp() / 600))
    return fraction * capacity


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class SimulatedGate:
    def __init__(self, config: SimulatedGateConfig, seed: int | None = None) -> None:
        self.config = config
        self.name = config.counter
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        self.rng = random.Random(seed)
        self.entries = 0
        self.exits = 0
        self.inside = 0

    def reset(self) -> None:
        """The counter restarts from zero; the people inside stay inside."""
        self.entries = self.exits = 0

    def read(self, now: datetime) -> Readings:
        c = self.config
        target = _target(c.kind, c.capacity, now, c.always_open)
        dt_min = c.interval_s / 60
        leaving = _poisson(self.rng, self.inside * dt_min / c.mean_stay_min)
        arriving = _poisson(self.rng, max(0.0, target) * dt_min / c.mean_stay_min)
        # Pull towards the curve (3-minute time constant), so that the simulation
        # follows the profile and a fresh demo fills up within minutes.
        gap = target - (self.inside + arriving - leaving)
        if gap > 0:
            arriving += _poisson(self.rng, gap * dt_min / 3)
        else:
            leaving += _poisson(self.rng, -gap * dt_min / 3)
        leaving = min(leaving, self.inside + arriving)
        self.entries += arriving
        self.exits += leaving
        self.inside += arriving - leaving
        if c.occupancy_mode:
            return [(Stream.COUNT, {"counter": self.name, "occupancy": self.inside})]
        return [
            (Stream.COUNT, {"counter": self.name, "entries": self.entries, "exits": self.exits})
        ]

    def close(self) -> None:
        pass


class SimulatedRink:
    def __init__(self, config: SimulatedRinkConfig, seed: int | None = None) -> None:
        self.config = config
        self.name = config.sensor
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        self.rng = random.Random(seed)

    def read(self, now: datetime) -> Readings:
        hour = now.hour + now.minute / 60
        air = -6 + 4 * math.sin((hour - 9) / 24 * 2 * math.pi) + self.rng.gauss(0, 0.3)
        ice = min(-1.0, air - 2 + self.rng.gauss(0, 0.2))
        return [
            (
                Stream.RINK,
                {"sensor": self.name, "ice_temp_c": round(ice, 1), "air_temp_c": round(air, 1)},
            )
        ]

    def close(self) -> None:
        pass


class SimulatedCamera:
    """People counted on an anonymised picture; no image, since nothing is filmed."""

    def __init__(self, config: SimulatedCameraConfig, seed: int | None = None) -> None:
        self.config = config
        self.name = config.camera
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        self.rng = random.Random(seed)

    def read(self, now: datetime) -> Readings:
        c = self.config
        mean = _target(c.kind, c.capacity, now, c.always_open)
        people = min(c.capacity * 2, _poisson(self.rng, mean))
        return [
            (Stream.SNAPSHOT, {"camera": self.name, "people": people, "anonymiser": "simulated"})
        ]

    def close(self) -> None:
        pass
