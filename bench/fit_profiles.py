"""Fit the typical occupancy profiles shipped in ``edge/profiles.py``.

Reads two real occupancy exports (kept outside the repo; only the fitted numbers
are shipped) and prints the ``PROFILES`` and ``OPENING_HOURS`` tables as Python
source, followed by a short summary on stderr:

- Munich municipal pools live-occupancy feed, 2026-01-16..2026-04-30
  (``facility_type`` pool -> swimming_hall, ice_rink -> ice_rink; saunas unused).
- Białystok municipal sports centre, 2023-03..2024-09 (``ice`` column, capacity
  300 -> ice_rink; the pool columns have no capacity, so they are only used as a
  shape cross-check).

Method: per facility, the median fraction of capacity for each local
(weekday, hour) over the days the facility was open at all; per kind, the mean
of its facilities' medians. Opening hours are the first and last hour whose
fitted fraction reaches ``OPEN_HOUR_MIN``; hours outside them are set to 0.0.

Usage: python bench/fit_profiles.py /work/shared/data/occupancy
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

MUNICH_CSV = "munich-pools-15min-2026-01-16_2026-04-30.csv"
BIALYSTOK_CSV = "bialystok-pool-icerink-2023-03_2024-09.csv"
MUNICH_TZ = ZoneInfo("Europe/Berlin")
MUNICH_KINDS = {"pool": "swimming_hall", "ice_rink": "ice_rink"}
BIALYSTOK_ICE_CAPACITY = 300
BIALYSTOK_POOL_COLUMNS = ("sport", "family", "small")
OPEN_DAY_MIN = 0.02  # a facility-day counts as open if its busiest sample reaches this
OPEN_HOUR_MIN = 0.03  # an hour counts as open if the fitted fraction reaches this
MIN_FACILITY_SAMPLES = 1000  # drops the feed's first days, when pool names were mixed up
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

Sample = tuple[date, int, int, float]  # local date, weekday, hour, value
Grid = list[list[float]]  # 7 weekdays x 24 hours
Hours = list[tuple[int, int]]  # per weekday (open_hour, close_hour), close exclusive


def read_munich(path: Path) -> tuple[int, dict[str, dict[str, list[Sample]]]]:
    """Return the row count and kind -> facility -> samples (fraction of capacity).

    A facility is keyed by name and capacity: in the feed's first three days four
    pools carried each other's names, which shows up as a capacity that differs
    from the one the name has for the rest of the period.
    """
    rows = 0
    out: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows += 1
            kind = MUNICH_KINDS.get(row["facility_type"])
            if kind is None or not row["persons"] or not row["capacity"]:
                continue
            local = datetime.fromisoformat(row["timestamp"]).astimezone(MUNICH_TZ)
            fraction = min(1.0, int(row["persons"]) / int(row["capacity"]))
            name = f"Munich {row['facility_name']} (cap {row['capacity']})"
            out[kind][name].append((local.date(), local.weekday(), local.hour, fraction))
    return rows, out


def read_bialystok(path: Path) -> tuple[int, list[Sample], list[Sample]]:
    """Return the row count, ice samples (fraction of capacity) and pool head counts.

    Times are Europe/Warsaw local already; rows are unordered; -1 means missing.
    """
    rows = 0
    ice: list[Sample] = []
    pools: list[Sample] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            rows += 1
            local = datetime.fromisoformat(row["date"])
            key = (local.date(), local.weekday(), local.hour)
            if int(row["ice"]) >= 0:
                ice.append((*key, min(1.0, int(row["ice"]) / BIALYSTOK_ICE_CAPACITY)))
            counts = [int(row[column]) for column in BIALYSTOK_POOL_COLUMNS]
            if min(counts) >= 0:
                pools.append((*key, float(sum(counts))))
    return rows, ice, pools


def facility_grid(samples: list[Sample], open_day_min: float) -> Grid:
    """Median value per (weekday, hour) over the days the facility was open at all."""
    day_max: dict[date, float] = defaultdict(float)
    for day, _, _, value in samples:
        day_max[day] = max(day_max[day], value)
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for day, weekday, hour, value in samples:
        if day_max[day] >= open_day_min:
            cells[weekday, hour].append(value)
    return [
        [statistics.median(cells[wd, h]) if cells[wd, h] else 0.0 for h in range(24)]
        for wd in range(7)
    ]


def mean_grid(grids: list[Grid]) -> Grid:
    """Cell-wise mean, so every facility weighs the same whatever its sample count."""
    return [[statistics.fmean(g[wd][h] for g in grids) for h in range(24)] for wd in range(7)]


def opening_hours(grid: Grid) -> Hours:
    """First and last+1 hour per weekday whose fraction reaches ``OPEN_HOUR_MIN``."""
    hours: Hours = []
    for row in grid:
        busy = [h for h, value in enumerate(row) if value >= OPEN_HOUR_MIN]
        hours.append((busy[0], busy[-1] + 1) if busy else (0, 0))
    return hours


def close_and_round(grid: Grid, hours: Hours) -> Grid:
    """Zero the closed hours and round to 3 decimals."""
    return [
        [round(value, 3) if start <= h < end else 0.0 for h, value in enumerate(row)]
        for row, (start, end) in zip(grid, hours, strict=True)
    ]


def carpet_washing() -> tuple[Grid, Hours]:
    """HAND-MADE, NOT FITTED: no carpet-washing data exists; a plausible guess.

    Open 8-20 every day; weekdays quiet until the after-work evening peak,
    weekends busiest in the morning, Saturday the busiest day of the week.
    """
    weekday = [0.10, 0.12, 0.15, 0.18, 0.20, 0.20, 0.22, 0.28, 0.40, 0.50, 0.55, 0.45]
    saturday = [0.45, 0.70, 0.85, 0.90, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15]
    sunday = [0.25, 0.45, 0.60, 0.65, 0.60, 0.50, 0.45, 0.40, 0.35, 0.30, 0.20, 0.12]
    hours: Hours = [(8, 20)] * 7
    days = [weekday] * 5 + [saturday, sunday]
    return [[0.0] * 8 + day + [0.0] * 4 for day in days], hours


def peak(grid: Grid) -> str:
    """Describe the busiest cell and the busiest hour of the 7-day mean curve."""
    wd, h = max(((wd, h) for wd in range(7) for h in range(24)), key=lambda c: grid[c[0]][c[1]])
    week = [statistics.fmean(grid[d][hour] for d in range(7)) for hour in range(24)]
    hour = max(range(24), key=week.__getitem__)
    return (
        f"peak {WEEKDAYS[wd]} {h:02d}:00 = {grid[wd][h]:.3f}; "
        f"7-day-mean peak {hour:02d}:00 = {week[hour]:.3f}"
    )


def as_source(profiles: dict[str, Grid], hours: dict[str, Hours]) -> str:
    """Render the two tables as Python source for ``edge/profiles.py``."""
    lines = ["# fmt: off", "PROFILES: dict[str, tuple[tuple[float, ...], ...]] = {"]
    for kind, grid in profiles.items():
        lines.append(f'    "{kind}": (')
        for wd, row in enumerate(grid):
            lines.append(f"        (  # {WEEKDAYS[wd]}")
            for start in range(0, 24, 8):
                lines.append("            " + " ".join(f"{v:.3f}," for v in row[start : start + 8]))
            lines.append("        ),")
        lines.append("    ),")
    lines += ["}", "", "OPENING_HOURS: dict[str, tuple[tuple[int, int], ...]] = {"]
    for kind, per_day in hours.items():
        lines.append(f'    "{kind}": ({", ".join(f"({a}, {b})" for a, b in per_day)}),')
    lines += ["}", "# fmt: on"]
    return "\n".join(lines)


def main() -> None:
    """Fit, print the tables on stdout and the summary on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="directory holding both occupancy CSVs")
    args = parser.parse_args()

    munich_rows, munich = read_munich(args.data_dir / MUNICH_CSV)
    bialystok_rows, ice, bialystok_pools = read_bialystok(args.data_dir / BIALYSTOK_CSV)
    facilities: dict[str, dict[str, list[Sample]]] = {
        kind: {name: s for name, s in munich[kind].items() if len(s) >= MIN_FACILITY_SAMPLES}
        for kind in ("swimming_hall", "ice_rink")
    }
    facilities["ice_rink"]["Białystok ice rink (cap 300)"] = ice

    profiles: dict[str, Grid] = {}
    hours: dict[str, Hours] = {}
    for kind, by_name in facilities.items():
        fitted = mean_grid([facility_grid(s, OPEN_DAY_MIN) for s in by_name.values()])
        hours[kind] = opening_hours(fitted)
        profiles[kind] = close_and_round(fitted, hours[kind])
    profiles["carpet_washing"], hours["carpet_washing"] = carpet_washing()
    print(as_source(profiles, hours))

    say = sys.stderr.write
    say(f"\nrows read: Munich {munich_rows}, Białystok {bialystok_rows}\n")
    for kind, by_name in facilities.items():
        used = sum(len(s) for s in by_name.values())
        dropped = sum(len(s) for s in munich[kind].values()) - sum(
            len(s) for name, s in by_name.items() if name.startswith("Munich")
        )
        say(f"{kind}: {len(by_name)} facilities, {used} samples ({dropped} mislabelled dropped)\n")
        for name in by_name:
            say(f"  - {name}\n")
        say(f"  {peak(profiles[kind])}\n")
    say(f"carpet_washing: hand-made, {peak(profiles['carpet_washing'])}\n")
    shape = facility_grid(bialystok_pools, 5.0)
    pairs = [
        (value, shape[wd][h])
        for wd, row in enumerate(profiles["swimming_hall"])
        for h, value in enumerate(row)
        if value > 0.0
    ]
    r = statistics.correlation(*zip(*pairs, strict=True))
    say(f"cross-check: Białystok pool head counts vs swimming_hall, open hours, r = {r:.2f}\n")


if __name__ == "__main__":
    main()
