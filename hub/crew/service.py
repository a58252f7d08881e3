"""The crew side of a running hub: the database and its parts, and their metrics."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.concurrency import run_in_threadpool

from hub.config import HubSettings
from hub.crew.accounts import Accounts, LoginOutcome, LoginResult, crew_from_row
from hub.crew.checks import PasswordChecks
from hub.crew.db import CrewDB
from hub.crew.maintenance import Latest, MaintenanceLog
from hub.crew.sessions import Sessions
from hub.crew.settings import CrewSettings
from hub.crew.throttle import Attempt, LoginThrottle, Refusal
from hub.security import address_key

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
        self.checks_running = Gauge(
            "ruuhka_crew_password_checks_running",
            "Crew passwords being checked (argon2) right now.",
            registry=registry,
        )
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
        self.throttle = LoginThrottle(self.db, crew)
        self.checks = PasswordChecks(
            crew.max_concurrent_logins, crew.login_queue, crew.login_wait_s
        )
        self.metrics.checks_running.set_function(lambda: self.checks.running)

    async def login(
        self, name: str, password: str, host: str, device_token: str | None, now: datetime
    ) -> LoginOutcome:
        """Decide and count the try (throttle), then check the password (bounded).

        One address has one login in progress at a time; a browser with a device
        cookie is exempt once the database has confirmed the cookie is known."""
        address = address_key(host)
        held = False
        if not device_token:
            if not self.checks.hold(address):
                return LoginOutcome(LoginResult.RATE_LIMITED, retry_after_s=1)
            held = True
        try:
            decided = await run_in_threadpool(self.throttle.begin, name, address, device_token, now)
            if isinstance(decided, Refusal):
                return LoginOutcome(decided.result, retry_after_s=decided.retry_after_s)
            if not held and not decided.known_device:
                if not self.checks.hold(address):
                    await self._refund(decided)
                    return LoginOutcome(LoginResult.RATE_LIMITED, retry_after_s=1)
                held = True
            check = partial(self.accounts.verify, decided.password_hash, password)
            ran, result = await self.checks.run(decided.known, check)
            if not ran or result is None:
                await self._refund(decided)
                return LoginOutcome(LoginResult.BUSY, retry_after_s=2)
            ok, new_hash = result
            if not ok or decided.crew is None:
                return LoginOutcome(LoginResult.WRONG)
            if new_hash is not None:
                await run_in_threadpool(self.accounts.rehash, decided.crew[0], new_hash)
            token = await run_in_threadpool(self.throttle.succeeded, decided, device_token, now)
            return LoginOutcome(LoginResult.OK, crew_from_row(decided.crew), device_token=token)
        finally:
            if held:
                self.checks.let_go(address)

    async def _refund(self, attempt: Attempt) -> None:
        await run_in_threadpool(self.throttle.refund, attempt)

    def latest(self, facility_id: str) -> Latest | None:
        facility = self.hub_settings.facility(facility_id)
        if facility is None:
            return None
        return self.log.latest(facility_id, facility.kind.value)

    def close(self) -> None:
        self.checks.close()
        self.db.close()


def open_crew(settings: HubSettings, registry: CollectorRegistry) -> CrewService | None:
    """The crew service when the configuration has a ``[crew]`` section, else None."""
    return CrewService(settings, settings.crew, registry) if settings.crew is not None else None


def latest_for(app: Any, facility_id: str) -> Latest | None:
    """The facility's newest logged condition, for the public shape (None: no crews)."""
    service: CrewService | None = getattr(app.state, "crew", None)
    return service.latest(facility_id) if service is not None else None
