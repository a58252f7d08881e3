"""The crew side of a running hub: the database and its parts, and their metrics."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from hub.config import HubSettings
from hub.crew.accounts import Accounts, LoginResult
from hub.crew.db import CrewDB
from hub.crew.maintenance import Latest, MaintenanceLog
from hub.crew.sessions import Sessions
from hub.crew.settings import CrewSettings

log = logging.getLogger("ruuhka.crew")

ENTRY_RESULTS = (
    "accepted",
    "duplicate",
    "corrected",
    "forbidden",
    "future",
    "too_old",
    "unknown_action",
    "invalid",
    "conflict",
)


class CrewMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.logins = Counter(
            "ruuhka_crew_logins", "Crew login attempts, by result.", ["result"], registry=registry
        )
        for result in LoginResult:
            self.logins.labels(result.value)
        self.entries = Counter(
            "ruuhka_crew_entries",
            "Maintenance entries received, by result.",
            ["result"],
            registry=registry,
        )
        for name in ENTRY_RESULTS:
            self.entries.labels(name)
        self.csrf_rejected = Counter(
            "ruuhka_crew_csrf_rejected",
            "Crew requests refused for a missing or wrong CSRF token or a foreign origin.",
            registry=registry,
        )
        self._last_log: dict[str, float] = {}

    def refused(self, result: str, detail: str) -> None:
        """Count a refusal; log it at most once a minute per kind, so a flood stays quiet."""
        self.entries.labels(result).inc()
        now = time.monotonic()
        if now - self._last_log.get(result, -60.0) >= 60:
            self._last_log[result] = now
            log.warning("maintenance entry refused (%s): %s", result, detail)


class CrewService:
    def __init__(self, settings: HubSettings, crew: CrewSettings, registry: CollectorRegistry):
        self.hub_settings = settings
        self.settings = crew
        self.db = CrewDB.from_url(crew.db)
        self.accounts = Accounts(self.db, crew)
        self.sessions = Sessions(self.db, crew.session_lifetime_s)
        self.log = MaintenanceLog(self.db, crew)
        self.metrics = CrewMetrics(registry)

    def latest(self, facility_id: str) -> Latest | None:
        facility = self.hub_settings.facility(facility_id)
        if facility is None:
            return None
        return self.log.latest(facility_id, facility.kind.value)

    def close(self) -> None:
        self.db.close()


def open_crew(settings: HubSettings, registry: CollectorRegistry) -> CrewService | None:
    """The crew service when the configuration has a ``[crew]`` section, else None."""
    return CrewService(settings, settings.crew, registry) if settings.crew is not None else None


def latest_for(app: Any, facility_id: str) -> Latest | None:
    """The facility's newest logged condition, for the public shape (None: no crews)."""
    service: CrewService | None = getattr(app.state, "crew", None)
    return service.latest(facility_id) if service is not None else None
