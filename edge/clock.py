"""Is the device's wall clock right? A Raspberry Pi has no real-time clock.

A Pi boots with the time it saved at shutdown (fake-hwclock) or in 1970, and
is only right once NTP has synchronised it, which may take minutes or, without
network, never happen. Readings taken before that are marked
``clock_synced: false`` so that the hub uses its own receive time for them.

Evidence, cheapest first:

- the kernel's NTP status, ``adjtimex(2)`` with no modes (read-only, needs no
  privileges): ``TIME_ERROR`` means "not synchronised". systemd-timesyncd,
  chrony and ntpd all clear it once synchronised; ``timedatectl``'s
  ``NTPSynchronized`` is this same flag, read over D-Bus;
- ``timedatectl show -p NTPSynchronized``, where adjtimex is unavailable
  (e.g. blocked by a seccomp filter);
- always: a date before this release cannot be right (``BUILD_FLOOR``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

log = logging.getLogger("ruuhka.edge.clock")

# No reading can be taken before the agent was built; bump with each release.
BUILD_FLOOR = datetime(2026, 1, 1, tzinfo=UTC)

ClockCheckMode = Literal["auto", "kernel", "timedatectl", "floor"]

_TIME_ERROR = 5  # adjtimex(2): "the clock is not synchronized"
_TIMEX_SIZE = 512  # struct timex is 208 bytes on 64-bit Linux; leave room
_KERNEL_TTL_S = 1.0
_TIMEDATECTL_TTL_S = 60.0


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    try:
        # The C library is already loaded into Python: no search, no subprocess.
        return ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


def kernel_ntp_synced() -> bool | None:
    """The kernel's view, or None when adjtimex cannot be called here."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # modes = 0: only read
    state = adjtimex(buf)
    if state < 0:
        return None
    return state != _TIME_ERROR


def timedatectl_ntp_synced() -> bool | None:
    """systemd's view, or None without systemd (containers, other init systems)."""
    binary = shutil.which("timedatectl")
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    if done.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


class ClockCheck:
    """Answers "is the clock synchronised?" cheaply enough to ask for every reading."""

    def __init__(
        self,
        mode: ClockCheckMode = "auto",
        floor: datetime = BUILD_FLOOR,
        kernel: Callable[[], bool | None] = kernel_ntp_synced,
        timedatectl: Callable[[], bool | None] = timedatectl_ntp_synced,
    ) -> None:
        self.mode = mode
        self.floor = floor
        self._kernel = kernel
        self._timedatectl = timedatectl
        self._cached: bool | None = None
        self._cached_at = -1e9
        self._ttl = _KERNEL_TTL_S
        self._last_answer: bool | None = None

    def _ntp(self) -> bool | None:
        now = time.monotonic()
        if now - self._cached_at < self._ttl:
            return self._cached
        answer: bool | None = None
        if self.mode in ("auto", "kernel"):
            answer = self._kernel()
            self._ttl = _KERNEL_TTL_S
        if answer is None and self.mode in ("auto", "timedatectl"):
            answer = self._timedatectl()
            self._ttl = _TIMEDATECTL_TTL_S
        self._cached, self._cached_at = answer, now
        return answer

    def synced(self, now: datetime) -> bool:
        ok = now >= self.floor
        if ok and self.mode != "floor":
            # No way to ask (neither adjtimex nor timedatectl): trust the floor alone.
            ok = self._ntp() is not False
        if ok != self._last_answer:
            if ok:
                log.info("the clock is synchronised; readings carry device time")
            else:
                log.warning(
                    "the clock is not synchronised (%s); readings are marked so that "
                    "the hub uses its receive time",
                    "before this build" if now < self.floor else "NTP not synchronised",
                )
            self._last_answer = ok
        return ok

    def describe(self, now: datetime) -> str:
        """One line for ``ruuhka edge --check``."""
        ntp = self._ntp() if self.mode != "floor" else None
        how = {True: "NTP synchronised", False: "NTP not synchronised", None: "NTP status unknown"}
        text = f"{now.isoformat(timespec='seconds')}, {how[ntp]} (check: {self.mode})"
        if now < self.floor:
            text += f", before this build ({self.floor.date()})"
        if not self.synced(now):
            text += "; readings are marked so that the hub uses its receive time"
        return text
