"""The hub's systemd unit: it verifies, it is hardened, and the hub runs under it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
