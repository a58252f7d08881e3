"""A hub configured for the public-page tests: opening hours, a short stale
threshold on one facility, a contact and an accessibility statement date."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.state import Tracker
from hub.store import SavedState
from hub.store.sqlite import SQLiteStore
from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import FacilityState
from tests.conftest import HUB_CONNECTION, HubProcess, mosquitto_pub

GATE = "ruuhka/v1/devices/web-gate/count"
RINK = "ruuhka/v1/devices/web-rink/rink"
RINK_GATE = "ruuhka/v1/devices/web-rink/count"
SENSOR = "ruuhka/v1/devices/web-sensor/count"
CAMERA = "ruuhka/v1/devices/web-cam/snapshot"
RINK_STALE_AFTER_S = 4
ALL_DAY = ", ".join(f'{d} = "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat"))

WEB_HUB_CONFIG = (
    HUB_CONNECTION
    + """\

[site]
default_language = "fi"
contact = "liikunta@example.fi"
operator = {{ fi = "Esimerkin kaupunki", sv = "Exempelstaden", en = "City of Example" }}
accessibility_reviewed = 2026-11-01

[[facilities]]
id = "pool"
kind = "swimming_hall"
capacity = 100
name = {{ fi = "Uimahalli", sv = "Simhallen", en = "Swimming hall" }}
opening_hours = {{ {all_day}, sun = "closed" }}
[[facilities.sources]]
device = "web-gate"
counter = "main"

[[facilities]]
id = "rink"
kind = "ice_rink"
capacity = 50
stale_after_s = {rink_stale}
name = {{ fi = "Luistinrata", sv = "Skridskobanan", en = "Ice rink" }}
[[facilities.sources]]
device = "web-rink"

[[facilities]]
id = "carpets"
kind = "carpet_washing"
capacity = 8
name = {{ fi = "Mattolaituri", sv = "Mattbryggan", en = "Carpet washing" }}
[[facilities.sources]]
device = "web-cam"
camera = "yard"

[[facilities]]
id = "field"
kind = "sports_field"
capacity = 200
name = {{ fi = "Urheilukenttä", sv = "Idrottsplanen", en = "Sports field" }}
[[facilities.sources]]
device = "web-sensor"
counter = "main"
"""
)


class Seq:
    """Strictly increasing seq per device, as the contract asks."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def __call__(self, device: str) -> int:
        self.last[device] = self.last.get(device, 0) + 1
        return self.last[device]


def now_ts() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def count(seq: int, entries: int, exits: int) -> str:
    return json.dumps(
        {"seq": seq, "ts": now_ts(), "counter": "main", "entries": entries, "exits": exits}
    )


def rink(seq: int, ice: float, air: float) -> str:
    return json.dumps({"seq": seq, "ts": now_ts(), "sensor": "ice", "ice_temp_c": ice,
                       "air_temp_c": air})  # fmt: skip


HELSINKI = ZoneInfo("Europe/Helsinki")


def typical_field(local: datetime) -> int:
    """The sports field's made-up usual day: busy 15-19, quiet at night."""
    hour = local.hour
    if 15 <= hour < 19:
        return 160
    if 19 <= hour < 22:
        return 80
    if 9 <= hour < 15:
        return 60
    return 20 if 6 <= hour < 9 else 4


def seed_history(db: Path, weeks: int = 4) -> None:
    """Weeks of the sports field's derived series, every 15 minutes, up to an hour ago,
    so that the page has a typical day and forecasts to show."""
    store = SQLiteStore(db)
    end = datetime.now(UTC) - timedelta(hours=1)
    at = end - timedelta(weeks=weeks)
    states = []
    revision = 0
    while at < end:
        revision += 1
        wobble = (revision * 7) % 5 - 2  # small and deterministic
        occupancy = max(0, typical_field(at.astimezone(HELSINKI)) + wobble)
        state = FacilityState(facility="field", revision=revision, occupancy=occupancy,
                              updated_at=at)  # fmt: skip
        states.append(SavedState(state, Tracker()))
        at += timedelta(minutes=15)
    store.commit([], states, [])
    store.close()


def snapshot(seq: int, people: int | None, shade: int = 128, status: str = "ok") -> str:
    """A camera message: an (already anonymised, here plain grey) JPEG with a count,
    or, when the camera failed closed, only its status."""
    payload: dict[str, object] = {"seq": seq, "ts": now_ts(), "camera": "yard", "status": status}
    if status == "ok":
        import cv2
        import numpy as np

        frame = np.full((180, 320, 3), shade, dtype=np.uint8)
        ok, jpeg = cv2.imencode(".jpg", frame)
        assert ok
        payload |= {"people": people, "width": 320, "height": 180,
                    "jpeg_b64": base64.b64encode(jpeg.tobytes()).decode()}  # fmt: skip
    return json.dumps(payload)


@contextmanager
def web_hub(base: Path) -> Iterator[tuple[Broker, HubProcess]]:
    """A private broker and a hub with WEB_HUB_CONFIG, stopped on exit."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with start_broker(base / "broker", prefer="mosquitto") as broker:
        config = base / "hub.toml"
        config.write_text(
            WEB_HUB_CONFIG.format(
                mqtt_url=broker.url,
                db=base / "hub.db",
                port=port,
                client_id=f"web-hub-{os.getpid()}-{port}",
                all_day=ALL_DAY,
                rink_stale=RINK_STALE_AFTER_S,
            ),
            encoding="utf-8",
        )
        seed_history(base / "hub.db")
        hub = HubProcess(config, port, base / "hub.log").start()
        try:
            yield broker, hub
        finally:
            hub.stop()


def publish(broker: Broker, topic: str, payload: str) -> None:
    mosquitto_pub(broker, topic, payload)


def picture_kept(hub: HubProcess, facility: str = "carpets") -> bool:
    """The camera's picture is checked on the hub's picture thread, after its count has
    gone out: a page rendered before that has the count but not yet the picture."""
    request = urllib.request.Request(f"{hub.url}/api/v1/facilities/{facility}/snapshot.jpg")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False
