"""Evaluate the hub's forecasts on real occupancy data against naive baselines.

Reads the real exports (kept outside the repository) and runs the same code the
hub runs (``hub.forecast``): each test day is forecast from the weeks before it
only, as the hub relearns every day. The test days are the last third of each
facility's period; the first two thirds only ever serve as history.

- Munich municipal pools, saunas and ice rink, 2026-01-16..2026-04-30, ~15 min
  samples (holidays: Bavaria). Facilities keyed by name and capacity; those with
  fewer than 1000 samples (the feed's first, mislabelled days) are skipped.
- Białystok sports centre ice rink (capacity 300), 2023-03..2024-09, 15 min
  (holidays: Poland). Its pools have no capacity, so no % of capacity: skipped.

A facility with no open day in its test period (Munich's outdoor rink, whose
season ended) has no test days and shows ``nan``.

Errors are mean absolute errors in % of capacity over the slots of each test
day between its first and last non-zero sample (closed hours would flatter
every method), on the slots where every compared method has a value.

- typical day: the learned profile for that weekday (or holiday);
- next 2 h: the profile carried from the value measured at the forecast's
  origin, at 15, 60 and 120 minutes ahead;
- naive: the same time a week earlier; persistence (2 h only): the value now.

Usage: python bench/forecast_eval.py /work/shared/data/occupancy [--weeks 8]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from hub.forecast import SLOTS, Day, carry, day_slots, learn_profile

MUNICH_CSV = "munich-pools-15min-2026-01-16_2026-04-30.csv"
BIALYSTOK_CSV = "bialystok-pool-icerink-2023-03_2024-09.csv"
MUNICH_TZ = ZoneInfo("Europe/Berlin")
WARSAW_TZ = ZoneInfo("Europe/Warsaw")
MIN_SAMPLES = 1000
MAX_GAP = 2  # slots a value is carried over a missing sample (the feeds are ~15 min)
HORIZONS = (1, 4, 8)  # 15-minute steps: 15, 60, 120 minutes


@dataclass
class Series:
    name: str
    capacity: int
    zone: ZoneInfo
    is_holiday: Callable[[date], bool]
    points: list[tuple[datetime, float]] = field(default_factory=list)


def read_munich(path: Path) -> list[Series]:
    bavaria = holidays.country_holidays("DE", subdiv="BY", years=range(2025, 2028))
    out: dict[tuple[str, int], Series] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["persons"] or not row["capacity"] or int(row["capacity"]) <= 0:
                continue
            capacity = int(row["capacity"])
            key = (f"Munich {row['facility_name']} ({row['facility_type']})", capacity)
            series = out.setdefault(key, Series(key[0], capacity, MUNICH_TZ, bavaria.__contains__))
            at = datetime.fromisoformat(row["timestamp"]).astimezone(UTC)
            series.points.append((at, float(row["persons"])))
    return [s for s in out.values() if len(s.points) >= MIN_SAMPLES]


def read_bialystok(path: Path) -> list[Series]:
    poland = holidays.country_holidays("PL", years=range(2022, 2026))
    series = Series("Białystok ice rink", 300, WARSAW_TZ, poland.__contains__)
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            value = int(row["ice"])
            if value >= 0:
                local = datetime.fromisoformat(row["date"]).replace(tzinfo=WARSAW_TZ)
                series.points.append((local.astimezone(UTC), float(value)))
    series.points.sort()
    return [series]


@dataclass
class Errors:
    """Absolute errors in % of capacity, per method."""

    by_method: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, actual: float, capacity: int, **predicted: float) -> None:
        for method, value in predicted.items():
            self.by_method[method].append(abs(value - actual) * 100 / capacity)

    def mae(self, method: str) -> float:
        values = self.by_method.get(method, [])
        return statistics.fmean(values) if values else float("nan")

    def count(self) -> int:
        return len(next(iter(self.by_method.values()), []))

    def extend(self, other: Errors) -> None:
        for method, values in other.by_method.items():
            self.by_method[method].extend(values)


def active_span(day: Day) -> range:
    busy = [s for s, v in enumerate(day) if v]
    return range(busy[0], busy[-1] + 1) if busy else range(0)


def evaluate(series: Series, weeks: int) -> tuple[Errors, dict[int, Errors], int]:
    days = day_slots(series.points, series.zone, MAX_GAP)
    first, last = min(days), max(days)
    split = first + (last - first) * 2 / 3
    typical = Errors()
    ahead: dict[int, Errors] = {h: Errors() for h in HORIZONS}
    test_days = 0
    for day in sorted(d for d in days if d >= split):
        actual = days[day]
        week_ago = days.get(day - timedelta(days=7))
        span = active_span(actual)
        if week_ago is None or not span:
            continue
        test_days += 1
        profile = learn_profile(days, series.is_holiday, day, weeks)
        curve = profile.for_day(day, series.is_holiday(day))
        for slot in span:
            a, c, n = actual[slot], curve[slot], week_ago[slot]
            if a is not None and c is not None and n is not None:
                typical.add(a, series.capacity, typical=c, naive=n)
        for origin in span:
            now, typical_now = actual[origin], curve[origin]
            if now is None or typical_now is None:
                continue
            for h in HORIZONS:
                target = origin + h
                if target not in span or target >= SLOTS:
                    continue
                a, c, n = actual[target], curve[target], week_ago[target]
                if a is None or c is None or n is None:
                    continue
                ahead[h].add(
                    a,
                    series.capacity,
                    forecast=carry(c, typical_now, now, 15 * h),
                    typical=c,
                    naive=n,
                    persistence=now,
                )
    return typical, ahead, test_days


def goals(typical: Errors, ahead: dict[int, Errors]) -> list[tuple[str, bool]]:
    """The forecast's goals on data pooled over all facilities: never worse than the
    value now at 15 minutes, clearly better than both naive methods from an hour on,
    and a typical day clearly better than the same time a week earlier."""
    out = [
        (
            "typical day >= 20 % better than a week earlier",
            typical.mae("typical") <= 0.8 * typical.mae("naive"),
        ),
        (
            "@15 min no worse than persistence",
            ahead[1].mae("forecast") <= ahead[1].mae("persistence"),
        ),
    ]
    for h in (4, 8):
        best_naive = min(ahead[h].mae("persistence"), ahead[h].mae("naive"))
        out.append(
            (
                f"@{15 * h} min >= 30 % better than the better naive method",
                ahead[h].mae("forecast") <= 0.7 * best_naive,
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="directory holding the occupancy CSVs")
    parser.add_argument("--weeks", type=int, default=8, help="weeks of history to learn from")
    parser.add_argument("--verbose", action="store_true", help="one line per facility")
    args = parser.parse_args()

    groups: dict[str, list[Series]] = {}
    if (args.path / MUNICH_CSV).exists():
        groups["Munich pools, saunas, rink"] = read_munich(args.path / MUNICH_CSV)
    if (args.path / BIALYSTOK_CSV).exists():
        groups["Białystok ice rink"] = read_bialystok(args.path / BIALYSTOK_CSV)
    if not groups:
        raise SystemExit(f"no occupancy CSVs in {args.path}")

    print(f"MAE in % of capacity; history {args.weeks} weeks; test = last third of each period")
    header = f"{'data':28} {'fac':>3} {'days':>5} | {'typical':>7} {'naive':>6} |" + "".join(
        f" {'fc':>5} {'pers':>5} {'naive':>5} @{15 * h:<3}|" for h in HORIZONS
    )
    print(header)
    every = Errors()
    every_ahead = {h: Errors() for h in HORIZONS}
    for label, members in groups.items():
        total = Errors()
        total_ahead = {h: Errors() for h in HORIZONS}
        days = 0
        for series in members:
            typical, ahead, test_days = evaluate(series, args.weeks)
            days += test_days
            total.extend(typical)
            for h in HORIZONS:
                total_ahead[h].extend(ahead[h])
            if args.verbose and len(members) > 1:
                print(_line(series.name[:28], 1, test_days, typical, ahead))
        print(_line(label, len(members), days, total, total_ahead))
        every.extend(total)
        for h in HORIZONS:
            every_ahead[h].extend(total_ahead[h])
    print(_line("all", sum(len(m) for m in groups.values()), 0, every, every_ahead))
    print(f"slots compared: typical day {every.count()}, next 2 h @120 {every_ahead[8].count()}")
    results = goals(every, every_ahead)
    for goal, met in results:
        print(f"goal: {goal}: {'met' if met else 'NOT met'}")
    return 0 if all(met for _, met in results) else 1


def _line(label: str, facilities: int, days: int, typical: Errors, ahead: dict[int, Errors]) -> str:
    text = f"{label:28} {facilities:>3} {days or '':>5} | "
    text += f"{typical.mae('typical'):7.2f} {typical.mae('naive'):6.2f} |"
    for h in HORIZONS:
        e = ahead[h]
        text += f" {e.mae('forecast'):5.2f} {e.mae('persistence'):5.2f} {e.mae('naive'):5.2f}     |"
    return text


if __name__ == "__main__":
    sys.exit(main())
