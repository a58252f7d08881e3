"""DS18B20 thermometers on the 1-wire bus, for an ice rink's ice and air.

The kernel's w1-therm driver (``dtoverlay=w1-gpio`` in ``/boot/firmware/config.txt``,
data on GPIO4 by default) exposes each sensor as
``/sys/bus/w1/devices/28-XXXXXXXXXXXX/w1_slave``::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

A reading is taken only if the scratchpad's CRC is right — checked here over the
raw bytes, not only the kernel's ``YES`` — and it is not one of the values a
sensor gives when it did not really measure: 85.0 °C, the power-on reset value
(a sensor that browned out on a long cable), or an all-zero scratchpad (a
shorted bus; its CRC is zero too). A bad read is retried ``retries`` times; an
ice sensor that still fails fails the reading, an air sensor that fails is left
out of it.

Sample configuration::

    [[sources]]
    type = "onewire_rink"
    sensor = "ice"                   # the name the hub config refers to
    ice = "28-0316a2791cff"          # the ice-surface probe
    air = "28-0416b3a1c4ff"          # optional
    interval_s = 30
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.sources import AIR_RANGE, ICE_RANGE, Readings, SourceConfigBase, SourceError
from ruuhka.contract import SourceName, Stream

log = logging.getLogger("ruuhka.edge.onewire")

SYSFS_DEVICES = Path("/sys/bus/w1/devices")
POWER_ON_RAW = 0x0550  # 85.0 °C
_SENSOR_ID = r"^[0-9a-f]{2}-[0-9a-f]{12}$"
_LINE = re.compile(r"^((?:[0-9a-f]{2} ){9})")


class OneWireRinkConfig(SourceConfigBase):
    type: Literal["onewire_rink"] = "onewire_rink"
    sensor: SourceName = "ice"
    ice: str = Field(pattern=_SENSOR_ID, description="Sensor id of the ice probe, 28-…")
    air: str | None = Field(default=None, pattern=_SENSOR_ID)
    devices_dir: Path = SYSFS_DEVICES
    retries: int = Field(default=2, ge=0, le=10)
    interval_s: float = Field(default=30.0, gt=0)


def crc8(data: bytes) -> int:
    """Dallas/Maxim 1-wire CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected)."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def parse_w1_slave(text: str) -> float:
    """Temperature in °C from a w1_slave file; SourceError for anything doubtful."""
    lines = [line.strip().lower() for line in text.strip().splitlines()]
    if len(lines) != 2:
        raise SourceError(f"expected two lines, got {len(lines)}")
    match = _LINE.match(lines[0] + " ")
    if not match:
        raise SourceError(f"unreadable scratchpad: {lines[0][:40]!r}")
    scratchpad = bytes.fromhex(match.group(1))
    if crc8(scratchpad[:8]) != scratchpad[8] or not lines[0].endswith("yes"):
        raise SourceError("CRC mismatch")
    if not any(scratchpad):
        raise SourceError("all-zero scratchpad (bus shorted?)")
    raw = int.from_bytes(scratchpad[:2], "little", signed=True)
    if raw == POWER_ON_RAW:
        raise SourceError("85.0 °C power-on value: the sensor did not convert")
    return raw / 16


class OneWireRink:
    def __init__(self, config: OneWireRinkConfig) -> None:
        self.config = config
        self.name = config.sensor
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        self._air_failing = False

    def temperature(self, sensor_id: str) -> float:
        path = self.config.devices_dir / sensor_id / "w1_slave"
        problem = "no reading"
        for _ in range(self.config.retries + 1):
            try:
                return parse_w1_slave(path.read_text(encoding="ascii", errors="replace"))
            except FileNotFoundError:
                raise SourceError(f"{sensor_id}: no such sensor in {path.parent.parent}") from None
            except OSError as exc:  # EIO when the sensor drops off the bus mid-read
                problem = str(exc)
            except SourceError as exc:
                problem = str(exc)
        raise SourceError(f"{sensor_id}: {problem}")

    def read(self, now: datetime) -> Readings:
        ice = self.temperature(self.config.ice)
        if not ICE_RANGE[0] <= ice <= ICE_RANGE[1]:
            raise SourceError(f"{self.config.ice}: {ice} °C is no ice temperature")
        fields: dict[str, object] = {"sensor": self.name, "ice_temp_c": round(ice, 2)}
        if self.config.air is not None:
            try:
                air = self.temperature(self.config.air)
                if not AIR_RANGE[0] <= air <= AIR_RANGE[1]:
                    raise SourceError(f"{self.config.air}: {air} °C is no air temperature")
            except SourceError as exc:
                if not self._air_failing:
                    log.warning("air temperature left out until the sensor reads again: %s", exc)
                self._air_failing = True
            else:
                if self._air_failing:
                    log.info("air sensor %s reads again", self.config.air)
                self._air_failing = False
                fields["air_temp_c"] = round(air, 2)
        return [(Stream.RINK, fields)]

    def describe(self) -> str:
        return str(self.config.devices_dir)

    def close(self) -> None:
        pass
