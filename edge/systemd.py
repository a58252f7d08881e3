"""sd_notify(3) without libsystemd: readiness and the watchdog for ``Type=notify``.

The unit in ``deploy/systemd/`` sets ``WatchdogSec``: if the agent's loop ever
hangs, systemd kills and restarts it instead of leaving a silent device for
months. Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self) -> None:
        path = os.environ.get("NOTIFY_SOCKET", "")
        # An abstract socket is given with a leading "@".
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 2e6 if usec.isdigit() and mine else None

    def notify(self, state: str) -> None:
        if not self._address:
            return
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
        ):
            sock.sendto(state.encode(), self._address)
