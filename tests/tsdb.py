"""Real time-series servers for the store tests: Debian's influxd (1.x) and VictoriaMetrics.

Each runs on free loopback ports with its own data directory, started and
stopped by the tests; ``make test`` installs the packages.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ruuhka.broker import free_port, free_ports

INFLUXD_CONFIG = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[retention]
  enabled = false

[shard-precreation]
  enabled = false
"""


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: `make test` installs Debian's {package}")
    return path


def _ping(url: str, header: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return header in response.headers
    except (OSError, urllib.error.URLError):
        return False


def _wait_ready(server: Server, ping: str, header: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if _ping(server.url + ping, header):
            return True
        time.sleep(0.1)
    return False


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


def _launch(root: Path, command: list[str], port: int, ping: str, header: str) -> Server | None:
    """Start the server; None (and stopped) when it exits or does not answer, e.g.
    because another process took the port in the meantime."""
    log = root / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    if _wait_ready(server, ping, header):
        return server
    _stop(server)
    return None


@contextmanager
def influxdb_server(root: Path) -> Iterator[Server]:
    """influxd 1.x with a config that sets every port and directory."""
    binary = _binary("influxd", "influxdb")
    server = None
    for attempt in range(3):
        home = root / f"influxdb-{attempt}"
        home.mkdir(parents=True)
        http_port, rpc_port = free_ports(2)
        config = home / "influxdb.conf"
        config.write_text(
            INFLUXD_CONFIG.format(root=home, http_port=http_port, rpc_port=rpc_port),
            encoding="utf-8",
        )
        server = _launch(
            home, [binary, "-config", str(config)], http_port, "/ping", "X-Influxdb-Version"
        )
        if server is not None:
            break
    if server is None:
        raise RuntimeError(f"influxd did not start: {(home / 'server.log').read_text()[-2000:]}")
    try:
        yield server
    finally:
        _stop(server)


@contextmanager
def victoria_metrics_server(root: Path) -> Iterator[Server]:
    """VictoriaMetrics, which takes InfluxDB line protocol on /write and /api/v2/write."""
    binary = _binary("victoria-metrics", "victoria-metrics")
    server = None
    for attempt in range(3):
        home = root / f"victoria-{attempt}"
        home.mkdir(parents=True)
        port = free_port()
        command = [
            binary,
            f"-storageDataPath={home / 'data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
            "-search.disableCache",
        ]
        server = _launch(home, command, port, "/health", "X-Server-Hostname")
        if server is not None:
            break
    if server is None:
        raise RuntimeError(f"VictoriaMetrics did not start: {(home / 'server.log').read_text()}")
    try:
        yield server
    finally:
        _stop(server)
