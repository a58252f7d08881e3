"""Where readings and derived state are kept: one interface, several stores.

The ingest worker asks which readings are already stored (deduplication by
device and seq), then commits a batch of new readings together with the
derived state they produced. A commit must be atomic and idempotent, so that a
batch redelivered after a crash lands once.

The derived series has one point per facility per minute that had a reading:
the state after that minute's last reading, at the minute's start. Fixed times
make the series independent of how readings were batched, and let a recompute
after late readings overwrite points (InfluxDB cannot delete through its query
API). A checkpoint per facility and local day (the state before the day's first
reading) is where such a recompute starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.config import StoreSettings
from hub.state import Tracker
from ruuhka.contract import FacilityState, seq_key

# The times every store can keep and be asked about: InfluxDB counts nanoseconds
# in 64 bits (1677-09-21 to 2262-04-11), with room to spare for intervals aligned
# to whole days. A time outside is refused where it comes in, so the stores agree.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
SERIES_SLOT_S = 60


def in_range(when: datetime) -> datetime:
    """``when`` in UTC; ValueError when it is outside EARLIEST..LATEST (or outside what
    Python can represent in UTC at all, as year 1 at +01:00 is)."""
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"outside the years {EARLIEST.year}-{LATEST.year - 1}")
    return utc


@dataclass
class Record:
    """One accepted reading, as stored."""

    device: str
    seq: int
    stream: str
    facility: str | None
    source: str | None
    ts: datetime
    device_ts: datetime
    received_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    epoch: str = ""  # the device's installation, when it sends one

    @property
    def key(self) -> str:
        """Whose seq this is: see ruuhka.contract.seq_key."""
        return seq_key(self.device, self.epoch)


@dataclass
class SavedState:
    state: FacilityState
    tracker: Tracker


@dataclass
class SeriesPoint:
    """One minute of a facility's derived series."""

    facility: str
    at: datetime  # the minute's start
    occupancy: int | None = None
    ice_temp_c: float | None = None
    air_temp_c: float | None = None
    people: int | None = None
    spots_in_use: int | None = None
    revision: int = 0

    @classmethod
    def of(cls, state: FacilityState, at: datetime) -> SeriesPoint:
        return cls(
            state.facility,
            at,
            state.occupancy,
            state.ice_temp_c,
            state.air_temp_c,
            state.people,
            state.spots_in_use,
            state.revision,
        )


def slot_of(when: datetime) -> datetime:
    """The start of the series minute ``when`` falls in."""
    seconds = int(when.timestamp()) // SERIES_SLOT_S * SERIES_SLOT_S
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Checkpoint:
    """A facility's state and tracker before the first reading of a local day."""

    facility: str
    day_start: datetime
    state: FacilityState
    tracker: Tracker


@dataclass
class Derived:
    """What deriving produced besides the live state: series points, checkpoints,
    and per facility the span [start, end) (no end: on) whose earlier series and
    checkpoints they replace."""

    series: dict[tuple[str, datetime], SeriesPoint] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def add(self, point: SeriesPoint) -> None:
        """A later point of the same facility and minute replaces the earlier one."""
        self.series[(point.facility, point.at)] = point

    @classmethod
    def of_states(cls, states: list[SavedState]) -> Derived:
        """Each state a series point at its ``updated_at`` (for seeding a store)."""
        derived = cls()
        for saved in states:
            if saved.state.updated_at is not None:
                derived.add(SeriesPoint.of(saved.state, saved.state.updated_at))
        return derived

    replace: dict[str, tuple[datetime, datetime | None]] = field(default_factory=dict)


# What a quarantined message keeps of its payload: enough to see what was wrong.
QUARANTINE_PAYLOAD_BYTES = 16 * 1024


@dataclass
class Quarantined:
    """A message ingest refused, kept for operators (a dead letter)."""

    at: datetime
    topic: str
    device: str
    reason: str
    detail: str
    size: int  # of the whole payload
    payload: bytes  # its first QUARANTINE_PAYLOAD_BYTES


@dataclass
class DeviceStatus:
    device: str
    online: bool | None
    at: datetime
    heartbeat: dict[str, Any] | None = None


@dataclass
class HistoryBucket:
    """One interval of a facility's derived series (None where nothing was measured)."""

    start: datetime
    samples: int
    occupancy_avg: float | None = None
    occupancy_max: int | None = None
    ice_temp_c: float | None = None
    air_temp_c: float | None = None
    people_avg: float | None = None
    spots_in_use_avg: float | None = None


class Store(ABC):
    @abstractmethod
    def known(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (seq key, seq) pairs are already stored; the seq key is the
        device id, or ``device#epoch`` for a device that sends an epoch."""

    @abstractmethod
    def commit(
        self,
        records: list[Record],
        states: list[SavedState],
        statuses: list[DeviceStatus],
        derived: Derived | None = None,
    ) -> None:
        """Store all of it or none of it; records already present are left alone.

        ``derived`` holds the series points and checkpoints the ingest worker
        produced. In a facility's ``replace`` span, they replace what was
        there: SQLite removes the old ones first; InfluxDB overwrites them, which
        comes to the same because a recompute writes again every minute and day
        that has a reading, and late readings only add such minutes. Without
        ``derived`` (seeding, tests) each state is a series point at its
        ``updated_at``."""

    @abstractmethod
    def readings_between(
        self, facility: str, start: datetime, end: datetime | None = None
    ) -> list[Record]:
        """The facility's readings with an effective time in [start, end), in the
        order deriving folds them: by time, then device and seq."""

    @abstractmethod
    def checkpoint_before(self, facility: str, when: datetime) -> Checkpoint | None:
        """The facility's latest checkpoint at or before ``when``."""

    @abstractmethod
    def quarantine(self, entries: list[Quarantined], keep: int) -> None:
        """Keep these refused messages, and at most ``keep`` in all (the oldest go)."""

    @abstractmethod
    def quarantined(
        self, device: str | None = None, reason: str | None = None, limit: int = 100
    ) -> list[Quarantined]:
        """The newest refused messages first."""

    @abstractmethod
    def load_states(self) -> dict[str, SavedState]: ...

    @abstractmethod
    def history(
        self, facility: str, start: datetime, end: datetime, every_s: int
    ) -> list[HistoryBucket]:
        """The facility's derived series in [start, end), one bucket per ``every_s``
        seconds that has data, oldest first."""

    @abstractmethod
    def max_seqs(self) -> dict[str, int]:
        """The highest stored seq per seq key (device, or device#epoch); for a device
        whose seq was reset, the highest received since (none when nothing came since)."""

    @abstractmethod
    def reset_seq(self, device: str, at: datetime) -> None:
        """Forget the device's seqs received before ``at`` in ``max_seqs``."""

    @abstractmethod
    def count_readings(self, device: str | None = None) -> int: ...

    @abstractmethod
    def devices(self) -> list[DeviceStatus]: ...

    @abstractmethod
    def close(self) -> None: ...

    def stats(self) -> dict[str, float]:
        """Counters the store keeps itself (e.g. write retries), for ``/metrics``."""
        return {}


class StoreURLError(ValueError):
    pass


def open_store(url: str, settings: StoreSettings | None = None) -> Store:
    """Open the store named by a URL (``sqlite:///path.db``, ``influxdb://…``);
    ``settings`` carries credentials that are better kept out of the URL."""
    if url.startswith("sqlite://"):
        from hub.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if url.startswith(("influxdb://", "influxdbs://")):
        from hub.store.influx import InfluxStore

        return InfluxStore.from_url(url, settings)
    raise StoreURLError(
        f"unsupported store URL {url!r}; use sqlite:///path/to/ruuhka.db or influxdb://…"
    )
