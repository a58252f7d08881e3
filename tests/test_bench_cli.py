"""``ruuhka-bench`` runs the evaluation scripts in bench/ by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruuhka.bench_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_benchmark_is_a_usage_error() -> None:
    result = run("nonsense")
    assert result.returncode == 2
    assert "privacy" in result.stderr


def test_privacy_evaluation_runs_on_a_dataset_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "person-masks").mkdir()
    image = np.full((240, 320, 3), 120, np.uint8)
    cv2.imwrite(str(tmp_path / "images" / "1.jpg"), image)
    mask = np.zeros((240, 320), np.uint8)
    mask[40:220, 100:160] = 255
    cv2.imwrite(str(tmp_path / "person-masks" / "1.png"), mask)
    result = run("privacy", "--dataset", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "stills: 1 images, 1 with people" in result.stdout
    assert "recall" in result.stdout and "utility" in result.stdout


def test_every_benchmark_starts_and_finds_its_sibling_modules() -> None:
    from ruuhka.bench_cli import SCRIPTS

    for name in SCRIPTS:
        result = run(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "usage:" in result.stdout, name
