"""Sources: each reads one kind of hardware (or simulates it) and returns readings.

A source is called by the agent every ``interval_s`` seconds and returns the
readings to store, as (stream, fields) pairs; the agent adds seq and ts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from ruuhka.contract import Stream

Readings = list[tuple[Stream, dict[str, Any]]]


class Source(Protocol):
    name: str
    interval_s: float

    def read(self, now: datetime) -> Readings: ...
