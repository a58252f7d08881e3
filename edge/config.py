"""The edge agent's configuration: one TOML file per device.

Sample files for each kind of site are in ``deploy/edge/``; each source module
in ``edge/sources/`` documents its own keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator
from pydantic_settings import SettingsConfigDict

from edge.camera_config import CameraConfig
from edge.clock import ClockCheckMode
from edge.sources.gpio import GpioGateConfig
from edge.sources.http_poll import HttpPollConfig
from edge.sources.modbus import ModbusConfig
from edge.sources.onewire import OneWireRinkConfig
from edge.sources.simulated import SimulatedCameraConfig, SimulatedGateConfig, SimulatedRinkConfig
from edge.sources.yard import YardCameraConfig
from ruuhka.contract import DeviceId
from ruuhka.settings import FileSettings, MqttSettings

SourceConfig = Annotated[
    SimulatedGateConfig
    | SimulatedRinkConfig
    | SimulatedCameraConfig
    | GpioGateConfig
    | HttpPollConfig
    | OneWireRinkConfig
    | ModbusConfig
    | CameraConfig
    | YardCameraConfig,
    Field(discriminator="type"),
]


class OutboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_rows: PositiveInt = Field(
        default=1_000_000,
        description="About 150 MB on disk; at 4 readings a minute, over five months offline. "
        "When full, every other reading of the oldest half is dropped (and counted).",
    )
    max_picture_bytes: PositiveInt = Field(
        default=64 * 1024 * 1024,
        description="Camera pictures waiting to be sent, in bytes (64 MiB: about 10 hours "
        "of one camera at one picture a minute). Beyond it the oldest are dropped (and counted).",
    )
    commit_interval_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Readings wait in memory at most this long, so that a busy source "
        "costs at most one commit (one fsync) per interval.",
    )
    delete_delay_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Acknowledged readings are deleted with the next commit, or after this.",
    )


class ReconnectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_s: float = Field(default=1.0, gt=0, description="First wait after a lost connection.")
    max_s: float = Field(default=60.0, gt=0, description="Longest wait between attempts.")

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectSettings:
        if self.max_s < self.min_s:
            raise ValueError("max_s must be at least min_s")
        return self


class EdgeSettings(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="RUUHKA_EDGE_", env_nested_delimiter="__", extra="forbid"
    )

    device_id: DeviceId
    state_dir: Path = Path("/var/lib/ruuhka-edge")
    heartbeat_s: float = Field(default=60.0, gt=0)
    clock_check: ClockCheckMode = Field(
        default="auto",
        description="How to tell whether the clock is right: auto (the kernel's NTP status, "
        "else timedatectl, and never before this build), kernel, timedatectl, or floor "
        "(only the build date).",
    )
    publish_window: int = Field(
        default=100, ge=1, le=65535, description="Readings in flight to the broker at once."
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    reconnect: ReconnectSettings = Field(default_factory=ReconnectSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    sources: list[SourceConfig] = Field(default_factory=list)
