"""``ruuhka edge --config F --check``: is this device ready to be left alone?

Validates the configuration (done before this runs), then checks the state
directory, the clock and the broker, and probes each source once, printing
what it read. Writes nothing to the outbox and uses no seq. Exit status 0 only
when everything is fine, so that an installer can script it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edge.agent import build_source
from edge.clock import ClockCheck
from edge.config import EdgeSettings
from ruuhka.mqtt import make_client
from ruuhka.settings import MqttSettings

BROKER_TIMEOUT_S = 10.0


def check_state_dir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".check-"):
        pass
    free = os.statvfs(path)
    return f"{path} is writable, {free.f_bavail * free.f_frsize / 1e6:.0f} MB free"


def check_broker(settings: MqttSettings, device_id: str, timeout: float = BROKER_TIMEOUT_S) -> str:
    """Connect once (without a will, under another client id) and disconnect."""
    answer: list[str] = []
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        answer.append("refused: " + str(reason_code) if reason_code.is_failure else "")
        done.set()

    client = make_client(settings, f"ruuhka-check-{device_id}", persistent=False)
    client.on_connect = on_connect
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
    except OSError as exc:
        raise RuntimeError(f"cannot connect to {settings.url}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise RuntimeError(f"{settings.url} did not answer within {timeout:.0f} s")
        if answer[0]:
            raise RuntimeError(f"{settings.url} {answer[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
    return f"connected to {settings.url}"


def run_check(settings: EdgeSettings, path: Path, out: Callable[[str], None] = print) -> int:
    failures = 0

    def line(what: str, probe: Callable[[], str]) -> None:
        nonlocal failures
        try:
            out(f"  ok    {what}: {probe()}")
        except Exception as exc:
            failures += 1
            out(f"  FAIL  {what}: {exc}")

    out(f"{path}: valid; device {settings.device_id}, {len(settings.sources)} sources")
    line("state", lambda: check_state_dir(settings.state_dir))
    clock = ClockCheck(settings.clock_check)
    now = datetime.now(UTC)
    out(f"  {'ok  ' if clock.synced(now) else 'warn'}  clock: {clock.describe(now)}")
    line("broker", lambda: check_broker(settings.mqtt, settings.device_id))
    for index, config in enumerate(settings.sources):
        line(f"sources[{index}] {config.type}", lambda c=config: _probe(c))
    out("all checks passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1


def _probe(config: object) -> str:
    source = build_source(config)  # type: ignore[arg-type]
    try:
        readings = source.read(datetime.now(UTC))
        where = getattr(source, "describe", None)
        shown = "; ".join(
            f"{stream.value} " + " ".join(f"{k}={v}" for k, v in fields.items())
            for stream, fields in readings
        )
        return shown + (f" ({where()})" if where else "")
    finally:
        source.close()
