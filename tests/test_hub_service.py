"""The hub's systemd unit: it verifies, it is hardened, and the hub runs under it."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import websockets.sync.client

from ruuhka.broker import free_port, start_broker
from tests.conftest import HubProcess, http_get, mosquitto_pub, wait_for
from tests.crew_support import CREW_HUB_CONFIG, CrewClient, add_crew
from tests.web_support import count

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "ruuhka-hub.service"
# systemd-analyze security's exposure, times ten: the docs state 1.1.
EXPOSURE_AT_MOST = 15

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"
)


def _setting(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.M)


def test_hub_unit_runs_the_hub_as_its_own_user_with_a_private_state_directory() -> None:
    unit = UNIT.read_text()
    assert _setting(unit, "ExecStart") == [
        "/opt/ruuhka/venv/bin/ruuhka hub --config /etc/ruuhka/hub.toml"
    ]
    assert _setting(unit, "User") == ["ruuhka"] and _setting(unit, "Group") == ["ruuhka"]
    assert _setting(unit, "StateDirectory") == ["ruuhka"]
    assert _setting(unit, "StateDirectoryMode") == ["0700"]
    assert _setting(unit, "UMask") == ["0077"]
    assert _setting(unit, "Restart") == ["always"]
    for needed in ("NoNewPrivileges", "ProtectSystem", "PrivateDevices", "MemoryDenyWriteExecute"):
        assert _setting(unit, needed) in (["yes"], ["strict"]), needed


@needs_systemd_analyze
def test_hub_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    # verify checks that ExecStart exists; the unit's own path is the installed venv.
    local = tmp_path / "ruuhka-hub.service"
    local.write_text(
        UNIT.read_text().replace("/opt/ruuhka/venv/bin/ruuhka", shutil.which("true") or "")
    )
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            f"--threshold={EXPOSURE_AT_MOST}",
            str(local),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    assert security.returncode == 0, security.stdout[-3000:]
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", security.stdout)
    assert score and float(score.group(1)) * 10 <= EXPOSURE_AT_MOST, security.stdout[-500:]


# PR_SET_MDWE / PR_GET_MDWE (Linux 6.3+): what MemoryDenyWriteExecute=yes asks of the
# kernel (systemd uses this or an equivalent seccomp filter): no memory that is both
# writable and executable, and none that becomes executable later.
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
UNDER_MDWE = f"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: errno " + str(ctypes.get_errno()))
from ruuhka.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0


class HubUnderMdwe(HubProcess):
    """The hub as the unit runs it: no writable-and-executable memory."""

    def start(self) -> HubUnderMdwe:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", UNDER_MDWE, "hub", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._connected, 15, "the hub to connect to the broker")
        return self


@pytest.mark.skipif(not _mdwe_supported(), reason="needs Linux 6.3+ (PR_SET_MDWE)")
def test_the_hub_works_without_writable_executable_memory(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes must not break anything the hub does: ingest, pages,
    the WebSocket, argon2 password checks, the crew log."""
    with start_broker(tmp_path / "broker", prefer="mosquitto") as broker:
        port = free_port()
        config = tmp_path / "hub.toml"
        config.write_text(
            CREW_HUB_CONFIG.format(
                mqtt_url=broker.url,
                db=tmp_path / "hub.db",
                crew_db=tmp_path / "crew.db",
                port=port,
                client_id=f"mdwe-hub-{os.getpid()}",
                session_lifetime_s=3600,
            ),
            encoding="utf-8",
        )
        add_crew(config, "rinkcrew", "--facility", "rink")
        hub = HubUnderMdwe(config, port, tmp_path / "hub.log").start()
        try:
            with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/api/v1/live") as ws:
                first = json.loads(ws.recv(timeout=10))
                assert "facility" in first
                mosquitto_pub(broker, "ruuhka/v1/devices/crew-gate/count", count(1, 7, 2))
                wait_for(lambda: hub.facility("pool")["occupancy"] is not None, 10, "a reading")
            status, page = http_get(hub.url + "/facilities/pool?lang=en")
            assert status == 200 and "Swimming hall" in page
            crew = CrewClient(hub).login("rinkcrew")
            assert crew.log(facility="rink", action="iced").status_code == 201
            assert hub.process is not None and hub.process.poll() is None
        finally:
            hub.stop()
        assert "prctl" not in hub.log.read_text()
