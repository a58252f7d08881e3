"""The history API: a facility's derived series per interval, as JSON or CSV.

Open data, so the limits are checked before the store is asked: a reversed or
huge range, or an interval so small that the answer would run to millions of
rows, is a 400 that says what to change, never a slow query.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.config import Facility
from hub.store import HistoryBucket, Store, in_range

MIN_EVERY_S = 60
MAX_BUCKETS = 10_000
MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(days=1)
DEFAULT_EVERY_S = 15 * 60
_DURATION = re.compile(r"^([0-9]{1,9})([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ROUND = [("5m", 300), ("15m", 900), ("30m", 1800), ("1h", 3600), ("3h", 10800)]
_ROUND += [("6h", 21600), ("12h", 43200), ("1d", 86400)]
CSV_FIELDS = (
    "start",
    "end",
    "samples",
    "occupancy_avg",
    "occupancy_max",
    "occupancy_pct_avg",
    "ice_temp_c",
    "air_temp_c",
    "people_avg",
    "spots_in_use_avg",
)

FromQuery = Query(
    default=None,
    alias="from",
    description="Start, RFC 3339 with a zone (inclusive). Default: 24 hours before `to`.",
    examples=["2026-11-23T00:00:00Z"],
)
ToQuery = Query(
    default=None,
    description="End, RFC 3339 with a zone (exclusive). Default: now.",
    examples=["2026-11-24T00:00:00Z"],
)
EveryQuery = Query(
    default=None,
    description=f"Interval: seconds, or a number with s, m, h or d. At least "
    f"{MIN_EVERY_S} s and at most {MAX_BUCKETS} intervals in the range. Default: 15m.",
    examples=["15m", "1h", "3600"],
)
FormatQuery = Query(
    default=None,
    description="json or csv; overrides the Accept header.",
    examples=["csv"],
)


class HistoryBucketOut(BaseModel):
    """One interval. Values are null where nothing was measured."""

    start: datetime = Field(description="Interval start, UTC.")
    end: datetime = Field(description="Interval end (exclusive), UTC.")
    samples: int = Field(description="Values measured in the interval.")
    occupancy_avg: float | None = Field(description="Mean of the measured occupancy.")
    occupancy_max: int | None = Field(description="Highest measured occupancy.")
    occupancy_pct_avg: float | None = Field(description="occupancy_avg as % of capacity.")
    ice_temp_c: float | None = Field(description="Mean ice temperature.")
    air_temp_c: float | None = Field(description="Mean air temperature.")
    people_avg: float | None = Field(description="Mean people counted on camera images.")
    spots_in_use_avg: float | None = Field(
        default=None, description="Mean washing spots in use on camera images."
    )


class HistoryOut(BaseModel):
    """A facility's history; intervals without any value are left out."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "facility": "uimahalli",
                    "from": "2026-11-23T06:00:00Z",
                    "to": "2026-11-23T07:00:00Z",
                    "every_s": 1800,
                    "capacity": 300,
                    "buckets": [
                        {
                            "start": "2026-11-23T06:00:00Z",
                            "end": "2026-11-23T06:30:00Z",
                            "samples": 112,
                            "occupancy_avg": 41.5,
                            "occupancy_max": 58,
                            "occupancy_pct_avg": 13.83,
                            "ice_temp_c": None,
                            "air_temp_c": None,
                            "people_avg": None,
                            "spots_in_use_avg": None,
                        }
                    ],
                }
            ]
        },
    )

    facility: str
    from_: datetime = Field(alias="from", description="Start of the range, UTC.")
    to: datetime = Field(description="End of the range (exclusive), UTC.")
    every_s: int = Field(description="Interval length in seconds.")
    capacity: int | None
    buckets: list[HistoryBucketOut]


_CSV_EXAMPLE = (
    ",".join(CSV_FIELDS) + "\n2026-11-23T06:00:00Z,2026-11-23T06:30:00Z,112,41.5,58,13.83,,,,\n"
)
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "JSON by default; CSV with `Accept: text/csv` or `?format=csv` "
        "(the same field names as columns, empty cells for null).",
        "content": {"text/csv": {"example": _CSV_EXAMPLE}},
    },
    400: {
        "description": "Bad parameters, with a message that says what to change.",
        "content": {
            "application/json": {
                "example": {"detail": "`from` must be before `to`"},
            }
        },
    },
    404: {"description": "No such facility."},
}


@dataclass(frozen=True)
class HistoryQuery:
    start: datetime
    end: datetime
    every_s: int


def _bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def parse_time(name: str, value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(
            f"`{name}`: {value[:40]!r} is not an RFC 3339 time, e.g. 2026-11-23T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise _bad(f"`{name}`: {value[:40]!r} has no time zone; add Z for UTC or an offset")
    try:
        return in_range(when)
    except ValueError as exc:
        raise _bad(f"`{name}`: {value[:40]!r} is {exc}") from None


def parse_every(value: str) -> int:
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise _bad(f"`every`: {value[:40]!r} is not an interval; use e.g. 900, 15m, 1h or 1d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def parse_query(
    start: str | None, end: str | None, every: str | None, now: datetime
) -> HistoryQuery:
    """Check the parameters and fill in the defaults (the last 24 hours, 15 minutes)."""
    to = parse_time("to", end) if end else now
    since = parse_time("from", start) if start else to - DEFAULT_RANGE
    every_s = parse_every(every) if every else DEFAULT_EVERY_S
    if since >= to:
        raise _bad("`from` must be before `to`")
    if to - since > MAX_RANGE:
        raise _bad(f"the range is longer than {MAX_RANGE.days} days; ask in parts")
    if every_s < MIN_EVERY_S:
        raise _bad(f"`every` must be at least {MIN_EVERY_S} seconds")
    if every_s > MAX_RANGE.total_seconds():
        raise _bad(f"`every` may be at most {MAX_RANGE.days} days")
    buckets = -(-int((to - since).total_seconds()) // every_s)
    if buckets > MAX_BUCKETS:
        needed = -(-int((to - since).total_seconds()) // MAX_BUCKETS)
        suggestion = next((label for label, s in _ROUND if s >= needed), f"{needed}s")
        raise _bad(
            f"{buckets} intervals of {every_s} s is more than {MAX_BUCKETS}; "
            f"use every={suggestion} or more, or a shorter range"
        )
    return HistoryQuery(since, to, every_s)


def _out(bucket: HistoryBucket, every_s: int, capacity: int | None) -> HistoryBucketOut:
    def r(value: float | None) -> float | None:
        return round(value, 2) if value is not None else None

    pct = None
    if bucket.occupancy_avg is not None and capacity:
        pct = round(100 * bucket.occupancy_avg / capacity, 2)
    return HistoryBucketOut(
        start=bucket.start,
        end=bucket.start + timedelta(seconds=every_s),
        samples=bucket.samples,
        occupancy_avg=r(bucket.occupancy_avg),
        occupancy_max=bucket.occupancy_max,
        occupancy_pct_avg=pct,
        ice_temp_c=r(bucket.ice_temp_c),
        air_temp_c=r(bucket.air_temp_c),
        people_avg=r(bucket.people_avg),
        spots_in_use_avg=r(bucket.spots_in_use_avg),
    )


def wants_csv(format_: str | None, accept: str | None) -> bool:
    """``?format=`` wins; else the Accept type with the highest q of JSON and CSV."""
    if format_ is not None:
        if format_.lower() not in ("json", "csv"):
            raise _bad(f"`format`: {format_[:20]!r} is neither json nor csv")
        return format_.lower() == "csv"
    best_csv, best_json = 0.0, 0.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in ("text/csv", "text/*"):
            best_csv = max(best_csv, q - (0.001 if media == "text/*" else 0))
        elif media in ("application/json", "application/*", "*/*"):
            best_json = max(best_json, q - (0.001 if media != "application/json" else 0))
    return best_csv > best_json


def respond(
    store: Store,
    facility: Facility,
    start: str | None,
    end: str | None,
    every: str | None,
    format_: str | None,
    accept: str | None,
    now: datetime | None = None,
) -> Response:
    query = parse_query(start, end, every, now or datetime.now(UTC))
    csv_wanted = wants_csv(format_, accept)
    buckets = store.history(facility.id, query.start, query.end, query.every_s)
    rows = [_out(b, query.every_s, facility.capacity) for b in buckets]
    headers = {"Cache-Control": "public, max-age=60", "Vary": "Accept"}
    if csv_wanted:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for row in rows:
            data = row.model_dump(mode="json")
            writer.writerow(["" if data[f] is None else data[f] for f in CSV_FIELDS])
        headers["Content-Disposition"] = f'inline; filename="{facility.id}-history.csv"'
        return Response(text.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    body = HistoryOut(
        facility=facility.id,
        from_=query.start,
        to=query.end,
        every_s=query.every_s,
        capacity=facility.capacity,
        buckets=rows,
    )
    return JSONResponse(body.model_dump(mode="json", by_alias=True), headers=headers)
