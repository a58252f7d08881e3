"""A made-up city of many facilities, for the tests and benchmarks of the public
pages at city scale (the pages were first built for three).

Six kinds, names in fi/sv/en from real district names, locations around
Helsinki, and a figure now for each: deterministic for a given count and seed.
Every third ice rink is closed all week, the others open round the clock, so
that "open now" has a known answer at any hour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hub.config import WEEKDAYS
from hub.state import Tracker
from hub.store import SavedState
from hub.store.sqlite import SQLiteStore
from ruuhka.contract import FacilityState

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
