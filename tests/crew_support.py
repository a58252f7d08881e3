"""A hub with a [crew] section, crews made with the real ``ruuhka crew`` command,
and an HTTP client that logs in through the real login form."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ruuhka.broker import Broker, free_port, start_broker
from tests.conftest import HUB_CONNECTION, HubProcess

PASSWORD = "correct horse battery"

CREW_HUB_CONFIG = (
    HUB_CONNECTION
    + """\

[crew]
db = "sqlite:///{crew_db}"
session_lifetime_s = {session_lifetime_s}
max_failures = 3
first_delay_s = 5
max_delay_s = 10
ip_max_failures = 6
failure_window_s = 600
condition_ttl_s = {{ carpet_washing = 3 }}
teams = {{ north = ["pool", "carpets"] }}

[[facilities]]
id = "pool"
kind = "swimming_hall"
capacity = 100
name = {{ fi = "Uimahalli", sv = "Simhallen", en = "Swimming hall" }}
location = {{ lat = 60.20, lon = 24.90 }}
[[facilities.sources]]
device = "crew-gate"
counter = "main"

[[facilities]]
id = "rink"
kind = "ice_rink"
capacity = 50
name = {{ fi = "Koulun kenttä", sv = "Skolans plan", en = "School field" }}
location = {{ lat = 60.17, lon = 24.94 }}
[[facilities.sources]]
device = "crew-rink"

[[facilities]]
id = "audit-rink"
kind = "ice_rink"
name = {{ en = "Rink for corrections" }}

[[facilities]]
id = "old-rink"
kind = "ice_rink"
name = {{ en = "Rink for old work" }}

[[facilities]]
id = "carpets"
kind = "carpet_washing"
capacity = 8
name = {{ fi = "Mattolaituri", en = "Carpet washing" }}
[[facilities.sources]]
device = "crew-cam"
camera = "yard"
"""
)


def ruuhka_crew(
    config: Path, *args: str, password: str | None = None
) -> subprocess.CompletedProcess:
    """The real command, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ruuhka", "crew", "--config", str(config), *args]
        + (["--password-stdin"] if password is not None else []),
        input=(password + "\n") if password is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def add_crew(config: Path, name: str, *scope: str) -> None:
    done = ruuhka_crew(config, "add", name, *scope, password=PASSWORD)
    assert done.returncode == 0, done.stderr


@contextmanager
def crew_hub(tmp: Path, session_lifetime_s: int = 3600) -> Iterator[CrewHub]:
    """A broker and a hub with crews: rinkcrew (rink), north (team: pool, carpets), city (all)."""
    with start_broker(tmp / "broker", prefer="mosquitto") as broker:
        port = free_port()
        config = tmp / "hub.toml"
        config.write_text(
            CREW_HUB_CONFIG.format(
                mqtt_url=broker.url,
                db=tmp / "hub.db",
                crew_db=tmp / "crew.db",
                port=port,
                client_id=f"crew-hub-{os.getpid()}-{port}",
                session_lifetime_s=session_lifetime_s,
            ),
            encoding="utf-8",
        )
        add_crew(config, "rinkcrew", "--facility", "rink")
        add_crew(config, "north", "--team", "north")
        add_crew(config, "city", "--all")
        hub = CrewHub(config, port, tmp / "hub.log", broker)
        hub.start()
        try:
            yield hub
        finally:
            hub.stop()


class CrewHub(HubProcess):
    """The hub, and the broker its devices publish to."""

    def __init__(self, config: Path, port: int, log: Path, broker: Broker) -> None:
        super().__init__(config, port, log)
        self.broker = broker


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


class CrewClient:
    """A browser-like client: cookies, the login form's token, the page's CSRF token."""

    def __init__(self, hub: HubProcess | str, address: str | None = None) -> None:
        headers = {"X-Forwarded-For": address} if address else {}
        base_url = hub if isinstance(hub, str) else hub.url
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30)
        self.csrf = ""

    def login_form(self) -> str:
        page = self.http.get("/crew/login?lang=en")
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        return match.group(1)

    def try_login(self, name: str, password: str, **headers: str) -> httpx.Response:
        token = self.login_form()
        return self.http.post(
            "/crew/login?lang=en",
            data={"csrf": token, "name": name, "password": password},
            headers=headers,
        )

    def login(self, name: str, password: str = PASSWORD) -> CrewClient:
        response = self.try_login(name, password)
        assert response.status_code == 303, (response.status_code, response.text[-500:])
        page = self.http.get("/crew?lang=en")
        assert page.status_code == 200, page.text
        match = re.search(r'data-csrf="([^"]+)"', page.text)
        assert match
        self.csrf = match.group(1)
        return self

    def log(self, csrf: str | None = "page", **entry: Any) -> httpx.Response:
        headers = {}
        if csrf == "page":
            headers["X-CSRF-Token"] = self.csrf
        elif csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self.http.post(
            "/api/v1/crew/entries?lang=en", content=json.dumps(entry), headers=headers
        )

    def correct(self, entry_id: int, **change: Any) -> httpx.Response:
        return self.http.patch(
            f"/api/v1/crew/entries/{entry_id}?lang=en",
            content=json.dumps(change),
            headers={"X-CSRF-Token": self.csrf},
        )
