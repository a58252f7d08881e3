"""Sources: each reads one kind of hardware (or simulates it) and returns readings.

A source is called by the agent every ``interval_s`` seconds and returns the
readings to store, as (stream, fields) pairs; the agent adds seq and ts. A
source that fails raises (``SourceError`` for the expected kinds of failure:
a timeout, a bad CRC, a value that makes no sense); the agent then tries again
with exponential backoff up to ``max_backoff_s``, logs the first failure and the
recovery, and the other sources carry on.

Sources and their sample configurations:

- ``simulated_gate``, ``simulated_rink``, ``simulated_camera``: ``simulated.py``
- ``gpio_gate``: turnstile or light-barrier pulses on GPIO pins, ``gpio.py``
- ``http_poll``: ticketing / access-control numbers over HTTP, ``http_poll.py``
- ``onewire_rink``: DS18B20 thermometers on the 1-wire bus, ``onewire.py``
- ``modbus``: registers of a commercial counter or sensor over Modbus TCP, ``modbus.py``
- ``camera``: a camera or trail-camera folder through the anonymiser, ``camera.py``

The hardware libraries (gpiozero, pymodbus) are imported only by the source
that needs them, so a device installs and loads only what it uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ruuhka.contract import Stream

Readings = list[tuple[Stream, dict[str, Any]]]

# What the wire contract accepts (ruuhka.contract.RinkPayload), in °C.
ICE_RANGE = (-60.0, 40.0)
AIR_RANGE = (-60.0, 60.0)


class SourceError(Exception):
    """An expected failure of a source: logged in one line, retried with backoff."""


class SourceConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(default=5.0, gt=0, description="Seconds between readings.")
    max_backoff_s: float = Field(
        default=300.0, gt=0, description="Longest wait between retries while the source fails."
    )


class Source(Protocol):
    name: str
    interval_s: float
    max_backoff_s: float

    def read(self, now: datetime) -> Readings: ...

    def close(self) -> None: ...


def as_count(value: Any, what: str) -> int:
    """A count from a device or a web service: a non-negative whole number."""
    if isinstance(value, bool):
        raise SourceError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip().replace("\u00a0", "").replace(" ", "")
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            raise SourceError(f"{what}: not a number: {value[:40]!r}") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise SourceError(f"{what}: not a whole number: {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise SourceError(f"{what}: expected a number, got {type(value).__name__}")
    if value < 0:
        raise SourceError(f"{what}: negative count {value}")
    return value
