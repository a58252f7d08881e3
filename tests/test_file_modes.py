"""Every file the hub and the ``ruuhka`` command create with secrets, personal data or
readings in it is 0600, under the usual umask 022 that would make it 0644."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import Outbox
from hub.crew.db import CrewDB
from ruuhka.contract import Stream
from ruuhka.private_files import create_private
from tests.conftest import mosquitto_pub, wait_for
from tests.crew_support import CrewClient, crew_hub
from tests.test_backup import ruuhka_store
from tests.web_support import snapshot


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The test process and every child it starts (the hub, the CLI) run under 022."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    return {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in folder.iterdir()
        if p.is_file() and ".db" in p.name
    }


def test_the_hub_and_the_cli_keep_their_files_to_themselves(
    tmp_path: Path, umask_022: None
) -> None:
    with crew_hub(tmp_path) as hub:  # the crews are added with the real `ruuhka crew add`
        CrewClient(hub, "10.0.0.1").login("city")  # sessions: the crew database's WAL
        mosquitto_pub(hub.broker, "ruuhka/v1/devices/crew-cam/snapshot", snapshot(1, 2))
        wait_for(lambda: (tmp_path / "hub.snapshots.db-wal").exists(), 20, "a picture kept")
        running = modes(tmp_path)
        backup = tmp_path / "backup"
        done = ruuhka_store(hub.config, "backup", str(backup))
        assert done.returncode == 0, done.stderr
    expected = {"crew.db", "hub.db", "hub.snapshots.db"}
    expected |= {name + suffix for name in expected for suffix in ("-wal", "-shm")}
    assert set(running) == expected, running
    assert set(running.values()) == {0o600}, running
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in backup.iterdir()} == {0o600}
    assert len(list(backup.iterdir())) == 4  # three databases and the manifest
    # Restored where a fresh hub keeps them: 0600 again.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config = (tmp_path / "hub.toml").read_text(encoding="utf-8")
    (fresh / "hub.toml").write_text(config.replace(str(tmp_path / "hub"), str(fresh / "hub"))
                                    .replace(str(tmp_path / "crew"), str(fresh / "crew")),
                                    encoding="utf-8")  # fmt: skip
    done = ruuhka_store(fresh / "hub.toml", "restore", str(backup))
    assert done.returncode == 0, done.stderr
    assert set(modes(fresh).values()) == {0o600}, modes(fresh)
    assert {"crew.db", "hub.db", "hub.snapshots.db"} <= set(modes(fresh))


def test_the_edge_outbox_is_the_agent_s_alone(tmp_path: Path, umask_022: None) -> None:
    outbox = Outbox(tmp_path / "state" / "outbox.db", "gate")
    try:
        outbox.put(Stream.COUNT, {"counter": "main", "entries": 1, "exits": 0})
        assert set(modes(tmp_path / "state").values()) == {0o600}, modes(tmp_path / "state")
    finally:
        outbox.close()


def test_a_database_every_user_could_read_is_closed_to_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "crew.db"
    CrewDB(path).close()
    path.chmod(0o644)  # made by an older version
    with caplog.at_level(logging.WARNING, "ruuhka.files"):
        CrewDB(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # its group keeps reading it
    assert "readable by every user" in caplog.text


def test_an_odd_umask_cannot_make_a_database_unwritable(tmp_path: Path) -> None:
    previous = os.umask(0o277)
    try:
        create_private(tmp_path / "crew.db")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "crew.db").stat().st_mode) == 0o600
