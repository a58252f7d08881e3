"""``ruuhka-bench`` runs the evaluation scripts in bench/ by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest


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
    assert "stills: 1 images, 1 with people" in result.stdout, result.stderr
    assert "recall" in result.stdout and "utility" in result.stdout
    # A grey block is no person to the detectors: the recall goal is missed, and said.
    assert "NOT met" in result.stdout
    assert result.returncode == 1


def test_every_benchmark_starts_and_finds_its_sibling_modules() -> None:
    from ruuhka.bench_cli import SCRIPTS

    for name in SCRIPTS:
        result = run(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "usage:" in result.stdout, name


def test_privacy_stills_run_on_mirrored_and_scaled_copies(tmp_path: Path) -> None:
    one_photograph(tmp_path)
    result = run("privacy", "--dataset", str(tmp_path), "--flip", "--scale", "0.5")
    assert result.returncode == 1, result.stderr  # the goals are missed, as above
    assert "1 with people, mirrored, scaled 0.5x" in result.stdout
    refused = run("privacy", "--dataset", str(tmp_path), "--scale", "0")
    assert refused.returncode == 2 and "--scale" in refused.stderr


def test_privacy_variants_refuse_values_out_of_range(tmp_path: Path) -> None:
    one_photograph(tmp_path)
    for option, value in (("--light", "0"), ("--jpeg-quality", "1"), ("--half", "3")):
        refused = run("privacy", "--dataset", str(tmp_path), option, value)
        assert refused.returncode == 2 and option in refused.stderr, option


def test_privacy_all_variants_print_one_table(tmp_path: Path) -> None:
    one_photograph(tmp_path)
    # A people-free picture for the scene's background; the block above walks in it.
    cv2.imwrite(str(tmp_path / "images" / "0.jpg"), np.full((240, 320, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "person-masks" / "0.png"), np.zeros((240, 320), np.uint8))
    result = run("privacy", "--dataset", str(tmp_path), "--all-variants", "--frames", "12")
    assert result.returncode == 1, result.stderr
    table = result.stdout.splitlines()
    start = next(i for i, line in enumerate(table) if line.startswith("variant"))
    rows = [(line[:24].strip(), line[25:35].strip()) for line in table[start + 1 : start + 19]]
    assert [variant for variant, _ in rows[::2]] == [
        "people-dev", "--half 1", "--half 2", "--flip", "--scale 0.75", "--scale 0.5",
        "--light 0.5", "--jpeg-quality 40", "scene",
    ]  # fmt: skip
    assert [mode for _, mode in rows] == ["pixelate", "fill"] * 8 + ["background", "pixelate"]
    assert "ms/720p" in table[start] and "worst person" in table[start]


def test_the_forecast_goals_judge_the_pooled_errors() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from forecast_eval import Errors, Result, goals

    def errors(**maes: float) -> Errors:
        e = Errors()
        for method, mae in maes.items():
            e.by_method[method].append(mae)
        return e

    def result(typical: Errors, ahead: dict[int, Errors]) -> Result:
        out = Result(typical=typical)
        out.ahead.update(ahead)
        return out

    typical = errors(typical=5.0, naive=7.0)
    good = {
        1: errors(forecast=1.4, persistence=1.5, naive=7.0),
        2: errors(forecast=2.4, persistence=2.5, naive=7.0),
    } | {h: errors(forecast=3.0, persistence=5.0, naive=7.0) for h in (4, 8)}
    assert all(met for _, met in goals(result(typical, good)))
    worse_at_15 = good | {1: errors(forecast=1.8, persistence=1.5, naive=7.0)}
    assert [goal for goal, met in goals(result(typical, worse_at_15)) if not met] == [
        "@15 min no worse than persistence"
    ]
    worse_at_30 = good | {2: errors(forecast=2.6, persistence=2.5, naive=7.0)}
    assert [goal for goal, met in goals(result(typical, worse_at_30)) if not met] == [
        "@30 min no worse than persistence"
    ]
    near_naive = good | {8: errors(forecast=3.6, persistence=8.0, naive=5.0)}
    assert [goal for goal, met in goals(result(typical, near_naive)) if not met] == [
        "@120 min >= 30 % better than the better naive method"
    ]
    assert not all(met for _, met in goals(result(errors(typical=6.5, naive=7.0), good)))


def test_privacy_evaluation_measures_another_setting_when_asked(tmp_path: Path) -> None:
    one_photograph(tmp_path)
    everything = "privacy_polygons=[[[0, 0], [1, 0], [1, 1], [0, 1]]]"
    result = run("privacy", "--dataset", str(tmp_path), "--set", everything)
    # The whole picture is a privacy area: nothing of the person (or else) shows.
    pixelate = next(line for line in result.stdout.splitlines() if " pixelate " in line)
    assert pixelate.split()[2:4] == ["1.0000", "0.0000"], result.stdout + result.stderr


def test_privacy_evaluation_refuses_a_setting_the_anonymiser_does_not_have(tmp_path: Path) -> None:
    result = run("privacy", "--dataset", str(one_photograph(tmp_path)), "--set", "tile_sides=3")
    assert result.returncode == 2
    assert "tile_sides" in result.stderr


def test_the_scene_refuses_a_published_size_it_cannot_score(tmp_path: Path) -> None:
    one_photograph(tmp_path)
    result = run("privacy", "--dataset", str(tmp_path), "--scene", "--set", "max_width=640")
    assert result.returncode == 2
    assert "max_width" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--tile-sides", "-5", "tile_sides"),
        ("--tile-sides", "100000", "tile_sides"),
        ("--tile-sides", "abc", "--tile-sides"),
        ("--size", "640x", "--size"),
        ("--size", "99999x10", "--size"),
        ("--frames", "0", "--frames"),
    ],
)
def test_the_anonymiser_benchmark_refuses_bad_options(option: str, value: str, named: str) -> None:
    result = run("anonymise", option, value)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
