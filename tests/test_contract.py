"""The wire contract: topics and payloads outside it are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ruuhka.contract import (
    CountPayload,
    HeartbeatPayload,
    RinkPayload,
    SnapshotPayload,
    StatusPayload,
    Stream,
    TopicError,
    device_topic,
    encode,
    json_schema,
    parse_payload,
    parse_topic,
)

TS = "2024-01-15T10:30:00Z"


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def count(**fields: object) -> bytes:
    data: dict[str, object] = {"seq": 1, "ts": TS, "counter": "main", "entries": 5, "exits": 2}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


# --- topics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "device", "stream"),
    [
        ("ruuhka/v1/devices/uimahalli-gate/count", "uimahalli-gate", Stream.COUNT),
        ("ruuhka/v1/devices/rink1/rink", "rink1", Stream.RINK),
        ("ruuhka/v1/devices/cam/snapshot", "cam", Stream.SNAPSHOT),
        ("ruuhka/v1/devices/a/status", "a", Stream.STATUS),
        ("ruuhka/v1/devices/0-9/heartbeat", "0-9", Stream.HEARTBEAT),
        (f"ruuhka/v1/devices/{'a' * 64}/count", "a" * 64, Stream.COUNT),
    ],
)
def test_parse_topic_accepts_valid_topics(topic: str, device: str, stream: Stream) -> None:
    assert parse_topic(topic) == (device, stream)
    assert device_topic(device, stream) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/devices/gate/count",  # wrong root
        "ruuhka/v2/devices/gate/count",  # wrong version
        "ruuhka/v1/device/gate/count",  # wrong level name
        "ruuhka/v1/devices/gate/count/extra",  # extra level
        "ruuhka/v1/devices/gate/count/",  # trailing slash = extra empty level
        "ruuhka/v1/devices/gate",  # too few levels
        "/ruuhka/v1/devices/gate/count",  # leading slash
        "ruuhka/v1/devices/Gate/count",  # uppercase device id
        "ruuhka/v1/devices/gate_1/count",  # underscore is not allowed in device ids
        "ruuhka/v1/devices/gate.1/count",
        "ruuhka/v1/devices/gate 1/count",
        "ruuhka/v1/devices/ääni/count",
        "ruuhka/v1/devices//count",  # empty id
        "ruuhka/v1/devices/+/count",  # wildcards are not ids
        "ruuhka/v1/devices/#/count",
        f"ruuhka/v1/devices/{'a' * 65}/count",  # 65 characters
        "ruuhka/v1/devices/gate/counts",  # unknown stream
        "ruuhka/v1/devices/gate/COUNT",
        "ruuhka/v1/devices/gate/",
        "",
    ],
)
def test_parse_topic_rejects(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_topic_error_is_a_value_error() -> None:
    assert issubclass(TopicError, ValueError)


def test_parse_topic_rejects_device_id_with_trailing_newline() -> None:
    with pytest.raises(TopicError):
        parse_topic("ruuhka/v1/devices/gate\n/count")


# --- payloads ---------------------------------------------------------------------


def test_parse_payload_accepts_each_stream() -> None:
    reading = parse_payload(Stream.COUNT, count())
    assert isinstance(reading, CountPayload)
    assert (reading.seq, reading.entries, reading.exits) == (1, 5, 2)
    assert reading.ts == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert reading.clock_synced is True

    headcount = parse_payload(Stream.COUNT, count(entries=..., exits=..., occupancy=40))
    assert isinstance(headcount, CountPayload)
    assert headcount.occupancy == 40 and headcount.entries is None

    rink = parse_payload(Stream.RINK, body(seq=2, ts=TS, sensor="ice", ice_temp_c=-4.5))
    assert isinstance(rink, RinkPayload) and rink.ice_temp_c == -4.5
    snap = parse_payload(Stream.SNAPSHOT, body(seq=3, ts=TS, camera="yard", people=2))
    assert isinstance(snap, SnapshotPayload) and snap.people == 2
    status = parse_payload(Stream.STATUS, body(seq=4, ts=TS, state="offline"))
    assert isinstance(status, StatusPayload) and status.state == "offline"
    beat = parse_payload(Stream.HEARTBEAT, body(seq=5, ts="2024-01-15T12:30:00+02:00"))
    assert isinstance(beat, HeartbeatPayload)
    assert beat.ts == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_encode_round_trips() -> None:
    reading = parse_payload(Stream.COUNT, count())
    assert parse_payload(Stream.COUNT, encode(reading)) == reading


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"not json",
        b'{"seq": 1, "ts": "2024-01-15T10:30:00Z", "counter": "main", "entries": 5,}',
        b"[]",
        b"null",
        b"\xff\xfe",
    ],
)
def test_parse_payload_rejects_malformed_json(payload: bytes) -> None:
    with pytest.raises(ValueError):  # pydantic.ValidationError is a ValueError
        parse_payload(Stream.COUNT, payload)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("missing seq", count(seq=...)),
        ("missing ts", count(ts=...)),
        ("negative seq", count(seq=-1)),
        ("seq too large", count(seq=2**63)),
        ("negative entries", count(entries=-1)),
        ("negative exits", count(exits=-1)),
        ("negative occupancy", count(entries=..., exits=..., occupancy=-3)),
        ("entries without exits", count(exits=...)),
        ("exits without entries", count(entries=...)),
        ("nothing counted", count(entries=..., exits=...)),
        ("entries and occupancy", count(exits=..., occupancy=3)),
        ("entries, exits and occupancy", count(occupancy=3)),
        ("non-numeric string for int", count(entries="five")),
        ("string for seq", count(seq="one")),
        ("float with fraction for int", count(entries=5.5)),
        ("unknown field", count(colour="blue")),
        ("naive ts", count(ts="2024-01-15T10:30:00")),
        ("not a date", count(ts="yesterday")),
        ("missing counter", count(counter=...)),
        ("bad counter name", count(counter="main gate")),
    ],
)
def test_parse_payload_rejects_count(name: str, payload: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_payload(Stream.COUNT, payload)


@pytest.mark.parametrize(
    ("stream", "payload"),
    [
        (Stream.RINK, body(seq=1, ts=TS, sensor="ice", ice_temp_c="cold")),
        (Stream.RINK, body(seq=1, ts=TS, sensor="ice", ice_temp_c=-100)),
        (Stream.RINK, body(seq=1, ts=TS, sensor="ice", ice_temp_c=-4, humidity=50)),
        (Stream.SNAPSHOT, body(seq=1, ts=TS, camera="yard", people=-1)),
        (Stream.SNAPSHOT, body(seq=1, ts=TS, camera="yard", people=1, width=4000)),
        (Stream.STATUS, body(seq=1, ts=TS, state="sleeping")),
        (Stream.STATUS, body(seq=1, ts="2024-01-15 10:30", state="online")),
        (Stream.HEARTBEAT, body(ts=TS)),
        (Stream.HEARTBEAT, body(seq=1, ts=TS, extra=True)),
    ],
)
def test_parse_payload_rejects_other_streams(stream: Stream, payload: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_payload(stream, payload)


@pytest.mark.parametrize(
    "payload",
    [count(entries="5"), count(seq="1"), count(entries=True), count(exits=2.0)],
    ids=["digit-string entries", "digit-string seq", "bool entries", "float exits"],
)
def test_parse_payload_rejects_wrong_json_types_for_int(payload: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_payload(Stream.COUNT, payload)


# --- JSON Schema ------------------------------------------------------------------


def test_json_schema_has_every_stream_with_seq_and_ts_required() -> None:
    schema = json_schema()
    streams = schema["streams"]
    assert set(streams) == {"count", "rink", "snapshot", "status", "heartbeat"}
    assert set(streams) == {s.value for s in Stream}
    for name, stream_schema in streams.items():
        assert "seq" in stream_schema["required"], name
        assert "ts" in stream_schema["required"], name
        assert "seq" in stream_schema["properties"], name
        assert stream_schema["x-topic"] == f"ruuhka/v1/devices/{{device_id}}/{name}"
    assert "counter" in streams["count"]["required"]
    assert "facility_state" in schema
    json.dumps(schema)  # serialisable as it is served
