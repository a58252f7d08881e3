"""Evaluate the hub's forecasts on occupancy data against naive baselines.

Runs the same code the hub runs (``hub.forecast``): each test day is forecast
from the days before it only, as the hub relearns every day, and the blend of
the value now with the typical curve is fitted, as the hub fits it, on the week
before each test day (forecast from a profile learned before that week). The
test days are those from ``--test-from`` on, by default the last third of each
facility's period; earlier days only ever serve as history.

Two ways in:

- ``forecast DIR``: the real exports kept outside the repository: Munich's
  pools, saunas and ice rink (~15 min samples, holidays: Bavaria) in the CSV
  format below, and the Białystok ice rink (capacity 300, its own format,
  holidays: Poland).
- ``forecast --csv FILE [FILE...]``: any export in this format (one file or
  several, each a dataset). One row per sample, a header row naming the columns:
  ``timestamp`` (ISO 8601 with a zone offset), ``facility`` (or ``facility_name``
  with an optional ``facility_type``), ``persons`` and ``capacity``; other columns
  are ignored. A row with an empty ``persons`` or ``capacity`` is no reading and
  skipped. A facility whose capacity changes is evaluated from its last change on
  and the report says so. Any other fault (a missing column, a timestamp that does
  not parse or has no zone, a count that is not a number) stops with one message
  naming the file and line, before anything is evaluated.

Errors are mean absolute errors in % of capacity over the slots of each test
day between its first and last non-zero sample (closed hours would flatter
every method), on the slots where every compared method has a value.

- typical day: the learned profile for that weekday (or holiday);
- forecast @N: the value N minutes ahead as the hub shows it;
- carry: the blend before it was fitted (typical curve plus today's deviation,
  fading over 4 hours); slope: the value now plus the typical curve's change;
- naive: the same time a week earlier; persistence: the value now.

Exits 1 when a goal is missed on the facilities pooled (see ``goals``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from hub.forecast import (
    FIT_DAYS,
    SLOTS,
    Blend,
    Day,
    Profile,
    blend_samples,
    borrow_shape,
    carry,
    day_slots,
    fit_blend,
    learn_profile,
)

MUNICH_CSV = "munich-pools-15min-2026-01-16_2026-04-30.csv"
BIALYSTOK_CSV = "bialystok-pool-icerink-2023-03_2024-09.csv"
MUNICH_TZ = ZoneInfo("Europe/Berlin")
WARSAW_TZ = ZoneInfo("Europe/Warsaw")
MIN_DAYS = 14  # a facility with fewer days of samples than this is skipped, and said
MAX_GAP = 2  # slots a value is carried over a missing sample (the feeds are ~15 min)
DEFAULT_HORIZONS = (15, 30, 60, 90, 120)
STEPS = 8  # the hub forecasts two hours ahead


class CsvError(ValueError):
    """A CSV that cannot be evaluated; the message names the file and line."""


@dataclass
class Series:
    name: str
    capacity: int
    zone: ZoneInfo
    is_holiday: Callable[[date], bool]
    points: list[tuple[datetime, float]] = field(default_factory=list)


def _never(_: date) -> bool:
    return False


def read_csv(
    path: Path, zone: ZoneInfo | None = None, is_holiday: Callable[[date], bool] = _never
) -> tuple[list[Series], list[str]]:
    """The facilities in one CSV of the documented format, and notes on what was
    left out. Raises ``CsvError`` on the first fault, having kept nothing."""
    required = {"timestamp", "persons", "capacity"}
    runs: dict[str, list[tuple[int, list[tuple[datetime, float]]]]] = {}
    skipped = 0
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        missing = sorted(required - columns)
        if "facility" not in columns and "facility_name" not in columns:
            missing.append("facility (or facility_name)")
        if missing:
            raise CsvError(f"{path}: missing column(s): {', '.join(missing)}")
        for row in reader:
            line = reader.line_num
            persons, capacity = (row.get("persons") or "").strip(), (row.get("capacity") or "")
            if not persons or not capacity.strip():
                skipped += 1
                continue
            try:
                at = datetime.fromisoformat(row["timestamp"].strip())
            except ValueError:
                raise CsvError(
                    f"{path}:{line}: timestamp {row['timestamp']!r} is not ISO 8601"
                ) from None
            if at.tzinfo is None:
                raise CsvError(f"{path}:{line}: timestamp {row['timestamp']!r} has no zone offset")
            try:
                value, cap = float(persons), int(float(capacity))
            except ValueError:
                raise CsvError(f"{path}:{line}: persons or capacity is not a number") from None
            if cap <= 0:
                skipped += 1
                continue
            name = (row.get("facility") or row.get("facility_name") or "").strip()
            if row.get("facility_type"):
                name = f"{name} ({row['facility_type'].strip()})"
            if not name:
                raise CsvError(f"{path}:{line}: no facility")
            stretches = runs.setdefault(name, [])
            if not stretches or stretches[-1][0] != cap:
                stretches.append((cap, []))
            # Without a zone for the data, local time is the time as written.
            stamp = at.astimezone(UTC) if zone else at.replace(tzinfo=UTC)
            stretches[-1][1].append((stamp, value))
    notes = [f"{skipped} rows without a count or capacity skipped"] if skipped else []
    out: list[Series] = []
    for name, stretches in runs.items():
        capacity, points = stretches[-1]
        if len(stretches) > 1:
            before = sum(len(p) for _, p in stretches[:-1])
            since = points[0][0].date().isoformat()
            caps = " -> ".join(str(c) for c, _ in stretches[-3:])
            notes.append(
                f"{name}: capacity changed ({caps}); evaluated from {since} on,"
                f" {before} earlier samples left out"
            )
        points.sort()
        span = (points[-1][0] - points[0][0]).days
        if span < MIN_DAYS:
            notes.append(f"{name}: {span} days of samples, fewer than {MIN_DAYS}: skipped")
            continue
        out.append(Series(name, capacity, zone or ZoneInfo("UTC"), is_holiday, points))
    return out, notes


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


@dataclass
class Result:
    """One facility's (or a pool of facilities') errors."""

    typical: Errors = field(default_factory=Errors)
    ahead: dict[int, Errors] = field(default_factory=lambda: defaultdict(Errors))
    test_days: int = 0
    facilities: int = 0

    def extend(self, other: Result) -> None:
        self.typical.extend(other.typical)
        for h, e in other.ahead.items():
            self.ahead[h].extend(e)
        self.test_days += other.test_days
        self.facilities += other.facilities


def active_span(day: Day) -> range:
    busy = [s for s, v in enumerate(day) if v]
    return range(busy[0], busy[-1] + 1) if busy else range(0)


def evaluate(
    series: Series, weeks: int, steps: Sequence[int], test_from: date | None = None
) -> Result:
    days = day_slots(series.points, series.zone, MAX_GAP)
    first, last = min(days), max(days)
    split = test_from or first + (last - first) * 2 / 3
    learned: dict[date, Profile] = {}

    def profile(until: date) -> Profile:
        if until not in learned:
            learned[until] = learn_profile(days, series.is_holiday, until, weeks)
        return learned[until]

    result = Result(facilities=1)
    for day in sorted(d for d in days if d >= split):
        actual = days[day]
        week_ago = days.get(day - timedelta(days=7))
        span = active_span(actual)
        if week_ago is None or not span:
            continue
        result.test_days += 1
        curve = profile(day).for_day(day, series.is_holiday(day))
        blend = fitted_blend(days, series.is_holiday, profile(day - timedelta(days=FIT_DAYS)), day)
        for slot in span:
            a, c, n = actual[slot], curve[slot], week_ago[slot]
            if a is not None and c is not None and n is not None:
                result.typical.add(a, series.capacity, typical=c, naive=n)
        for origin in span:
            now, typical_now = actual[origin], curve[origin]
            if now is None or typical_now is None:
                continue
            for h in steps:
                target = origin + h
                if target not in span or target >= SLOTS:
                    continue
                a, c, n = actual[target], curve[target], week_ago[target]
                if a is None or c is None or n is None:
                    continue
                result.ahead[h].add(
                    a,
                    series.capacity,
                    forecast=blend.value(h, now, typical_now, c),
                    carry=carry(c, typical_now, now, 15 * h),
                    slope=max(0.0, now + c - typical_now),
                    typical=c,
                    naive=n,
                    persistence=now,
                )
    return result


def fitted_blend(
    days: dict[date, Day], is_holiday: Callable[[date], bool], before: Profile, day: date
) -> Blend:
    """The blend the hub would use on ``day``: fitted on the week before it, from a
    profile learned before that week."""
    week = [day - timedelta(days=k) for k in range(FIT_DAYS, 0, -1)]
    samples = blend_samples(days, lambda d: before.for_day(d, is_holiday(d)), week, STEPS)
    return fit_blend(samples, STEPS)


def cold_start(
    target: Series, peers: list[Series], weeks: int, test_from: date | None
) -> tuple[Errors, int]:
    """Each test day of ``target`` forecast as if it had only the 7 days before it:
    its own week alone, that week leaning on its peers' shape, and its full history."""
    days = day_slots(target.points, target.zone, MAX_GAP)
    peer_days = [day_slots(p.points, p.zone, MAX_GAP) for p in peers]
    first, last = min(days), max(days)
    split = test_from or first + (last - first) * 2 / 3
    errors, count = Errors(), 0
    for day in sorted(d for d in days if d >= split):
        actual, week_ago, span = (
            days[day],
            days.get(day - timedelta(days=7)),
            active_span(days[day]),
        )
        if week_ago is None or not span:
            continue
        week = {d: v for d, v in days.items() if day - timedelta(days=7) <= d < day}
        own = learn_profile(week, target.is_holiday, day, weeks)
        others = [
            learn_profile(d, p.is_holiday, day, weeks)
            for d, p in zip(peer_days, peers, strict=True)
        ]
        others = [o for o in others if o.basis_days]
        holiday = target.is_holiday(day)
        curves = {
            "week only": own.for_day(day, holiday),
            "week + peers": borrow_shape(own, others).for_day(day, holiday),
            "full history": learn_profile(days, target.is_holiday, day, weeks).for_day(
                day, holiday
            ),
        }
        count += 1
        for slot in span:
            values = {m: c[slot] for m, c in curves.items()}
            a, n = actual[slot], week_ago[slot]
            if a is None or n is None or any(v is None for v in values.values()):
                continue
            errors.add(a, target.capacity, naive=n, **values)  # type: ignore[arg-type]
    return errors, count


def _kind(name: str) -> str:
    return name.rsplit("(", 1)[-1] if name.endswith(")") else ""


def goals(result: Result) -> list[tuple[str, bool]]:
    """The forecast's goals on data pooled over all facilities: never worse than the
    value now at 15 and 30 minutes, clearly better than both naive methods at an
    hour and two, and a typical day clearly better than the same time a week earlier."""
    typical, ahead = result.typical, result.ahead
    out = [
        (
            "typical day >= 20 % better than a week earlier",
            typical.mae("typical") <= 0.8 * typical.mae("naive"),
        )
    ]
    for h in (1, 2):
        out.append(
            (
                f"@{15 * h} min no worse than persistence",
                ahead[h].mae("forecast") <= ahead[h].mae("persistence"),
            )
        )
    for h in (4, 8):
        best_naive = min(ahead[h].mae("persistence"), ahead[h].mae("naive"))
        out.append(
            (
                f"@{15 * h} min >= 30 % better than the better naive method",
                ahead[h].mae("forecast") <= 0.7 * best_naive,
            )
        )
    return out


METHODS = ("forecast", "persistence", "naive", "carry", "slope")


def summary(label: str, result: Result, steps: Sequence[int]) -> str:
    """One line: facilities, test days, typical day against naive, forecast against
    the better naive method per horizon."""
    t = result.typical
    text = f"{label[:34]:34} {result.facilities:>3} {result.test_days:>5} |"
    text += f" {t.mae('typical'):5.2f} {t.mae('naive'):5.2f} |"
    for h in steps:
        e = result.ahead[h]
        best = min(e.mae("persistence"), e.mae("naive"))
        text += f" {e.mae('forecast'):5.2f} {best:5.2f} |"
    return text


def header(steps: Sequence[int]) -> str:
    text = f"{'data':34} {'fac':>3} {'days':>5} | {'typ':>5} {'naive':>5} |"
    return text + "".join(f" {'@' + str(15 * h):>5} {'naive':>5} |" for h in steps)


def horizon_table(result: Result, steps: Sequence[int]) -> list[str]:
    lines = [f"{'ahead':>6} " + " ".join(f"{m:>11}" for m in METHODS) + f" {'slots':>8}"]
    for h in steps:
        e = result.ahead[h]
        lines.append(
            f"{15 * h:>4}'  " + " ".join(f"{e.mae(m):11.2f}" for m in METHODS) + f" {e.count():>8}"
        )
    return lines


def run(
    groups: dict[str, list[Series]],
    weeks: int,
    steps: Sequence[int],
    test_from: date | None,
    per_facility: bool,
) -> Result:
    every = Result()
    print(header(steps))
    for label, members in groups.items():
        total = Result()
        for series in members:
            result = evaluate(series, weeks, steps, test_from)
            total.extend(result)
            if per_facility and len(members) > 1:
                print(summary("  " + series.name, result, steps))
        print(summary(label, total, steps))
        every.extend(total)
    print(summary("all", every, steps))
    print()
    print("per horizon, all facilities (MAE in % of capacity):")
    for line in horizon_table(every, steps):
        print(line)
    return every


def _horizons(text: str) -> list[int]:
    try:
        minutes = [int(m) for m in text.split(",") if m.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("minutes, comma-separated: 15,30,60") from None
    if not minutes or any(m % 15 or not 15 <= m <= 15 * STEPS for m in minutes):
        raise argparse.ArgumentTypeError(f"multiples of 15 from 15 to {15 * STEPS}")
    return sorted({m // 15 for m in minutes} | {1, 2, 4, 8})


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", help="directory holding the real exports")
    parser.add_argument("--csv", type=Path, nargs="+", help="CSV file(s) in the documented format")
    parser.add_argument("--test-from", type=date.fromisoformat, help="first test day, YYYY-MM-DD")
    parser.add_argument(
        "--horizons",
        type=_horizons,
        default=_horizons(",".join(str(m) for m in DEFAULT_HORIZONS)),
        help="minutes ahead, comma-separated (15..120); 15,30,60,120 are always judged",
    )
    parser.add_argument(
        "--holidays", default="", help="public holidays for --csv: country[-subdivision], DE-BY"
    )
    parser.add_argument("--weeks", type=int, default=8, help="weeks of history to learn from")
    parser.add_argument(
        "--cold-start", metavar="FACILITY", help="only: cut this facility to 7 days of history"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per facility")
    args = parser.parse_args(None if argv is None else list(argv))
    if (args.path is None) == (args.csv is None):
        parser.error("give a directory or --csv FILE...")

    started = time.monotonic()
    groups: dict[str, list[Series]] = {}
    notes: list[str] = []
    try:
        if args.csv:
            country, _, subdivision = args.holidays.partition("-")
            calendar = (
                holidays.country_holidays(
                    country, subdiv=subdivision or None, years=range(2000, 2040)
                )
                if country
                else {}
            )
            for path in args.csv:
                found, said = read_csv(path, None, calendar.__contains__)
                groups[path.name] = found
                notes += [f"{path.name}: {n}" for n in said]
        else:
            if (args.path / MUNICH_CSV).exists():
                bavaria = holidays.country_holidays("DE", subdiv="BY", years=range(2025, 2028))
                found, said = read_csv(args.path / MUNICH_CSV, MUNICH_TZ, bavaria.__contains__)
                groups["Munich pools, saunas, rink"] = found
                notes += said
            if (args.path / BIALYSTOK_CSV).exists():
                groups["Białystok ice rink"] = read_bialystok(args.path / BIALYSTOK_CSV)
    except CsvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not groups:
        print(f"error: no occupancy CSVs in {args.path}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    split = args.test_from.isoformat() if args.test_from else "the last third of each period"
    print(f"MAE in % of capacity; history {args.weeks} weeks; test days from {split}")
    steps = args.horizons
    if args.cold_start:
        members = [s for group in groups.values() for s in group]
        target = next((s for s in members if s.name == args.cold_start), None)
        if target is None:
            print(f"error: no facility {args.cold_start!r}", file=sys.stderr)
            return 2
        peers = [s for s in members if s is not target and _kind(s.name) == _kind(target.name)]
        errors, count = cold_start(target, peers, args.weeks, args.test_from)
        print(f"cold start: {target.name}, {count} test days, {len(peers)} peers of its kind")
        for method in ("week only", "week + peers", "full history", "naive"):
            print(f"  typical day from {method:14} {errors.mae(method):5.2f}")
        print(f"time taken: {time.monotonic() - started:.0f} s")
        return 0
    every = run(groups, args.weeks, steps, args.test_from, not args.quiet)
    results = goals(every)
    for goal, met in results:
        print(f"goal: {goal}: {'met' if met else 'NOT met'}")
    print(f"time taken: {time.monotonic() - started:.0f} s")
    return 0 if all(met for _, met in results) else 1


if __name__ == "__main__":
    sys.exit(main())
