"""The edge agent's configuration: one TOML file per device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge.sources.simulated import SimulatedCameraConfig, SimulatedGateConfig, SimulatedRinkConfig
from ruuhka.contract import DeviceId
from ruuhka.settings import MqttSettings, env_first_sources

SourceConfig = Annotated[
    SimulatedGateConfig | SimulatedRinkConfig | SimulatedCameraConfig,
    Field(discriminator="type"),
]


class OutboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_rows: PositiveInt = Field(
        default=1_000_000, description="About 200 MB; at 1 reading/s, 11 days offline."
    )


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RUUHKA_EDGE_", env_nested_delimiter="__", extra="forbid"
    )

    device_id: DeviceId
    state_dir: Path = Path("/var/lib/ruuhka-edge")
    heartbeat_s: float = Field(default=60.0, gt=0)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    sources: list[SourceConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_first_sources(init_settings, env_settings)
