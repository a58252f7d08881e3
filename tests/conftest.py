"""Real parts for end-to-end tests: a Mosquitto per test, the hub as a process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.local_hub import local_hub_toml

# The broker, store, HTTP and session part of every test hub's configuration;
# each test adds its own facilities and sections (all placeholders for .format).
HUB_CONNECTION = local_hub_toml("{mqtt_url}", "{db}", "{port}", "{client_id}")

HUB_CONFIG = (
    HUB_CONNECTION
    + """\
max_payload_bytes = 4096

[[facilities]]
id = "pool"
kind = "swimming_hall"
capacity = 100
name = {{ fi = "Uimahalli", sv = "Simhallen", en = "Swimming hall" }}
[[facilities.sources]]
device = "test-gate"
counter = "main"

[[facilities]]
id = "rink"
kind = "ice_rink"
capacity = 50
name = {{ fi = "Luistinrata", en = "Ice rink" }}
[[facilities.sources]]
device = "test-rink"

[[facilities]]
id = "carpets"
kind = "carpet_washing"
capacity = 8
name = {{ fi = "Mattolaituri", en = "Carpet washing" }}
[[facilities.sources]]
device = "test-cam"
camera = "yard"
"""
)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def faketime_env(wall_clock_at: datetime) -> dict[str, str]:
    """The environment that runs a child process with its wall clock starting at
    ``wall_clock_at`` (libfaketime; monotonic time stays real), so that a test of
    what depends on the time of day does not depend on when it runs."""
    libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libraries:
        pytest.fail("libfaketime is missing: apt-get install faketime (make deps)")
    offset = (wall_clock_at - datetime.now(UTC)).total_seconds()
    return os.environ | {
        "LD_PRELOAD": str(libraries[0]),
        "FAKETIME": f"{offset:+.3f}s",
        "DONT_FAKE_MONOTONIC": "1",
    }


class HubProcess:
    """``ruuhka hub`` in a child process, so that tests can kill it for real;
    ``env`` (e.g. :func:`faketime_env`) replaces its environment."""

    def __init__(
        self,
        config: Path,
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        open_files: int | None = None,
    ) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.env = env
        self.open_files = open_files  # as `ulimit -n N` before starting it
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ruuhka", "hub", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=self._limit if self.open_files else None,
            )
        wait_for(self._connected, 15, "the hub to connect to the broker")
        return self

    def _limit(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def _connected(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"hub exited: {self.log.read_text()[-2000:]}")
        try:
            status, body = http_get(self.url + "/healthz")
        except OSError:
            return False
        return status == 200 and json.loads(body)["mqtt_connected"]

    def get(self, path: str, **headers: str) -> Any:
        status, body = http_get(self.url + path, headers)
        assert status == 200, (status, body)
        return json.loads(body)

    def facility(self, facility_id: str) -> dict[str, Any]:
        return self.get(f"/api/v1/facilities/{facility_id}")

    def metric(self, name: str, **labels: str) -> float:
        _, text = http_get(self.url + "/metrics")
        wanted = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
        )
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of this test's own: retained state from other tests cannot leak in."""
    with start_broker(tmp_path / "broker", prefer="mosquitto") as running:
        yield running


@pytest.fixture
def hub_port() -> int:
    return free_port()


@pytest.fixture
def hub_config(tmp_path: Path, broker: Broker, hub_port: int) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        HUB_CONFIG.format(
            mqtt_url=broker.url,
            db=tmp_path / "hub.db",
            port=hub_port,
            client_id=f"test-hub-{os.getpid()}",
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def hub(tmp_path: Path, hub_config: Path, hub_port: int) -> Iterator[HubProcess]:
    process = HubProcess(hub_config, hub_port, tmp_path / "hub.log").start()
    try:
        yield process
    finally:
        process.stop()


def mosquitto_pub(broker: Broker, topic: str, payload: str | bytes, *extra: str) -> None:
    """Publish with Mosquitto's own client: any device that follows the contract works."""
    command = [
        shutil.which("mosquitto_pub") or "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-t",
        topic,
        *extra,
    ]
    if isinstance(payload, bytes) and len(payload) > 1000:
        subprocess.run([*command, "-s"], input=payload, check=True, timeout=10)
    else:
        text = payload.decode() if isinstance(payload, bytes) else payload
        subprocess.run([*command, "-m", text], check=True, timeout=10)
