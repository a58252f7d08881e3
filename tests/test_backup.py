"""`ruuhka store backup|restore`: a backup taken during ingest restores into a fresh hub
with every reading and crew entry acknowledged before the backup began."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ruuhka.broker import free_port, start_broker
from tests.conftest import HubProcess, wait_for
from tests.crew_support import CREW_HUB_CONFIG, CrewClient, crew_hub
from tests.web_support import count

GATE = "ruuhka/v1/devices/crew-gate/count"


def ruuhka_store(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruuhka", "store", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored(db: Path) -> set[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute("SELECT device, seq FROM readings"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Publisher(threading.Thread):
    """A device that keeps publishing, QoS 1, until stopped."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(name="publisher")
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.connect(host, port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            info = self.client.publish(GATE, count(self.sent, 2 * self.sent, self.sent), qos=1)
            info.wait_for_publish(10)

    def close(self) -> None:
        self.stop.set()
        self.join(30)
        self.client.loop_stop()
        self.client.disconnect()


def test_a_backup_during_ingest_restores_into_a_fresh_hub(tmp_path: Path) -> None:
    old, new, backup_dir = tmp_path / "old", tmp_path / "new", tmp_path / "backup" / "today"
    with crew_hub(old) as hub:
        publisher = Publisher(hub.broker.host, hub.broker.port)
        publisher.start()
        crew = CrewClient(hub).login("rinkcrew")
        now = datetime.now(UTC)
        entries = set()
        for minutes in range(5):
            done = crew.log(
                facility="rink",
                action="iced",
                performed_at=(now - timedelta(minutes=minutes)).isoformat(),
            )
            assert done.status_code == 201, done.text
            entries.add(done.json()["id"])
        wait_for(lambda: len(stored(old / "hub.db")) >= 300, 30, "readings stored")
        # Acknowledged: the hub acks a reading to the broker only after this commit.
        acknowledged = stored(old / "hub.db")
        made = ruuhka_store(hub.config, "backup", str(backup_dir))
        during = len(stored(old / "hub.db"))
        publisher.close()
        assert made.returncode == 0, made.stderr
        assert during > len(acknowledged), "ingest went on while the backup ran"

    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"readings", "pictures", "crew"}
    assert mode(backup_dir) == 0o700
    for path in backup_dir.iterdir():
        assert mode(path) == 0o600, path
    assert not list(backup_dir.glob("*.partial"))

    # A fresh hub on another machine: its own broker and paths, the same facilities.
    new.mkdir()
    with start_broker(new / "broker", prefer="mosquitto") as broker:
        port = free_port()
        config = new / "hub.toml"
        config.write_text(
            CREW_HUB_CONFIG.format(
                mqtt_url=broker.url,
                db=new / "data" / "ruuhka.db",
                crew_db=new / "data" / "crew.db",
                port=port,
                client_id=f"restored-{os.getpid()}",
                session_lifetime_s=3600,
            ),
            encoding="utf-8",
        )
        done = ruuhka_store(config, "restore", str(backup_dir))
        assert done.returncode == 0, done.stderr
        for name in ("ruuhka.db", "ruuhka.snapshots.db", "crew.db"):
            assert mode(new / "data" / name) == 0o600, name
        assert acknowledged <= stored(new / "data" / "ruuhka.db")

        fresh = HubProcess(config, port, new / "hub.log").start()
        try:
            log = fresh.get("/api/v1/facilities/rink/maintenance?limit=100")
            assert entries <= {entry["id"] for entry in log}
            # The crew accounts came along: the same crew logs in to the new hub.
            assert CrewClient(fresh).login("rinkcrew").csrf
            # The copy is consistent: the pool's state is that of the newest reading in it
            # (reading n counts 2n in and n out; the first one is the baseline).
            newest = max(seq for _, seq in stored(new / "data" / "ruuhka.db"))
            assert fresh.facility("pool")["occupancy"] == newest - 1
        finally:
            fresh.stop()

        # A second restore would overwrite data the fresh hub now holds: refused.
        again = ruuhka_store(config, "restore", str(backup_dir))
        assert again.returncode == 1 and "--replace" in again.stderr


def test_a_backup_never_overwrites_one(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "hub.db"}"\n', encoding="utf-8")
    with sqlite3.connect(tmp_path / "hub.db") as db:
        db.execute("CREATE TABLE readings (device TEXT, seq INTEGER)")
        db.execute("INSERT INTO readings VALUES ('d', 1)")
    first = ruuhka_store(config, "backup", str(tmp_path / "b"))
    assert first.returncode == 0, first.stderr
    second = ruuhka_store(config, "backup", str(tmp_path / "b"))
    assert second.returncode == 1 and "already holds a backup" in second.stderr
    missing = ruuhka_store(config, "restore", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "not a backup" in missing.stderr
