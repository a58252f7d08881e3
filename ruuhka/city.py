"""A made-up city of many facilities, for the tests and benchmarks of the public
pages at city scale (the pages were first built for three).

Six kinds, names in fi/sv/en from real district names, locations around
Helsinki, and a figure now for each: deterministic for a given count and seed.
Every third ice rink is closed all week, the others open round the clock, so
that "open now" has a known answer at any hour. One carpet-washing place with a
camera can be added (``CAMERA_TOML``, ``publish_camera_picture``), for the page
weight with a camera thumbnail.
"""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.config import WEEKDAYS
from hub.state import Tracker
from hub.store import SavedState
from hub.store.sqlite import SQLiteStore
from ruuhka.contract import FacilityState, SnapshotPayload, device_topic

DISTRICTS = (
    "Kallio", "Vallila", "Pasila", "Käpylä", "Oulunkylä", "Malmi", "Pukinmäki", "Kontula",
    "Mellunmäki", "Vuosaari", "Herttoniemi", "Laajasalo", "Kulosaari", "Arabia", "Viikki",
    "Pihlajamäki", "Maunula", "Pakila", "Paloheinä", "Kannelmäki", "Malminkartano", "Pitäjänmäki",
    "Munkkiniemi", "Lauttasaari", "Ruoholahti", "Kamppi", "Töölö", "Meilahti", "Haaga", "Konala",
)  # fmt: skip
# kind: (fi, sv, en) words, capacity range (None: no capacity)
KINDS: dict[str, tuple[tuple[str, str, str], tuple[int, int] | None]] = {
    "ice_rink": (("luistinrata", "skridskobana", "ice rink"), (40, 120)),
    "swimming_hall": (("uimahalli", "simhall", "swimming hall"), (80, 400)),
    "sports_field": (("urheilukenttä", "idrottsplan", "sports field"), (100, 300)),
    "gym": (("kuntosali", "gym", "gym"), (20, 60)),
    "library": (("kirjasto", "bibliotek", "library"), (50, 250)),
    "ski_trail": (("latu", "skidspår", "ski trail"), None),
}
ALL_WEEK_OPEN = ", ".join(f'{d} = "00:00-24:00"' for d in WEEKDAYS)
ALL_WEEK_CLOSED = ", ".join(f'{d} = "closed"' for d in WEEKDAYS)
CENTRE = (60.19, 24.95)


@dataclass(frozen=True)
class Place:
    id: str
    kind: str
    names: tuple[str, str, str]
    capacity: int | None
    lat: float
    lon: float
    open: bool
    occupancy: int


def city(count: int = 150, seed: int = 14) -> list[Place]:
    """``count`` facilities, the six kinds in turn."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    places = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        (fi, sv, en), capacity_range = KINDS[kind]
        district = DISTRICTS[(index // len(kinds)) % len(DISTRICTS)]
        number = index // (len(kinds) * len(DISTRICTS)) + 1
        suffix = f" {number}" if number > 1 else ""
        capacity = rng.randint(*capacity_range) if capacity_range else None
        occupancy = rng.randint(0, capacity) if capacity else rng.randint(0, 40)
        places.append(
            Place(
                id=f"{kind.replace('_', '-')}-{index:03d}",
                kind=kind,
                names=(
                    f"{district}{suffix} {fi}",
                    f"{district}{suffix} {sv}",
                    f"{district}{suffix} {en}",
                ),
                capacity=capacity,
                lat=round(CENTRE[0] + rng.uniform(-0.06, 0.06), 5),
                lon=round(CENTRE[1] + rng.uniform(-0.15, 0.15), 5),
                open=not (kind == "ice_rink" and (index // len(kinds)) % 3 == 0),
                occupancy=occupancy,
            )
        )
    return places


def facilities_toml(places: list[Place]) -> str:
    """The [[facilities]] sections of a hub configuration."""
    parts = []
    for p in places:
        fi, sv, en = (name.replace('"', "") for name in p.names)
        hours = ALL_WEEK_OPEN if p.open else ALL_WEEK_CLOSED
        capacity = f"capacity = {p.capacity}\n" if p.capacity else ""
        parts.append(
            f'\n[[facilities]]\nid = "{p.id}"\nkind = "{p.kind}"\n{capacity}'
            f'name = {{ fi = "{fi}", sv = "{sv}", en = "{en}" }}\n'
            f"opening_hours = {{ {hours} }}\n"
            f"location = {{ lat = {p.lat}, lon = {p.lon} }}\n"
        )
    return "".join(parts)


def seed_states(db: Path, places: list[Place], now: datetime) -> None:
    """Each place's figure at ``now``, as if its devices had just reported."""
    store = SQLiteStore(db)
    states = [
        SavedState(
            FacilityState(facility=p.id, revision=1, occupancy=p.occupancy, updated_at=now),
            Tracker(),
        )
        for p in places
    ]
    store.commit([], states, [])
    store.close()


CAMERA_DEVICE = "city-yard-cam"
CAMERA_TOML = f"""
[[facilities]]
id = "carpets-kallio"
kind = "carpet_washing"
capacity = 6
name = {{ fi = "Kallion mattolaituri", sv = "Berghälls mattbrygga", en = "Kallio carpet pier" }}
location = {{ lat = {CENTRE[0] + 0.01}, lon = {CENTRE[1] + 0.01} }}
[[facilities.sources]]
device = "{CAMERA_DEVICE}"
camera = "yard"
"""


def camera_picture(seq: int, people: int = 2) -> SnapshotPayload:
    """An already anonymised picture as the camera would send it: 640x360, a drawn
    yard with three washing tables (no photograph, so no person in it)."""
    from PIL import Image, ImageDraw  # the hub's extra, as for the pictures' renditions

    picture = Image.new("RGB", (640, 360), (118, 128, 120))
    draw = ImageDraw.Draw(picture)
    for index in range(3):
        left = 60 + index * 190
        draw.rectangle((left, 150, left + 140, 300), fill=(160, 150, 130), outline=(60, 60, 60))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return SnapshotPayload(
        seq=seq, ts=datetime.now(UTC), camera="yard", people=people, width=640, height=360,
        jpeg_b64=base64.b64encode(out.getvalue()).decode(), spots=3, spots_in_use=min(3, people),
    )  # fmt: skip


def publish_camera_picture(host: str, port: int, seq: int = 1) -> None:
    """Publish ``camera_picture`` for ``CAMERA_DEVICE`` (QoS 1)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{CAMERA_DEVICE}-{seq}")
    client.connect(host, port)
    client.loop_start()
    try:
        payload = camera_picture(seq).model_dump_json(exclude_none=True)
        client.publish(device_topic(CAMERA_DEVICE, "snapshot"), payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
