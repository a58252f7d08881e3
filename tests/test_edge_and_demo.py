"""The edge agent and the demo, run as a user would run them."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from ruuhka.broker import Broker, free_port
from tests.conftest import HubProcess, http_get, wait_for
from tests.crew_support import CrewClient

EDGE_CONFIG = """\
device_id = "test-gate"
state_dir = "{state_dir}"
heartbeat_s = 1

[mqtt]
url = "{mqtt_url}"

[[sources]]
type = "simulated_gate"
counter = "main"
capacity = 100
interval_s = 0.1
always_open = true
"""


def retained_status(broker: Broker, device: str) -> dict:
    """Read the retained status topic as a fresh subscriber would."""
    got: list[bytes] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(f"ruuhka/v1/devices/{device}/status", qos=1)
    client.loop_start()
    try:
        wait_for(lambda: got, 5, "a retained status")
    finally:
        client.loop_stop()
        client.disconnect()
    return json.loads(got[-1])


def test_edge_agent_publishes_through_its_outbox_and_says_goodbye(
    tmp_path: Path, broker: Broker, hub: HubProcess
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(EDGE_CONFIG.format(state_dir=tmp_path / "edge", mqtt_url=broker.url))
    check = subprocess.run(
        [sys.executable, "-m", "ruuhka", "edge", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0 and "test-gate" in check.stdout
    # What the broker passes on, seen by a second subscriber from before the agent starts.
    seen: dict[int, str] = {}
    listener = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    listener.on_message = lambda c, u, m: seen.setdefault(
        json.loads(m.payload)["seq"], m.topic.rsplit("/", 1)[1]
    )
    listener.connect(broker.host, broker.port)
    listener.subscribe("ruuhka/v1/devices/test-gate/+", qos=1)
    listener.loop_start()
    agent = subprocess.Popen([sys.executable, "-m", "ruuhka", "edge", "--config", str(config)])
    try:
        wait_for(lambda: hub.metric("ruuhka_readings_accepted_total", stream="count") >= 20, 15)
        wait_for(lambda: hub.metric("ruuhka_readings_accepted_total", stream="heartbeat") >= 1, 10)
        assert retained_status(broker, "test-gate")["state"] == "online"
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
    assert retained_status(broker, "test-gate")["state"] == "offline"
    with sqlite3.connect(tmp_path / "edge" / "test-gate.outbox.db") as outbox:
        left = outbox.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        sent = outbox.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()[0]
    assert left == 0
    # Every seq the agent handed out reached the broker, but for the last will of its one
    # connection (never sent: the agent said goodbye itself).
    wait_for(lambda: seen.get(sent - 1) == "status", 10, "the goodbye at the listener")
    listener.loop_stop()
    listener.disconnect()
    assert len(set(range(sent)) - set(seen)) <= 1, sorted(set(range(sent)) - set(seen))
    readings = sorted(seq for seq, stream in seen.items() if stream in ("count", "heartbeat"))
    assert len(readings) >= 21

    def stored() -> list[int]:
        """The seqs of the device's readings in the hub's store."""
        with sqlite3.connect(f"file:{tmp_path / 'hub.db'}?mode=ro", uri=True) as db:
            query = "SELECT seq FROM readings WHERE device = 'test-gate' ORDER BY seq"
            return [seq for (seq,) in db.execute(query)]

    # ... and every reading among them is in the hub's store, once.
    wait_for(lambda: stored() == readings, 15, f"all {len(readings)} readings in the store")


def test_edge_config_errors_are_one_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('device_id = "Bad Id"\n[[sources]]\ntype = "teleporter"\n')
    result = subprocess.run(
        [sys.executable, "-m", "ruuhka", "edge", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "device_id" in result.stderr and "sources[0]" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "ruuhka", "demo", "--state-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner = ""
        assert demo.stdout is not None
        while "Press Ctrl-C" not in banner:
            line = demo.stdout.readline()
            assert line, "demo exited early"
            banner += line
        broker_port = int(re.search(r"mqtt://127\.0\.0\.1:(\d+)", banner).group(1))
        url = f"http://127.0.0.1:{port}"

        def all_live() -> bool:
            status, body = http_get(url + "/api/v1/facilities?lang=en")
            assert status == 200
            facilities = json.loads(body)
            return len(facilities) == 3 and all(f["updated_at"] for f in facilities)

        wait_for(all_live, 30, "all three demo facilities to report")
        status, page = http_get(url + "/?lang=en")
        assert status == 200 and "Central swimming hall" in page

        def pier() -> dict:
            status, body = http_get(url + "/api/v1/facilities/mattolaituri")
            assert status == 200
            return json.loads(body)

        # The carpet-washing camera: a drawn yard through the real anonymiser, a
        # picture on the page within a minute of start.
        wait_for(lambda: pier()["snapshot_url"], 60, "the demo camera's first picture")
        camera = pier()
        assert camera["count_simulated"] and camera["spots"] == 2
        assert camera["spots_in_use"] is not None and camera["level"] is not None
        for width, size in ((None, (640, 360)), (240, (240, 135)), (480, (480, 270))):
            query = f"&w={width}" if width else ""
            with urllib.request.urlopen(url + camera["snapshot_url"] + query) as response:
                assert response.headers["Content-Type"] == "image/jpeg"
                with Image.open(io.BytesIO(response.read())) as picture:
                    assert (picture.format, picture.size) == ("JPEG", size)
        _, page = http_get(url + "/?lang=en")
        assert camera["snapshot_url"].replace("&", "&amp;") + "&amp;w=240" in page
        assert "of 2 washing spots in use" in page
        # The banner's crew account logs in to the crew page.
        password = re.search(r"crew 'demo', password (\S+)", banner).group(1)
        assert CrewClient(url).login("demo", password).csrf
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)  # leave nothing behind, then fail
            demo.wait(10)
            raise
    assert "Ruuhka demo stopped" in demo.stdout.read()
    time.sleep(0.5)
    for what, p in (("broker", broker_port), ("hub", port)):
        with socket.socket() as s:
            listening = s.connect_ex(("127.0.0.1", p)) == 0
        assert not listening, f"the demo's {what} still listens on {p}"
