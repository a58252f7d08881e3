"""Gate counter on GPIO: turnstiles and light barriers give one pulse per person.

Entries and exits come in on separate pins and are counted as cumulative
``entries`` and ``exits`` since the agent started (a restart is a counter
reset, which the hub carries on from without a jump). Pulses are counted by
gpiozero's edge callbacks, with a software debounce on the pin factory's own
edge timestamps, so it behaves the same on every pin library: an edge that
comes within ``debounce_ms`` of the last accepted edge on that pin is contact
bounce and ignored; an edge into the active level after that is a person.

Sample configuration (pins are BCM numbers, as printed by ``pinout``)::

    [[sources]]
    type = "gpio_gate"
    counter = "main"
    entries_pin = 17           # GPIO17, header pin 11
    exits_pin = 27             # GPIO27, header pin 13; omit for an entry-only gate
    pull_up = true             # a dry contact or open-collector output to ground
    debounce_ms = 20
    interval_s = 5             # how often the totals are reported

gpiozero picks its pin library itself (lgpio on Raspberry Pi OS Bookworm:
``apt install python3-lgpio``); ``GPIOZERO_PIN_FACTORY=mock`` runs it without
GPIO at all, e.g. to try a configuration on a laptop.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from edge.sources import Readings, SourceConfigBase, SourceError
from ruuhka.contract import SourceName, Stream


class GpioGateConfig(SourceConfigBase):
    type: Literal["gpio_gate"] = "gpio_gate"
    counter: SourceName = "main"
    entries_pin: int | str = Field(description="BCM number (17) or a gpiozero name ('GPIO17').")
    exits_pin: int | str | None = None
    pull_up: bool = Field(
        default=True, description="True: active when pulled to ground; False: active high."
    )
    debounce_ms: float = Field(default=20.0, ge=0, le=1000)


class PulseCounter:
    """Counts debounced activations of one input pin."""

    def __init__(self, pin: int | str, pull_up: bool, debounce_s: float, factory: Any) -> None:
        from gpiozero import InputDevice

        self.device = InputDevice(pin, pull_up=pull_up, pin_factory=factory)
        self.count = 0
        self._debounce_s = debounce_s
        self._active = not pull_up
        self._last: Any = None
        self._lock = threading.Lock()
        pin_obj = self.device.pin
        pin_obj.edges = "both"
        pin_obj.bounce = None  # not every pin library debounces; we do, the same everywhere
        pin_obj.when_changed = self._changed

    def _changed(self, ticks: Any, state: int) -> None:
        """From the pin library's thread: one edge, with the library's timestamp."""
        factory = self.device.pin_factory
        with self._lock:
            if self._last is not None and factory.ticks_diff(ticks, self._last) < self._debounce_s:
                return
            self._last = ticks
            if bool(state) == self._active:
                self.count += 1

    @property
    def label(self) -> str:
        return str(self.device.pin)

    def close(self) -> None:
        self.device.close()


class GpioGate:
    def __init__(self, config: GpioGateConfig, pin_factory: Any = None) -> None:
        self.config = config
        self.name = config.counter
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        debounce = config.debounce_ms / 1000
        try:
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise SourceError("gpiozero is not installed: pip install 'ruuhka[edge]'") from None
        self.entries: PulseCounter | None = None
        self.exits: PulseCounter | None = None
        try:
            self.entries = PulseCounter(config.entries_pin, config.pull_up, debounce, pin_factory)
            if config.exits_pin is not None:
                self.exits = PulseCounter(config.exits_pin, config.pull_up, debounce, pin_factory)
        except (GPIOZeroError, OSError, ValueError) as exc:
            self.close()
            hint = (
                " (on Raspberry Pi OS: apt install python3-lgpio; to try a configuration "
                "without GPIO: GPIOZERO_PIN_FACTORY=mock)"
                if "pin factory" in str(exc)
                else ""
            )
            raise SourceError(f"cannot open the GPIO pins: {exc}{hint}") from None

    def read(self, now: datetime) -> Readings:
        assert self.entries is not None
        exits = self.exits.count if self.exits is not None else 0
        return [
            (
                Stream.COUNT,
                {"counter": self.name, "entries": self.entries.count, "exits": exits},
            )
        ]

    def describe(self) -> str:
        pins = [c.label for c in (self.entries, self.exits) if c is not None]
        return "pins " + ", ".join(pins)

    def close(self) -> None:
        for counter in (self.entries, self.exits):
            if counter is not None:
                counter.close()
