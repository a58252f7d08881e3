"""A hub with a whole made-up city for the page benchmarks (bench/pages.py,
bench/lighthouse.py): the 150 facilities of ruuhka.city, each with a figure now, and
one carpet-washing place whose camera has sent a picture, on a private broker."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from hubrun import HubProcess, write_hub_config  # bench/, next to this file

from ruuhka.broker import free_port, start_broker
from ruuhka.city import (
    CAMERA_TOML,
    Place,
    city,
    facilities_toml,
    publish_camera_picture,
    seed_states,
)

CAMERA_FACILITY = "carpets-kallio"


@contextmanager
def city_hub(facilities: int = 150, site: str = "") -> Iterator[tuple[HubProcess, list[Place]]]:
    """``site``: TOML for a [site] table (e.g. a tile server)."""
    places = city(facilities)
    with tempfile.TemporaryDirectory(prefix="ruuhka-city-") as tmp:
        base = Path(tmp)
        port = free_port()
        with start_broker(base / "broker", prefer="mosquitto") as broker:
            config = base / "hub.toml"
            write_hub_config(config, broker.url, base / "hub.db", port, "bench-city",
                             site + CAMERA_TOML + facilities_toml(places))  # fmt: skip
            seed_states(base / "hub.db", places, datetime.now(UTC))
            hub = HubProcess(config, port, base / "hub.log")
            try:
                hub.wait_connected()
                publish_camera_picture(broker.host, broker.port)
                deadline = time.monotonic() + 30
                while not _has_picture(hub.url):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no camera picture:\n{hub.log_tail()}")
                    time.sleep(0.2)
                yield hub, places
            finally:
                hub.stop()


def _has_picture(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/api/v1/facilities/{CAMERA_FACILITY}") as response:
        return bool(json.loads(response.read()).get("snapshot_url"))
