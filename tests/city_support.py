"""A hub with a whole made-up city (ruuhka.city): 150 facilities of six kinds, a
figure for each, and maintenance entries written through the crew's real log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.crew.db import CrewDB
from hub.crew.maintenance import MaintenanceLog
from hub.crew.settings import CrewSettings
from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.city import Place, city, facilities_toml, seed_states
from tests.conftest import HUB_CONNECTION, HubProcess


@dataclass(frozen=True)
class Work:
    """One maintenance entry to write before the hub starts."""

    facility: str
    action: str
    ago: timedelta


def write_work(crew_db: Path, places: list[Place], work: list[Work], now: datetime) -> None:
    """Through MaintenanceLog.add, as the crew API does, each at its own moment."""
    db = CrewDB(crew_db)
    log = MaintenanceLog(db, CrewSettings(db=f"sqlite:///{crew_db}"))
    kinds = {p.id: p.kind for p in places}
    try:
        for item in work:
            at = now - item.ago
            log.add(facility=item.facility, kind=kinds[item.facility], action=item.action,
                    quality=None, notice=None, performed_at=at, logged_by="test", via="test",
                    client_id=None, now=at)  # fmt: skip
    finally:
        db.close()


@contextmanager
def city_hub(
    base: Path, count: int = 150, work: list[Work] | None = None, site: str = ""
) -> Iterator[tuple[HubProcess, list[Place], Broker]]:
    """A broker and a hub with ``count`` facilities, stopped on exit; ``site`` is TOML
    added to the configuration (e.g. a [site] table with a tile server)."""
    base.mkdir(parents=True, exist_ok=True)
    places = city(count)
    now = datetime.now(UTC)
    port = free_port()
    with start_broker(base / "broker", prefer="mosquitto") as broker:
        config = base / "hub.toml"
        crew_db = base / "crew.db"
        connection = HUB_CONNECTION.format(
            mqtt_url=broker.url, db=base / "hub.db", port=port,
            client_id=f"city-hub-{os.getpid()}-{port}",
        )  # fmt: skip
        crew = f'\n[crew]\ndb = "sqlite:///{crew_db}"\n'
        config.write_text(connection + crew + site + facilities_toml(places), encoding="utf-8")
        seed_states(base / "hub.db", places, now)
        write_work(crew_db, places, work or [], now)
        hub = HubProcess(config, port, base / "hub.log").start()
        try:
            yield hub, places, broker
        finally:
            hub.stop()
