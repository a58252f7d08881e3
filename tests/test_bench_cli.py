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


def one_photograph(folder: Path) -> Path:
    """A dataset of one grey picture whose mask marks a person-sized block."""
    (folder / "images").mkdir()
    (folder / "person-masks").mkdir()
    cv2.imwrite(str(folder / "images" / "1.jpg"), np.full((240, 320, 3), 120, np.uint8))
    mask = np.zeros((240, 320), np.uint8)
    mask[40:220, 100:160] = 255
    cv2.imwrite(str(folder / "person-masks" / "1.png"), mask)
    return folder


def test_privacy_evaluation_runs_on_a_dataset_folder(tmp_path: Path) -> None:
    result = run("privacy", "--dataset", str(one_photograph(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "stills: 1 images, 1 with people" in result.stdout
    assert "recall" in result.stdout and "utility" in result.stdout


def test_every_benchmark_starts_and_finds_its_sibling_modules() -> None:
    from ruuhka.bench_cli import SCRIPTS

    for name in SCRIPTS:
        result = run(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "usage:" in result.stdout, name


def test_privacy_stills_run_on_mirrored_and_scaled_copies(tmp_path: Path) -> None:
    one_photograph(tmp_path)
    result = run("privacy", "--dataset", str(tmp_path), "--flip", "--scale", "0.5")
    assert result.returncode == 0, result.stderr
    assert "1 with people, mirrored, scaled 0.5x" in result.stdout
    refused = run("privacy", "--dataset", str(tmp_path), "--scale", "0")
    assert refused.returncode == 2 and "--scale" in refused.stderr
