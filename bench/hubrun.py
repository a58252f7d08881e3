"""A ``ruuhka hub`` for the benchmarks: its config file and its child process.

bench/ingest.py, bench/ingest_replicas.py, bench/fanout.py and bench/soak.py all
run the hub as an operator would, on a private broker and SQLite store; this is
the one place that knows how to configure, start, probe and stop it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ruuhka.local_hub import local_hub_toml

HUB_READY_TIMEOUT_S = 30.0
HUB_STOP_TIMEOUT_S = 20.0

DEVICE_FACILITY = """
[[facilities]]
id = "{device}"
kind = "swimming_hall"
capacity = 1000
name = {{ en = "Bench facility {device}" }}
[[facilities.sources]]
device = "{device}"
counter = "main"
"""


def device_facilities(devices: list[str]) -> str:
    """One facility per device, named after it, counting its "main" counter."""
    return "".join(DEVICE_FACILITY.format(device=d) for d in devices)


def write_hub_config(
    path: Path,
    mqtt_url: str,
    db: Path,
    port: int,
    client_id: str,
    facilities: str,
    *,
    ingest: str = "",
    api_limit: bool = False,
) -> None:
    """``facilities`` and ``ingest`` are TOML ending in a newline: the facility
    tables and extra [ingest] lines. The hub's /api/ rate limit is off unless
    ``api_limit``: a fleet of clients from one address would hit it."""
    text = f"# Written by {sys.argv[0]}.\n" + local_hub_toml(
        mqtt_url,
        db.resolve(),
        port,
        client_id,
        http="" if api_limit else "api_rate_per_s = 0",
        ingest=ingest,
    )
    path.write_text(text + facilities, encoding="utf-8")


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}; enough for counters and gauges."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def stop_child(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Ask with ``sig`` so that the child can finish what it has in hand; kill if it hangs."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(HUB_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class HubProcess:
    """``ruuhka hub`` in a child process, as an operator would run it."""

    def __init__(
        self, config: Path, port: int, log_path: Path, open_files: int | None = None
    ) -> None:
        """``open_files``: run it as under ``ulimit -n open_files``."""
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.log_path = log_path

        def limit() -> None:
            import resource

            assert open_files is not None
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ruuhka", "hub", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=limit if open_files else None,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no hub log)"

    def metrics(self) -> dict[str, float]:
        return parse_metrics(http_get(self.url + "/metrics"))

    def wait_connected(self, timeout: float = HUB_READY_TIMEOUT_S) -> None:
        """Until /healthz says the hub is connected to the broker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"hub exited during startup:\n{self.log_tail()}")
            try:
                if json.loads(http_get(self.url + "/healthz", 1.0)).get("mqtt_connected"):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub not connected within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGINT lets uvicorn finish the batch in hand."""
        stop_child(self.process, signal.SIGINT)
