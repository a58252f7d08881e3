"""Loading configuration files (TOML + environment) with one clear error.

Both roles read a TOML file given on the command line; environment variables
prefixed ``RUUHKA_`` (nested with ``__``, e.g. ``RUUHKA_MQTT__PASSWORD``)
override it, so secrets need not live in the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

S = TypeVar("S", bound=BaseSettings)


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key and the problem."""


class MqttSettings(BaseModel):
    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="mqtt://host:port, or mqtts://host:port for TLS.",
    )
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://.")
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: str = Field(default="5", pattern=r"^(5|3\.1\.1)$")
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
        if parts.username is not None or parts.password is not None:
            # A URL is logged and shown; credentials in it would be too.
            raise ValueError("give credentials as username and password, not in the URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors(include_url=False):
        lines.append(f"  {_format_location(err['loc'])}: {err['msg']}")
    return "\n".join(lines)


def load_settings(cls: type[S], path: Path | None) -> S:
    """Read ``path`` (TOML) into ``cls``; environment variables override it."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path or Path("environment"), exc)) from None


class FileSettings(BaseSettings):
    """Settings read from a TOML file, which the environment may override.

    The file's contents arrive as init kwargs, so the environment source is put
    first; no .env files or secret directories are read."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings
