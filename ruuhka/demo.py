"""``ruuhka demo``: broker, hub on SQLite, simulated devices, the public page.

Everything runs under one process tree: the broker is a child that dies with
us, the simulated devices are threads, and the hub serves in the main thread,
so Ctrl-C stops it all.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ruuhka.broker import free_port, start_broker
from ruuhka.local_hub import local_hub_toml

if TYPE_CHECKING:
    from hub.config import HubSettings

log = logging.getLogger("ruuhka.demo")

DEMO_CREW = "demo"

DEMO_CONFIG = (
    "# Written by `ruuhka demo`. A hub configuration for three example facilities.\n"
    + local_hub_toml("{mqtt_url}", "{db}", "{port}", protocol="{protocol}")
    + """
[crew]
db = "sqlite:///{crew_db}"

[site]
contact = "liikunta@example.fi"
operator = {{ fi = "Esimerkin kunta", sv = "Exempelkommunen", en = "Municipality of Example" }}

[snapshots]
interval_s = 5  # the demo camera publishes every 5 s; its sign says so

[[facilities]]
id = "uimahalli"
kind = "swimming_hall"
capacity = 300
name = {{ fi = "Keskustan uimahalli", sv = "Centrums simhall", en = "Central swimming hall" }}
location = {{ lat = 60.1699, lon = 24.9384 }}
[[facilities.sources]]
device = "uimahalli-gate"
counter = "main"

[[facilities]]
id = "mattolaituri"
kind = "carpet_washing"
capacity = 8
name = {{ fi = "Mattolaituri", sv = "Mattbryggan", en = "Carpet washing pier" }}
[[facilities.sources]]
device = "mattolaituri-cam"
camera = "yard"

[[facilities]]
id = "koulun-kentta"
kind = "ice_rink"
capacity = 120
name = {{ fi = "Koulun luistinrata", sv = "Skolans skridskobana", en = "School ice rink" }}
[[facilities.sources]]
device = "kentta-sensors"
counter = "main"
sensor = "ice"
"""
)


def demo_crew(settings: HubSettings) -> str:
    """A crew for every facility, with a new random password on every start
    (printed in the banner), so the crew page can be tried at once."""
    from hub.crew.accounts import Accounts
    from hub.crew.db import CrewDB

    assert settings.crew is not None
    password = secrets.token_urlsafe(12)
    db = CrewDB.from_url(settings.crew.db)
    try:
        accounts = Accounts(db, settings.crew)
        now = datetime.now(UTC)
        if accounts.get(DEMO_CREW) is not None:
            accounts.set_password(DEMO_CREW, password, now)
        else:
            accounts.add(DEMO_CREW, password, ["*"], now)
    finally:
        db.close()
    return password


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _devices_after_hub(url: str, banner: str, agents: list, stop: threading.Event) -> None:
    """Start the devices once the hub has subscribed: on a first run the broker
    has no session for the hub yet, and would drop readings nobody listens to."""
    from edge.simulate import run

    while not stop.is_set():
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                if json.load(response).get("mqtt_connected"):
                    break
        except OSError:
            pass
        stop.wait(0.2)
    else:
        return
    print(banner, flush=True)
    run(agents, stop)


def run_demo(state_dir: Path, port: int) -> None:
    import uvicorn

    from edge.simulate import agents_for
    from hub.app import create_app
    from hub.config import HubSettings
    from ruuhka.settings import load_settings

    state_dir.mkdir(parents=True, exist_ok=True)
    if not _port_free(port):
        port = free_port()
    broker = start_broker(state_dir / "broker")
    try:
        config_path = state_dir / "hub.toml"
        config_path.write_text(
            DEMO_CONFIG.format(
                mqtt_url=broker.url,
                protocol=broker.mqtt_protocol,
                db=(state_dir / "ruuhka.db").resolve(),
                port=port,
                crew_db=(state_dir / "crew.db").resolve(),
            ),
            encoding="utf-8",
        )
        settings = load_settings(HubSettings, config_path)
        password = demo_crew(settings)
        stop = threading.Event()
        agents = agents_for(settings, settings.mqtt, state_dir / "devices", yard_camera=True)
        url = f"http://127.0.0.1:{port}/"
        banner = (
            f"\n  Ruuhka demo: broker ({broker.kind}) on {broker.url}, hub config {config_path}\n"
            f"  Public page:  {url}\n"
            f"  API:          {url}api/v1/facilities   metrics: {url}metrics\n"
            f"  Crew page:    {url}crew   crew {DEMO_CREW!r}, password {password}\n"
            "  Press Ctrl-C to stop.\n"
        )
        print(f"Starting the hub on {url} …", flush=True)
        devices = threading.Thread(
            target=_devices_after_hub, args=(url, banner, agents, stop), name="devices"
        )
        devices.start()
        try:
            uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        finally:
            stop.set()
            devices.join(timeout=15)
    finally:
        broker.stop()
        print("Ruuhka demo stopped.", flush=True)
