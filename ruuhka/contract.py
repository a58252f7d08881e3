"""The wire contract, v1: the one place that says what crosses MQTT.

Any device that follows it works, so it is public: the hub serves the JSON
Schema generated from these models at ``/api/v1/contract``. The edge agent and
the hub both import this module, so the two sides cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

VERSION = "v1"
TOPIC_ROOT = f"ruuhka/{VERSION}"
DEVICE_TOPIC = TOPIC_ROOT + "/devices/{device_id}/{stream}"
FACILITY_STATE_TOPIC = TOPIC_ROOT + "/facilities/{facility_id}/state"
# Operators' commands to every hub; only the broker's admin account may publish here.
RESET_SEQ_TOPIC = TOPIC_ROOT + "/control/reset-seq"
DEVICE_ID_PATTERN = r"^[a-z0-9-]{1,64}$"
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
SourceName = Annotated[str, Field(pattern=NAME_PATTERN)]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]
EPOCH_PATTERN = r"^[A-Za-z0-9_.-]{1,40}$"
Epoch = Annotated[str, Field(pattern=EPOCH_PATTERN)]


def seq_key(device: str, epoch: str | None) -> str:
    """Whose seq a reading counts in: the device's, or its epoch's ("#" is in neither)."""
    return f"{device}#{epoch}" if epoch else device


# Counts fit in a float without loss (JavaScript's safe integers), and sums of
# them fit in a 64-bit column: 2**70 entries is not a reading but an attack.
MAX_COUNT = 2**53 - 1
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
# A device clock outside these years is broken, not a backlog. 1970 stays inside:
# a device without a real-time clock reports it (with clock_synced false) until NTP.
# Bounding it here means no later step (UTC conversion, InfluxDB's nanosecond
# times, which end in 2262) ever meets a time it cannot represent.
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(2200, 1, 1, tzinfo=UTC)
# Checked by pydantic's own validator, which is several times faster than a Python one.
DeviceTime = Annotated[AwareDatetime, Field(ge=EARLIEST_TS, lt=LATEST_TS)]


class Stream(StrEnum):
    COUNT = "count"
    RINK = "rink"
    SNAPSHOT = "snapshot"
    STATUS = "status"
    HEARTBEAT = "heartbeat"


class _Payload(BaseModel):
    """Common to every stream: the device's sequence number and clock."""

    # Strict: "5" or true is not a count, whatever lax parsing would make of it.
    # NaN, Infinity and 1e400 are not numbers JSON allows, nor readings.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    seq: Seq = Field(
        description="Strictly increasing per device (per epoch, when it sends one), kept "
        "across restarts."
    )
    epoch: Epoch | None = Field(
        default=None,
        description="Optional: an id of this installation of the device, made when its seq "
        "starts from 0 (a new or re-imaged device). Part of the key the hub deduplicates "
        "by, with the device id and seq: a device that starts again from seq 0 with a new "
        "epoch loses nothing.",
    )
    ts: DeviceTime = Field(
        description="Device clock, RFC 3339 UTC, from 1970 to 2199; other times are refused."
    )
    clock_synced: bool = Field(
        default=True,
        description="False when the device knows its clock is not set (no RTC, no NTP yet); "
        "the hub then uses its own receive time.",
    )
    device: DeviceId | None = Field(
        default=None,
        description="Optional: the device id the sender claims. If given it must be the "
        "topic's, or the hub drops the payload (device_mismatch).",
    )


class CountPayload(_Payload):
    """A gate counter, turnstile or light barrier, or a headcount from ticketing."""

    counter: SourceName
    entries: Count | None = Field(
        default=None, description="Cumulative since the counter's last reset."
    )
    exits: Count | None = Field(
        default=None, description="Cumulative since the counter's last reset."
    )
    occupancy: Count | None = Field(
        default=None, description="A headcount, e.g. from ticket sales and access control."
    )

    @model_validator(mode="after")
    def _one_kind_of_count(self) -> CountPayload:
        cumulative = self.entries is not None or self.exits is not None
        if cumulative and self.occupancy is not None:
            raise ValueError("give either entries+exits or occupancy, not both")
        if cumulative and (self.entries is None or self.exits is None):
            raise ValueError("entries and exits come together")
        if not cumulative and self.occupancy is None:
            raise ValueError("give entries+exits or occupancy")
        return self


class RinkPayload(_Payload):
    sensor: SourceName
    ice_temp_c: float = Field(ge=-60, le=40)
    air_temp_c: float | None = Field(default=None, ge=-60, le=60)


class CameraStatus(StrEnum):
    """Why a camera published a picture, or why it failed closed and did not."""

    OK = "ok"
    DARK = "dark"
    LIGHT_CHANGE = "light_change"
    CALIBRATING = "calibrating"
    IMPLAUSIBLE_MASK = "implausible_mask"
    ERROR = "error"
    TIMEOUT = "timeout"
    NO_FRAME = "no_frame"


class SnapshotPayload(_Payload):
    """An anonymised camera picture: never a raw frame (see the privacy rule).

    A camera that failed closed sends its ``status`` without a picture or count."""

    camera: SourceName
    people: Count | None = Field(default=None, description="People counted in the frame.")
    width: int | None = Field(default=None, ge=1, le=960)
    height: int | None = Field(default=None, ge=1, le=4096)
    jpeg_b64: str | None = Field(default=None, description="The anonymised JPEG, base64.")
    anonymiser: str | None = Field(default=None, description="How it was anonymised.")
    status: CameraStatus = Field(default=CameraStatus.OK, description="ok, or why no picture.")
    spots_in_use: Count | None = Field(default=None, description="Washing spots in use.")
    spots: Count | None = Field(default=None, description="Washing spots watched.")
    count_simulated: bool = Field(
        default=False,
        description="True when people and spots_in_use come from a simulation's own ground "
        "truth rather than from the person detector (the demo camera).",
    )

    @model_validator(mode="after")
    def _picture_only_when_ok(self) -> SnapshotPayload:
        if self.status is not CameraStatus.OK and (
            self.jpeg_b64 is not None or self.people is not None
        ):
            raise ValueError(f"status {self.status.value}: no picture and no count")
        if self.status is CameraStatus.OK and self.people is None:
            raise ValueError("status ok needs people")
        if self.jpeg_b64 is not None:
            if self.width is None or self.height is None:
                raise ValueError("a picture needs width and height")
            try:
                head = base64.b64decode(self.jpeg_b64[:8], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("jpeg_b64 is not base64") from None
            if not head.startswith(b"\xff\xd8\xff"):
                raise ValueError("jpeg_b64 is not a JPEG")
        return self


class StatusPayload(_Payload):
    """Retained; the device's last will sets ``offline``."""

    state: Literal["online", "offline"]


class HeartbeatPayload(_Payload):
    agent_version: str | None = Field(default=None, max_length=64)
    uptime_s: float | None = Field(default=None, ge=0)
    outbox_depth: Count | None = None
    dropped: Count | None = None
    disk_free_mb: float | None = Field(default=None, ge=0)
    cpu_temp_c: float | None = None


PAYLOAD_MODELS: dict[Stream, type[_Payload]] = {
    Stream.COUNT: CountPayload,
    Stream.RINK: RinkPayload,
    Stream.SNAPSHOT: SnapshotPayload,
    Stream.STATUS: StatusPayload,
    Stream.HEARTBEAT: HeartbeatPayload,
}
_ADAPTERS = {stream: TypeAdapter(model) for stream, model in PAYLOAD_MODELS.items()}

Reading = CountPayload | RinkPayload | SnapshotPayload | StatusPayload | HeartbeatPayload


class Quality(StrEnum):
    """Why a derived figure is not simply the sum of what devices said."""

    COUNTER_RESET = "counter_reset"
    CLAMPED = "clamped"
    CLOCK_SKEW = "clock_skew"
    CLOCK_UNSYNCED = "clock_unsynced"


class FacilityState(BaseModel):
    """Derived state the hub publishes retained on the facility's state topic."""

    model_config = ConfigDict(extra="ignore")

    facility: str
    revision: int = Field(default=0, description="Grows with every change; newest wins.")
    occupancy: int | None = None
    updated_at: AwareDatetime | None = None
    quality: list[Quality] = Field(default_factory=list)
    ice_temp_c: float | None = None
    air_temp_c: float | None = None
    people: int | None = None
    snapshot_at: AwareDatetime | None = Field(
        default=None, description="When the latest anonymised picture was taken."
    )
    camera_status: CameraStatus | None = None
    spots: int | None = Field(default=None, description="Washing spots the camera watches.")
    spots_in_use: int | None = Field(default=None, description="Spots in use; null when unknown.")
    count_simulated: bool = Field(
        default=False, description="The camera's figures come from a simulation (demo)."
    )


class ResetSeq(BaseModel):
    """Forget what the hubs believe about a device's seq (``ruuhka device reset-seq``):
    its next reading sets the start again."""

    model_config = ConfigDict(extra="forbid")

    device: DeviceId
    at: AwareDatetime


class TopicError(ValueError):
    pass


@lru_cache(maxsize=4096)
def parse_topic(topic: str) -> tuple[str, Stream]:
    """Split a device topic, refusing anything outside the contract.

    Cached: a hub sees the same few topics all day, and only topics that pass are
    kept, each bounded by the device id's pattern."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "ruuhka" or parts[1] != VERSION or parts[2] != "devices":
        raise TopicError(f"topic outside the contract: {topic[:200]!r}")
    device_id, stream = parts[3], parts[4]
    if not _DEVICE_ID_RE.fullmatch(device_id):
        raise TopicError(f"bad device id in topic: {device_id[:80]!r}")
    try:
        return device_id, Stream(stream)
    except ValueError:
        raise TopicError(f"unknown stream: {stream[:80]!r}") from None


def parse_payload(stream: Stream, payload: bytes) -> Reading:
    """Validate one payload; raises pydantic.ValidationError or ValueError."""
    return _ADAPTERS[stream].validate_json(payload)


def device_topic(device_id: str, stream: Stream | str) -> str:
    return DEVICE_TOPIC.format(device_id=device_id, stream=Stream(stream).value)


def facility_state_topic(facility_id: str) -> str:
    return FACILITY_STATE_TOPIC.format(facility_id=facility_id)


def encode(payload: BaseModel) -> bytes:
    return payload.model_dump_json(exclude_none=True).encode()


def utcnow() -> datetime:
    return datetime.now(UTC)


def json_schema() -> dict[str, Any]:
    """The contract as one JSON Schema document, generated from the models."""
    streams = {}
    for stream, model in PAYLOAD_MODELS.items():
        schema = model.model_json_schema()
        schema["x-topic"] = DEVICE_TOPIC.format(device_id="{device_id}", stream=stream.value)
        streams[stream.value] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Ruuhka wire contract {VERSION}",
        "description": (
            "Devices publish JSON with QoS 1 to ruuhka/v1/devices/{device_id}/{stream}; "
            "device_id matches " + DEVICE_ID_PATTERN + ". Every payload carries seq "
            "(strictly increasing per device) and ts (RFC 3339 UTC). status is retained "
            "and set to offline by the device's last will. The hub publishes derived "
            "state retained on ruuhka/v1/facilities/{facility_id}/state."
        ),
        "streams": streams,
        "facility_state": FacilityState.model_json_schema(),
    }
