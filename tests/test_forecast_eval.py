"""The forecast evaluation's CSV reader and the fitted blend, on series made here."""

from __future__ import annotations

import csv
import random
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.forecast import Blend, fit_blend, unfitted_blend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from forecast_eval import CsvError, main, read_csv

BERLIN = ZoneInfo("Europe/Berlin")
START = date(2026, 2, 2)  # a Monday


def weekly(at: datetime) -> float:
    """Open 07-22, 20 people, 60 from 17 to 19; more on Saturdays."""
    hour = at.hour + at.minute / 60
    if not 7 <= hour < 22:
        return 0.0
    busy = 60.0 if 17 <= hour < 19 else 20.0
    return busy * (1.5 if at.weekday() == 5 else 1.0)


def write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        out.writerows(rows)
    return path


def series_rows(days: int, value=weekly, facility: str = "Pool", capacity: int = 100) -> list:
    rows = []
    for n in range(days):
        at = datetime.combine(START + timedelta(days=n), time(), BERLIN)
        for k in range(96):
            moment = at + timedelta(minutes=15 * k)
            rows.append([moment.isoformat(), facility, value(moment), capacity, "ignored"])
    return rows


HEADER = ["timestamp", "facility", "persons", "capacity", "notes"]


def test_a_pure_weekly_pattern_is_forecast_but_for_its_steps(tmp_path: Path, capsys) -> None:
    """Only the typical curve's smoothing (half an hour either side) blurs the
    pattern's sharp steps; the same time last week is exact."""
    path = write(tmp_path / "pool.csv", HEADER, series_rows(42))
    assert main(["--csv", str(path), "--horizons", "15,60"]) in (0, 1)
    out = capsys.readouterr().out
    (line,) = [row for row in out.splitlines() if row.startswith("pool.csv")]
    typical, naive = line.split("|")[1].split()
    assert 0 < float(typical) < 2.0 and float(naive) == 0.0
    assert "goal: @15 min no worse than persistence: met" in out
    assert "time taken:" in out


def test_facility_name_and_type_and_a_capacity_change(tmp_path: Path) -> None:
    rows = [
        [at, name, persons, 50 if n < 96 * 3 else 120, "x"]
        for n, (at, name, persons, _, _) in enumerate(series_rows(21, facility="Bad"))
    ]
    path = write(
        tmp_path / "munich.csv",
        ["timestamp", "facility_name", "persons", "capacity", "free"],
        rows,
    )
    typed = write(
        tmp_path / "typed.csv",
        ["timestamp", "facility_name", "facility_type", "persons", "capacity"],
        [[at, name, "sauna", persons, cap] for at, name, persons, cap, _ in series_rows(21)],
    )
    (series,), notes = read_csv(path)
    assert series.capacity == 120 and len(series.points) == 96 * 18
    assert any("capacity changed (50 -> 120)" in n and "288 earlier samples" in n for n in notes)
    (sauna,), _ = read_csv(typed)
    assert sauna.name == "Pool (sauna)"


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (["timestamp", "persons", "capacity"], None, "missing column(s): facility"),
        (["timestamp", "facility", "capacity"], None, "missing column(s): persons"),
        (HEADER, ["2026-02-30T10:00:00+01:00", "Pool", 5, 100, ""], ":9: timestamp"),
        (HEADER, ["2026-02-03T10:00:00", "Pool", 5, 100, ""], "has no zone offset"),
        (HEADER, ["2026-02-03T10:00:00+01:00", "Pool", "five", 100, ""], "not a number"),
    ],
)
def test_a_faulty_csv_stops_with_one_message_and_nothing_evaluated(
    tmp_path: Path, capsys, header: list[str], row: list[object] | None, message: str
) -> None:
    good = [r[: len(header)] for r in series_rows(1)[:7]]
    path = write(tmp_path / "bad.csv", header, good + ([row] if row else []) + good)
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_csv(path)
    assert main(["--csv", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing half-read, nothing evaluated
    assert captured.err.count("error:") == 1 and message in captured.err


def samples(deviation: float, lasting: float, slope_true: float) -> list:
    """(now, typical now, typical then, actual then): today's deviation lasts by
    ``lasting`` (1 = fully), and the curve's change comes true by ``slope_true``."""
    rng = random.Random(4)
    rows = []
    for _ in range(400):
        c_now = rng.uniform(10, 50)
        change = rng.choice([0.0, 0.0, rng.uniform(-0.04, 0.04) * 50, rng.uniform(-20, 20)])
        d = rng.uniform(-deviation, deviation)
        now = c_now + d
        actual = now + slope_true * change - (1 - lasting) * d
        rows.append((now, c_now, c_now + change, max(0.0, actual)))
    return rows


def test_the_blend_learns_how_long_a_deviation_lasts_and_how_far_the_curve_holds() -> None:
    lasting = fit_blend({1: samples(15, 1.0, 1.0)}, 1)
    assert lasting.pull[0] < 0.05 and lasting.slope[0] > 0.95
    fleeting = fit_blend({1: samples(15, 0.0, 1.0)}, 1)
    assert fleeting.pull[0] > 0.9
    # The typical curve's change does not come true: the value now is the better guess.
    flat = fit_blend({1: samples(15, 1.0, 0.0)}, 1)
    assert flat.slope[0] < 0.1
    assert flat.error[0] is not None and flat.error[0] < 1e-6


def test_too_few_samples_keep_the_unfitted_blend() -> None:
    few = fit_blend({1: samples(15, 1.0, 0.0)[:10]}, 2)
    assert few == Blend(unfitted_blend(2).slope, unfitted_blend(2).pull, (None, None), 0)


def test_a_young_facility_borrows_its_peers_shape_scaled_to_its_level() -> None:
    from hub.forecast import COLD_DAYS, Profile, borrow_shape

    peer_day = [0.0] * 28 + [20.0] * 40 + [80.0] * 8 + [20.0] * 12 + [0.0] * 8
    # The young one has half the visitors, and its one Monday so far missed the peak.
    own_day = [0.0] * 28 + [10.0] * 60 + [0.0] * 8
    peers = [Profile([list(peer_day) for _ in range(8)], 42) for _ in range(3)]
    own = Profile([list(own_day) for _ in range(8)], 7)
    monday = borrow_shape(own, peers).by_type[0]
    ratio = sum(own_day) / sum(peer_day)
    weight = 7 / COLD_DAYS
    assert monday[70] == pytest.approx(weight * 10 + (1 - weight) * 80 * ratio)
    assert monday[70] > 20 and monday[3] == 0.0  # the peak shows; closed stays closed
    assert borrow_shape(Profile(own.by_type, COLD_DAYS), peers).by_type[0] == own_day
    assert borrow_shape(own, []).by_type[0] == own_day
