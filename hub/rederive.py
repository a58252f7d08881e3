"""Late readings land at their own time.

Readings are folded into a facility's state in the order of their times. One
that arrives after a newer one (a counter draining its backlog after an outage,
a reading from yesterday, a redelivery) is stored, and the facility is marked
for a recompute: from the checkpoint of the local day the late reading falls in,
every stored reading of the facility is folded again in time order, and the
series points and checkpoints from that day on are replaced. The result is what
a from-scratch recompute gives, at a cost proportional to the span since that
day, not to all history.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from time import monotonic

from hub.config import Facility, HubSettings
from hub.state import FacilityDeriver, Tracker, local_midnight
from hub.store import (
    EARLIEST,
    Checkpoint,
    Derived,
    Record,
    SeriesPoint,
    Store,
    in_range,
    open_store,
    slot_of,
)
from ruuhka.contract import Quality, Reading, Stream, parse_payload


def day_start(facility: Facility, when: datetime) -> datetime:
    """Midnight of the facility's local day that ``when`` falls in, in UTC."""
    return local_midnight(facility, when.astimezone(facility.zone).date())


def is_late(deriver: FacilityDeriver, when: datetime) -> bool:
    """Older than what the facility's state already shows."""
    newest = deriver.state.updated_at
    return newest is not None and when < newest


def mark_late(deriver: FacilityDeriver, when: datetime) -> None:
    """Remember, with the tracker that is stored with the state, where a recompute
    must start: a hub that stops before it recomputes does it after the restart."""
    earlier = deriver.tracker.late_from
    if not earlier or when < datetime.fromisoformat(earlier):
        deriver.tracker.late_from = when.isoformat()


def fold(
    deriver: FacilityDeriver,
    counted_in: str,
    reading: Reading,
    source: str,
    when: datetime,
    clock_flags: list[Quality],
    out: Derived,
) -> bool:
    """Apply one reading in time order, adding its minute's series point (and the
    day's checkpoint before the day's first reading) to ``out``.

    A reading whose seq is below one of its device's (``counted_in``: its seq key)
    already folded in is skipped: its time contradicts the device's own order, and
    the device's order wins."""
    seqs = deriver.tracker.seqs
    if reading.seq <= seqs.get(counted_in, -1):
        return False
    facility = deriver.facility
    start, _ = deriver.local_day(when)
    newest = deriver.state.updated_at
    if newest is None or newest < start:  # folded in time order: newest <= when
        tracker = Tracker.from_json(deriver.tracker.to_json())
        tracker.late_from = ""
        state = deriver.state.model_copy(deep=True)
        out.checkpoints.append(Checkpoint(facility.id, start, state, tracker))
    changed = deriver.apply(reading, source, when, clock_flags)
    seqs[counted_in] = reading.seq
    out.add(SeriesPoint.of(deriver.state, slot_of(when)))
    return changed


def reading_of(record: Record) -> Reading:
    """The payload a stored reading came from (without its picture)."""
    body = {**record.data, "seq": record.seq, "ts": record.device_ts.isoformat()}
    return parse_payload(Stream(record.stream), json.dumps(body).encode())


def clock_flags_of(record: Record) -> list[Quality]:
    """The flags ingest gave the reading's time (see Ingest._effective_time)."""
    if record.data.get("clock_synced") is False:
        return [Quality.CLOCK_UNSYNCED]
    if record.device_ts.astimezone(UTC) - record.ts > timedelta(seconds=1):
        return [Quality.CLOCK_SKEW]
    return []


@dataclass
class Recomputed:
    deriver: FacilityDeriver
    derived: Derived
    start: datetime  # the day the recompute started from
    readings: int


def recompute(
    store: Store,
    facility: Facility,
    since: datetime,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Recomputed:
    """Fold the facility's stored readings again from the checkpoint before ``since``
    (through ``until``, else the newest reading)."""
    checkpoint = store.checkpoint_before(facility.id, since)
    if checkpoint is None:
        deriver = FacilityDeriver(facility, None, Tracker())
        start = EARLIEST
    else:
        deriver = FacilityDeriver(facility, checkpoint.state, checkpoint.tracker)
        start = checkpoint.day_start
    deriver.tracker.late_from = ""
    derived = Derived(replace={facility.id: (start, until)})
    records = store.readings_between(facility.id, start, until)
    for n, record in enumerate(records, start=1):
        if record.source is None:
            continue
        reading = reading_of(record)
        flags = clock_flags_of(record)
        fold(deriver, record.key, reading, record.source, record.ts, flags, derived)
        if progress is not None and n % 10_000 == 0:
            progress(n)
    return Recomputed(deriver, derived, start, len(records))


def parse_when(value: str, facility: Facility) -> datetime:
    """An RFC 3339 time with its zone, or a date (midnight at the facility)."""
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            return datetime.combine(day, time(), facility.zone).astimezone(UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        shown = repr(value[:40])
        raise ValueError(f"{shown} is neither a date (2026-12-01) nor an RFC 3339 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{value[:40]!r} has no time zone; add Z for UTC or an offset")
    return in_range(when)


def run_command(settings: HubSettings, facilities: list[str], start: str, end: str | None) -> int:
    """``ruuhka store rederive``: fold the stored readings again and rewrite the series."""
    known = {f.id: f for f in settings.facilities}
    unknown = [f for f in facilities if f not in known]
    if unknown:
        names = ", ".join(unknown)
        print(f"ruuhka store rederive: no facility {names} in the config", file=sys.stderr)
        return 1
    store = open_store(settings.store.url, settings.store)
    try:
        for facility in [known[f] for f in facilities or known]:
            try:
                since = parse_when(start, facility) if start else EARLIEST
                until = parse_when(end, facility) if end else None
            except ValueError as exc:
                print(f"ruuhka store rederive: {exc}", file=sys.stderr)
                return 1
            if until is not None:
                # Whole days: a day recomputed in part would not add up.
                until = day_start(facility, until) + timedelta(days=1)
                if until <= since:
                    print("ruuhka store rederive: --to is before --from", file=sys.stderr)
                    return 1
            started = monotonic()

            def progress(n: int, name: str = facility.id) -> None:
                print(f"{name}: {n:,} readings folded…", file=sys.stderr, flush=True)

            done = recompute(store, facility, since, until, progress)
            store.commit([], [], [], done.derived)
            print(
                f"{facility.id}: {done.readings:,} readings from "
                f"{done.start.astimezone(facility.zone).date().isoformat()} folded again, "
                f"{len(done.derived.series):,} series minutes written "
                f"({monotonic() - started:.1f} s)"
            )
    finally:
        store.close()
    return 0
