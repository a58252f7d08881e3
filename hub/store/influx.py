"""The production store: InfluxDB 1.x, 2.x or 3.x.

Writes go through ``influxdb-client``'s batching write API — to ``/api/v2/write``
for 2.x and 3.x, to the v1 ``/write`` endpoint for 1.x — and reads use InfluxQL
over the v1-compatible ``/query`` endpoint, the one dialect all three serve.

InfluxDB has no transactions, so "atomic" is built from two properties:

- every point is idempotent: a reading is the point (``readings``, its device,
  stream, facility and source tags, a time computed from the device's own
  timestamp and seq), so writing a commit again overwrites it with itself;
- ``commit`` returns only after InfluxDB has answered 2xx for the request that
  carried all of the commit's points (flush-before-ack): the ingest worker acks
  the broker after that, and a failed or unanswered commit raises, is retried
  by the worker, and is redelivered by the broker after a crash.

A commit whose points InfluxDB refuses outright (HTTP 400/422: e.g. older than
the retention policy, or a field type conflict) cannot succeed by retrying; it
is logged with the server's message, counted in ``/metrics`` and acknowledged.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import urllib3
from influxdb_client import InfluxDBClient, Point, WriteOptions
from influxdb_client.client.write_api import WriteApi, WritePrecision
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService
from reactivex.scheduler import ThreadPoolScheduler

from hub.config import StoreSettings
from hub.state import Tracker
from hub.store import (
    Checkpoint,
    Derived,
    DeviceStatus,
    HistoryBucket,
    Quarantined,
    Record,
    SavedState,
    Store,
    StoreURLError,
)
from ruuhka.contract import FacilityState, seq_key

log = logging.getLogger("ruuhka.store.influx")

READINGS = "readings"
SERIES = "facility_series"
STATE = "facility_state"
CHECKPOINTS = "facility_checkpoint"
QUARANTINE = "quarantine"
SEQ_RESETS = "seq_reset"
DEVICES = "device_status"

# Reading points are placed at the device's timestamp, clamped to a range every
# InfluxDB generation accepts; the seq fills the nanoseconds so that two readings
# of one device within the same millisecond never overwrite each other.
_MIN_NS = 0
_MAX_NS = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * 10**9
_PERMANENT = {400, 422}
_RECENT_KEYS = 200_000

_OPTIONS = {
    "org": str,
    "bucket": str,
    "rp": str,
    "flush_interval_ms": int,
    "timeout_s": float,
    "max_retries": int,
    "retry_interval_ms": int,
    "max_retry_time_s": float,
    "verify_ssl": str,
}


class StoreWriteError(RuntimeError):
    """InfluxDB did not take a commit; nothing of it may be acknowledged."""


class StoreQueryError(RuntimeError):
    pass


@dataclass(frozen=True)
class InfluxTarget:
    """Where and how to reach InfluxDB, parsed from the store URL and settings."""

    base_url: str
    database: str | None = None
    retention_policy: str | None = None
    org: str | None = None
    bucket: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None
    flush_interval_ms: int = 50
    timeout_s: float = 10.0
    max_retries: int = 5
    retry_interval_ms: int = 1000
    max_retry_time_s: float = 30.0
    verify_ssl: bool = True

    @property
    def v2_write(self) -> bool:
        """2.x and 3.x are written through /api/v2/write, 1.x through /write."""
        return self.bucket is not None

    @property
    def query_db(self) -> str:
        """The ``db`` of /query: 1.x's database, 2.x's DBRP-mapped bucket, 3.x's database."""
        return self.bucket or self.database or ""

    def auth_header(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Token {self.token}"}
        if self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}


def parse_influx_url(url: str, settings: StoreSettings | None = None) -> InfluxTarget:
    """``influxdb[s]://[user:password@]host[:port]/database[?rp=…]`` (1.x) or
    ``influxdb[s]://host[:port]?org=…&bucket=…`` (2.x, 3.x); secrets preferably
    from ``token`` / ``username`` / ``password`` in the settings."""
    parts = urlsplit(url)
    if parts.scheme not in ("influxdb", "influxdbs") or not parts.hostname:
        raise StoreURLError(
            f"bad InfluxDB URL {url!r}; use influxdb://host:8086/database (1.x) "
            "or influxdb://host:8086?org=ORG&bucket=BUCKET (2.x, 3.x)"
        )
    try:
        port = parts.port or 8086
    except ValueError:
        raise StoreURLError(f"bad port in store URL {url!r}") from None
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        kind = _OPTIONS.get(key)
        if kind is None:
            raise StoreURLError(f"unknown store URL option {key!r}; known: {', '.join(_OPTIONS)}")
        try:
            options[key] = kind(value)
        except ValueError:
            raise StoreURLError(f"store URL option {key}={value!r} is not a number") from None
    database = unquote(parts.path.strip("/")) or None
    if database and "/" in database:
        database, rp = database.split("/", 1)
        options.setdefault("rp", rp)
    bucket = options.pop("bucket", None)
    if (database is None) == (bucket is None):
        raise StoreURLError(
            f"store URL {url!r}: give either a database in the path (InfluxDB 1.x) "
            "or ?bucket= (2.x, 3.x), not both"
        )
    scheme = "https" if parts.scheme == "influxdbs" else "http"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    token = settings.token.get_secret_value() if settings and settings.token else None
    username = (settings.username if settings else None) or (
        unquote(parts.username) if parts.username else None
    )
    password = (
        settings.password.get_secret_value() if settings and settings.password else None
    ) or (unquote(parts.password) if parts.password else None)
    for key in ("flush_interval_ms", "max_retries", "retry_interval_ms"):
        if key in options and options[key] < 0:
            raise StoreURLError(f"store URL option {key} must not be negative")
    verify = options.pop("verify_ssl", "true").lower() not in ("0", "false", "no")
    return InfluxTarget(
        base_url=f"{scheme}://{host}:{port}",
        database=database,
        retention_policy=options.pop("rp", None),
        org=options.pop("org", None),
        bucket=bucket,
        token=token,
        username=username,
        password=password,
        verify_ssl=verify,
        **options,
    )


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def reading_time_ns(device_ts: datetime, seq: int) -> int:
    """Where a reading's point lies: the same for every redelivery of it."""
    ms = min(max(_ns(device_ts) // 10**6 * 10**6, _MIN_NS), _MAX_NS)
    return ms + seq % 10**6


def _quote(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rfc3339(when: datetime) -> str:
    return "'" + when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


class _V1WriteService(WriteService):
    """The client's write service pointed at InfluxDB 1.x's ``/write``."""

    def __init__(self, api_client: Any, target: InfluxTarget) -> None:
        super().__init__(api_client)
        self._params = [("db", target.database or "")]
        if target.retention_policy:
            self._params.append(("rp", target.retention_policy))

    def post_write(self, org: str, bucket: str, body: Any, **kwargs: Any) -> Any:
        precision = kwargs.get("precision", WritePrecision.NS)
        return self.api_client.call_api(
            "/write",
            "POST",
            {},
            [*self._params, ("precision", str(precision))],
            {"Content-Type": "text/plain; charset=utf-8"},
            body=body,
            post_params=[],
            files={},
            response_type=None,
            auth_settings=[],
            async_req=False,
            _return_http_data_only=True,
            _preload_content=True,
            _request_timeout=None,
            collection_formats={},
            urlopen_kw=kwargs.get("urlopen_kw"),
        )


class _Pending:
    """One commit's request, waiting for the batching writer's verdict."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.done = threading.Event()
        self.error: BaseException | None = None

    def matches(self, data: Any) -> bool:
        sent = data.encode() if isinstance(data, str) else bytes(data)
        return sent == self.body or self.body in sent


class BatchWriter:
    """influxdb-client's batching write API, with a wait for each commit's batch.

    The client flushes a batch every ``flush_interval_ms`` (its ``flush()`` is a
    no-op), retries with exponential back-off and reports each batch to a
    callback; ``write`` hands over a commit as one item and blocks until the
    callback for the batch that carried it."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self.stats = {
            "write_batches": 0,
            "write_retries": 0,
            "write_errors": 0,
            "points_rejected": 0,
            "points_written": 0,
        }
        token = target.token
        basic = False
        if not token and target.username is not None:
            token, basic = f"{target.username}:{target.password or ''}", True
        self.client = InfluxDBClient(
            url=target.base_url,
            token=token,
            org=target.org or "-",
            timeout=int(target.timeout_s * 1000),
            verify_ssl=target.verify_ssl,
            auth_basic=basic,
        )
        self._scheduler = ThreadPoolScheduler(1)
        options = WriteOptions(
            batch_size=1000,
            flush_interval=max(target.flush_interval_ms, 1),
            retry_interval=target.retry_interval_ms,
            max_retries=target.max_retries,
            max_retry_delay=int(target.max_retry_time_s * 1000),
            max_retry_time=int(target.max_retry_time_s * 1000),
            exponential_base=2,
            max_close_wait=int((target.max_retry_time_s + target.timeout_s) * 1000),
            write_scheduler=self._scheduler,
        )
        self.api: WriteApi = self.client.write_api(
            write_options=options,
            success_callback=self._succeeded,
            error_callback=self._failed,
            retry_callback=self._retrying,
        )
        if not target.v2_write:
            # The client speaks only /api/v2/write; 1.x before 1.8 has just /write.
            self.api._write_service = _V1WriteService(self.client.api_client, target)
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._pending: _Pending | None = None
        self._closed = False

    def _count(self, name: str, n: int) -> None:
        with self._stats_lock:
            self.stats[name] += n

    @property
    def _wait_s(self) -> float:
        tries = self.target.max_retries + 1
        return self.target.max_retry_time_s + tries * self.target.timeout_s + 5

    def write(self, lines: list[str]) -> None:
        """Write the lines as one request; return when InfluxDB has them."""
        if not lines:
            return
        body = "\n".join(lines).encode()
        with self._lock:
            if self._closed:
                raise StoreWriteError("the InfluxDB store is closed")
            pending = self._pending = _Pending(body)
            self.api.write(
                bucket=self.target.bucket or self.target.database,
                org=self.target.org or "-",
                record=body,
                write_precision=WritePrecision.NS,
            )
            answered = pending.done.wait(self._wait_s)
            self._pending = None
        if not answered:
            self._count("write_errors", 1)
            raise StoreWriteError(f"InfluxDB did not answer within {self._wait_s:.0f} s")
        error = pending.error
        if error is None:
            self._count("points_written", len(lines))
            return
        status = getattr(error, "status", None)
        if status in _PERMANENT:
            self._count("points_rejected", len(lines))
            log.error(
                "InfluxDB refused a commit of %d points (HTTP %s), not retried: %s",
                len(lines),
                status,
                _describe(error),
            )
            return
        raise StoreWriteError(f"InfluxDB write failed: {_describe(error)}") from error

    def _succeeded(self, conf: tuple[str, str, str], data: Any) -> None:
        self._count("write_batches", 1)
        pending = self._pending
        if pending is not None and pending.matches(data):
            pending.done.set()

    def _failed(self, conf: tuple[str, str, str], data: Any, error: Exception) -> None:
        self._count("write_errors", 1)
        log.error("InfluxDB write failed: %s", _describe(error))
        pending = self._pending
        if pending is not None and pending.matches(data):
            pending.error = error
            pending.done.set()

    def _retrying(self, conf: tuple[str, str, str], data: Any, error: Exception) -> None:
        self._count("write_retries", 1)
        log.warning("InfluxDB write failed, retrying: %s", _describe(error))

    def close(self) -> None:
        """Flush what is buffered (the client's close waits for it), then disconnect.

        Does not take the commit lock: a commit stuck on an unreachable server
        must not hold up shutdown; it gets its answer or times out."""
        if self._closed:
            return
        self._closed = True
        self.api.close()
        self.client.close()
        self._scheduler.executor.shutdown(wait=True)


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
        return f"HTTP {error.status} {error.reason}: {str(body)[:500]}"
    return f"{type(error).__name__}: {str(error)[:500]}"


class InfluxQL:
    """Read with InfluxQL over ``/query`` (1.x natively, 2.x via DBRP, 3.x natively)."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self.errors = 0
        self._http = urllib3.PoolManager(
            maxsize=4,
            cert_reqs="CERT_REQUIRED" if target.verify_ssl else "CERT_NONE",
            timeout=urllib3.Timeout(total=target.timeout_s),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, allowed_methods=None),
        )

    def query(self, statement: str, method: str = "GET") -> list[dict[str, Any]]:
        """The series of one statement's result; times in epoch milliseconds."""
        fields = {"db": self.target.query_db, "q": statement, "epoch": "ms"}
        if self.target.retention_policy:
            fields["rp"] = self.target.retention_policy
        extra: dict[str, Any] = {"encode_multipart": False} if method == "POST" else {}
        try:
            response = self._http.request(
                method,
                self.target.base_url + "/query",
                fields=fields,
                headers=self.target.auth_header(),
                **extra,
            )
        except urllib3.exceptions.HTTPError as exc:
            self.errors += 1
            raise StoreQueryError(f"InfluxDB query failed: {exc}") from exc
        try:
            payload = json.loads(response.data or b"{}")
        except ValueError:
            payload = {}
        if response.status != 200:
            self.errors += 1
            detail = payload.get("error") if isinstance(payload, dict) else None
            raise StoreQueryError(
                f"InfluxDB query failed: HTTP {response.status}: "
                f"{detail or response.data[:300].decode(errors='replace')}"
            )
        results = payload.get("results") or [{}]
        if "error" in results[0]:
            self.errors += 1
            raise StoreQueryError(f"InfluxDB query failed: {results[0]['error']}")
        return list(results[0].get("series") or [])

    def close(self) -> None:
        self._http.clear()


def _rows(series: dict[str, Any]) -> list[dict[str, Any]]:
    columns = series["columns"]
    return [dict(zip(columns, values, strict=False)) for values in series.get("values") or []]


class InfluxStore(Store):
    """Readings, derived state, the derived series and device status in InfluxDB."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self.reader = InfluxQL(target)
        self.writer = BatchWriter(target)
        self._lock = threading.Lock()
        self._last_ns = 0
        self._max_seq: dict[str, int] = {}
        self._max_seq_loaded = False
        self._recent: OrderedDict[tuple[str, int], None] = OrderedDict()
        if not target.v2_write and target.database:
            self._create_database(target.database)

    @classmethod
    def from_url(cls, url: str, settings: StoreSettings | None = None) -> InfluxStore:
        return cls(parse_influx_url(url, settings))

    def _create_database(self, name: str) -> None:
        """1.x only; needs admin rights when auth is on, so a refusal is just logged."""
        try:
            self.reader.query(f'CREATE DATABASE "{name}"', method="POST")
        except StoreQueryError as exc:
            log.warning("could not create InfluxDB database %r (create it by hand): %s", name, exc)

    # writing ------------------------------------------------------------------

    def _next_ns(self) -> int:
        """Commit times for state and status points: strictly increasing, so the last wins."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def _lines(
        self,
        records: list[Record],
        states: list[SavedState],
        statuses: list[DeviceStatus],
        derived: Derived,
    ) -> list[str]:
        lines: list[str] = []
        for r in records:
            point = Point(READINGS).tag("device", r.device).tag("stream", r.stream)
            if r.epoch:
                point.tag("epoch", r.epoch)
            if r.facility is not None:
                point.tag("facility", r.facility)
            if r.source is not None:
                point.tag("source", r.source)
            point.field("seq", r.seq).field("ts_ms", _ms(r.ts))
            point.field("device_ts", r.device_ts.isoformat())
            point.field("received_ms", _ms(r.received_at))
            point.field("data", json.dumps(r.data, separators=(",", ":")))
            lines.append(
                point.time(
                    reading_time_ns(r.device_ts, r.seq), WritePrecision.NS
                ).to_line_protocol()
            )
        for p in derived.series.values():
            series = Point(SERIES).tag("facility", p.facility).field("revision", p.revision)
            if p.occupancy is not None:
                series.field("occupancy", int(p.occupancy))
            for name in ("ice_temp_c", "air_temp_c"):
                value = getattr(p, name)
                if value is not None:
                    series.field(name, float(value))
            for name in ("people", "spots_in_use"):
                value = getattr(p, name)
                if value is not None:
                    series.field(name, int(value))
            lines.append(series.time(_ns(p.at), WritePrecision.NS).to_line_protocol())
        for c in derived.checkpoints:
            point = Point(CHECKPOINTS).tag("facility", c.facility)
            point.field("state", c.state.model_dump_json())
            point.field("tracker", json.dumps(c.tracker.to_json(), separators=(",", ":")))
            lines.append(point.time(_ns(c.day_start), WritePrecision.NS).to_line_protocol())
        for saved in states:
            state = saved.state
            point = Point(STATE).tag("facility", state.facility)
            point.field("state", state.model_dump_json())
            point.field("tracker", json.dumps(saved.tracker.to_json(), separators=(",", ":")))
            point.field("revision", state.revision)
            lines.append(point.time(self._next_ns(), WritePrecision.NS).to_line_protocol())
        for status in statuses:
            point = Point(DEVICES).tag("device", status.device).field("at_ms", _ms(status.at))
            if status.online is not None:
                point.field("online", status.online)
            if status.heartbeat is not None:
                point.field("heartbeat", json.dumps(status.heartbeat, separators=(",", ":")))
            lines.append(point.time(self._next_ns(), WritePrecision.NS).to_line_protocol())
        return lines

    def commit(
        self,
        records: list[Record],
        states: list[SavedState],
        statuses: list[DeviceStatus],
        derived: Derived | None = None,
    ) -> None:
        if derived is None:
            derived = Derived.of_states(states)
        with self._lock:
            lines = self._lines(records, states, statuses, derived)
        self.writer.write(lines)
        with self._lock:
            for r in records:
                key = (r.key, r.seq)
                self._recent[key] = None
                self._recent.move_to_end(key)
                if r.seq > self._max_seq.get(r.key, -1):
                    self._max_seq[r.key] = r.seq
            while len(self._recent) > _RECENT_KEYS:
                self._recent.popitem(last=False)

    # reading ------------------------------------------------------------------

    def _load_max_seqs(self) -> None:
        if self._max_seq_loaded:
            return
        found: dict[str, int] = {}
        statement = f"SELECT max(seq) AS seq FROM {READINGS} GROUP BY device, epoch"
        for series in self.reader.query(statement):
            tags = series.get("tags", {})
            device = tags.get("device")
            for row in _rows(series):
                if device is not None and row.get("seq") is not None:
                    found[seq_key(device, tags.get("epoch"))] = int(row["seq"])
        with self._lock:
            for device, seq in found.items():
                if seq > self._max_seq.get(device, -1):
                    self._max_seq[device] = seq
            self._max_seq_loaded = True

    def known(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """From memory when it can tell (recent keys; seqs above the device's
        newest), else one query per device for the seqs in question."""
        self._load_max_seqs()
        found: set[tuple[str, int]] = set()
        ask: dict[str, set[int]] = {}
        with self._lock:
            for device, seq in keys:
                if (device, seq) in self._recent:
                    found.add((device, seq))
                elif seq <= self._max_seq.get(device, -1):
                    ask.setdefault(device, set()).add(seq)
        for key, seqs in ask.items():
            device, _, epoch = key.partition("#")
            statement = (
                f"SELECT seq FROM {READINGS} WHERE device = {_quote(device)} "
                f"AND epoch = {_quote(epoch)} AND seq >= {min(seqs)} AND seq <= {max(seqs)}"
            )
            for series in self.reader.query(statement):
                for row in _rows(series):
                    if row.get("seq") in seqs:
                        found.add((key, int(row["seq"])))
        return found

    def quarantine(self, entries: list[Quarantined], keep: int) -> None:
        """InfluxDB cannot delete through its query API: the quarantine is bounded
        by the bucket's retention, and by ingest keeping only a few a minute."""
        lines = []
        with self._lock:
            for q in entries:
                point = Point(QUARANTINE).tag("device", q.device).tag("reason", q.reason)
                point.field("topic", q.topic).field("detail", q.detail).field("size", q.size)
                point.field("payload", base64.b64encode(q.payload).decode())
                lines.append(point.time(self._next_ns(), WritePrecision.NS).to_line_protocol())
        self.writer.write(lines)

    def quarantined(
        self, device: str | None = None, reason: str | None = None, limit: int = 100
    ) -> list[Quarantined]:
        where = [
            f"{tag} = {_quote(value)}"
            for tag, value in (("device", device), ("reason", reason))
            if value is not None
        ]
        statement = f"SELECT topic, detail, size, payload, device, reason FROM {QUARANTINE}"
        if where:
            statement += " WHERE " + " AND ".join(where)
        statement += f" ORDER BY time DESC LIMIT {int(limit)}"
        return [
            Quarantined(
                _from_ms(row["time"]),
                row["topic"],
                row["device"],
                row["reason"],
                row["detail"],
                int(row["size"]),
                base64.b64decode(row["payload"]),
            )
            for series in self.reader.query(statement)
            for row in _rows(series)
        ]

    def load_states(self) -> dict[str, SavedState]:
        out: dict[str, SavedState] = {}
        statement = (
            f"SELECT last(state) AS state, last(tracker) AS tracker FROM {STATE} GROUP BY facility"
        )
        for series in self.reader.query(statement):
            facility = series.get("tags", {}).get("facility")
            for row in _rows(series):
                if facility and row.get("state") and row.get("tracker"):
                    out[facility] = SavedState(
                        FacilityState.model_validate_json(row["state"]),
                        Tracker.from_json(json.loads(row["tracker"])),
                    )
        return out

    def readings_between(
        self, facility: str, start: datetime, end: datetime | None = None
    ) -> list[Record]:
        # Points lie at the device's time, which is the effective time unless the
        # device's clock was ahead (then later) or not set at all (then anywhere;
        # such readings are not found here).
        where = f"facility = {_quote(facility)} AND time >= {_rfc3339(start)}"
        where += f" AND ts_ms >= {_ms(start)}"
        if end is not None:
            where += f" AND ts_ms < {_ms(end)}"
        statement = (
            "SELECT seq, ts_ms, device_ts, received_ms, data, device, epoch, stream, source "
            f"FROM {READINGS} WHERE {where}"
        )
        out = [
            Record(
                device=row["device"],
                seq=int(row["seq"]),
                stream=row["stream"],
                facility=facility,
                source=row.get("source"),
                ts=_from_ms(row["ts_ms"]),
                device_ts=datetime.fromisoformat(row["device_ts"]),
                received_at=_from_ms(row["received_ms"]),
                data=json.loads(row["data"]),
                epoch=row.get("epoch") or "",
            )
            for series in self.reader.query(statement)
            for row in _rows(series)
        ]
        out.sort(key=lambda r: (r.ts, r.device, r.epoch, r.seq))
        return out

    def checkpoint_before(self, facility: str, when: datetime) -> Checkpoint | None:
        statement = (
            f"SELECT state, tracker FROM {CHECKPOINTS} WHERE facility = {_quote(facility)} "
            f"AND time <= {_rfc3339(when)} ORDER BY time DESC LIMIT 1"
        )
        for series in self.reader.query(statement):
            for row in _rows(series):
                return Checkpoint(
                    facility,
                    _from_ms(row["time"]),
                    FacilityState.model_validate_json(row["state"]),
                    Tracker.from_json(json.loads(row["tracker"])),
                )
        return None

    def history(
        self, facility: str, start: datetime, end: datetime, every_s: int
    ) -> list[HistoryBucket]:
        statement = (
            "SELECT count(revision) AS samples, mean(occupancy) AS occupancy_avg, "
            "max(occupancy) AS occupancy_max, mean(ice_temp_c) AS ice_temp_c, "
            "mean(air_temp_c) AS air_temp_c, mean(people) AS people_avg, "
            "mean(spots_in_use) AS spots_in_use_avg "
            f"FROM {SERIES} WHERE facility = {_quote(facility)} "
            f"AND time >= {_rfc3339(start)} AND time < {_rfc3339(end)} "
            f"GROUP BY time({int(every_s)}s) fill(none)"
        )
        buckets: list[HistoryBucket] = []
        for series in self.reader.query(statement):
            for row in _rows(series):
                if not row.get("samples"):
                    continue
                occupancy_max = row.get("occupancy_max")
                buckets.append(
                    HistoryBucket(
                        start=_from_ms(row["time"]),
                        samples=int(row["samples"]),
                        occupancy_avg=row.get("occupancy_avg"),
                        occupancy_max=int(occupancy_max) if occupancy_max is not None else None,
                        ice_temp_c=row.get("ice_temp_c"),
                        air_temp_c=row.get("air_temp_c"),
                        people_avg=row.get("people_avg"),
                        spots_in_use_avg=row.get("spots_in_use_avg"),
                    )
                )
        buckets.sort(key=lambda b: b.start)
        return buckets

    def max_seqs(self) -> dict[str, int]:
        self._load_max_seqs()
        with self._lock:
            found = dict(self._max_seq)  # the true newest stays in _max_seq, for known()
        statement = f"SELECT last(at_ms) AS at_ms FROM {SEQ_RESETS} GROUP BY device"
        for series in self.reader.query(statement):
            device = series.get("tags", {}).get("device")
            for row in _rows(series):
                if device is None or row.get("at_ms") is None:
                    continue
                for key in [k for k in found if k.partition("#")[0] == device]:
                    del found[key]
                since = (
                    f"SELECT max(seq) AS seq FROM {READINGS} WHERE device = {_quote(device)} "
                    f"AND received_ms > {int(row['at_ms'])} GROUP BY epoch"
                )
                for result in self.reader.query(since):
                    epoch = result.get("tags", {}).get("epoch")
                    for r in _rows(result):
                        if r.get("seq") is not None:
                            found[seq_key(device, epoch)] = int(r["seq"])
        return found

    def reset_seq(self, device: str, at: datetime) -> None:
        point = Point(SEQ_RESETS).tag("device", device).field("at_ms", _ms(at))
        with self._lock:
            line = point.time(self._next_ns(), WritePrecision.NS).to_line_protocol()
        self.writer.write([line])

    def count_readings(self, device: str | None = None) -> int:
        where = f" WHERE device = {_quote(device)}" if device is not None else ""
        total = 0
        for series in self.reader.query(f"SELECT count(seq) AS n FROM {READINGS}{where}"):
            total += sum(int(row.get("n") or 0) for row in _rows(series))
        return total

    def devices(self) -> list[DeviceStatus]:
        statement = (
            "SELECT last(online) AS online, last(at_ms) AS at_ms, last(heartbeat) AS heartbeat "
            f"FROM {DEVICES} GROUP BY device"
        )
        out: list[DeviceStatus] = []
        for series in self.reader.query(statement):
            device = series.get("tags", {}).get("device")
            for row in _rows(series):
                if device is None or row.get("at_ms") is None:
                    continue
                heartbeat = row.get("heartbeat")
                out.append(
                    DeviceStatus(
                        device=device,
                        online=row.get("online"),
                        at=_from_ms(row["at_ms"]),
                        heartbeat=json.loads(heartbeat) if heartbeat else None,
                    )
                )
        return out

    def stats(self) -> dict[str, float]:
        return {**self.writer.stats, "query_errors": self.reader.errors}

    def close(self) -> None:
        self.writer.close()
        self.reader.close()
