"""The hub's configuration: one TOML file an operator can write by hand."""

from __future__ import annotations

import re
from datetime import date, time
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from hub.crew.settings import CrewSettings
from hub.fanout import LiveSettings
from hub.snapshots import SnapshotSettings
from ruuhka.contract import DeviceId, SourceName, Stream
from ruuhka.settings import FileSettings, MqttSettings

LANGUAGES = ("fi", "sv", "en")
_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class FacilityKind(StrEnum):
    SWIMMING_HALL = "swimming_hall"
    CARPET_WASHING = "carpet_washing"
    ICE_RINK = "ice_rink"
    SKI_TRAIL = "ski_trail"
    SPORTS_FIELD = "sports_field"
    GYM = "gym"
    LIBRARY = "library"
    OTHER = "other"


# Seconds after which a value is labelled stale, per kind: a gate counter reports
# every few seconds when people move, a rink thermometer every few minutes.
STALE_AFTER_S: dict[FacilityKind, int] = {
    FacilityKind.SWIMMING_HALL: 15 * 60,
    FacilityKind.CARPET_WASHING: 15 * 60,
    FacilityKind.ICE_RINK: 60 * 60,
    FacilityKind.SKI_TRAIL: 6 * 3600,
    FacilityKind.SPORTS_FIELD: 6 * 3600,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    """One device (and optionally one named counter/sensor/camera on it)."""

    device: DeviceId
    counter: SourceName | None = None
    sensor: SourceName | None = None
    camera: SourceName | None = None

    def routes(self) -> list[tuple[str, Stream, str | None]]:
        """(device, stream, name) keys this source claims; None name = any name.

        A source that names nothing takes every stream of its device."""
        named = [
            (self.device, stream, name)
            for stream, name in (
                (Stream.COUNT, self.counter),
                (Stream.RINK, self.sensor),
                (Stream.SNAPSHOT, self.camera),
            )
            if name is not None
        ]
        return named or [
            (self.device, stream, None) for stream in (Stream.COUNT, Stream.RINK, Stream.SNAPSHOT)
        ]


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = None


def parse_hours(value: str) -> tuple[time, time] | None:
    """ "06:00-21:00" → (06:00, 21:00); "closed" → None."""
    if value.strip().lower() == "closed":
        return None
    match = _HOURS_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r}: write hours as HH:MM-HH:MM or 'closed'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{value!r}: not a time of day")
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    if end <= time(h1, m1):
        raise ValueError(f"{value!r}: closing time must be after opening time")
    return time(h1, m1), end


class Facility(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    kind: FacilityKind
    capacity: PositiveInt | None = None
    name: dict[str, Annotated[str, Field(min_length=1, max_length=200)]]
    timezone: str = "Europe/Helsinki"
    opening_hours: dict[str, str] = Field(
        default_factory=dict,
        description='Per weekday (mon..sun): "06:00-21:00" or "closed". Missing = unknown.',
    )
    stale_after_s: PositiveInt | None = None
    snapshot_interval_s: PositiveInt | None = Field(
        default=None,
        description="How often this place's camera publishes a picture, as its sign says; "
        "default [snapshots] interval_s.",
    )
    location: Location | None = None
    sources: list[Source] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(LANGUAGES)
        if unknown:
            raise ValueError(f"unknown language(s) {sorted(unknown)}; use fi, sv, en")
        if not value:
            raise ValueError("give at least one of fi, sv, en")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("opening_hours")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        for day, hours in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
            parse_hours(hours)
        return value

    def display_name(self, lang: str) -> str:
        for candidate in (lang, "en", "fi", "sv"):
            if candidate in self.name:
                return self.name[candidate]
        return self.id

    @property
    def stale_after(self) -> int:
        return self.stale_after_s or STALE_AFTER_S.get(self.kind, 30 * 60)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StoreSettings(_Strict):
    url: str = Field(
        default="sqlite:///ruuhka.db",
        description="sqlite:///relative/path.db or sqlite:////absolute/path.db, or "
        "influxdb://host:8086/database (1.x), influxdb://host:8086?org=ORG&bucket=BUCKET "
        "(2.x, 3.x); influxdbs:// for TLS",
    )
    token: SecretStr | None = Field(default=None, description="InfluxDB 2.x/3.x API token.")
    username: str | None = Field(default=None, description="InfluxDB 1.x user.")
    password: SecretStr | None = Field(default=None, description="InfluxDB 1.x password.")


class HttpSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Hardening (hub/security.py).
    max_body_bytes: PositiveInt = Field(
        default=64 * 1024, description="A larger request body is refused with 413."
    )
    api_rate_per_s: float = Field(
        default=10.0,
        ge=0,
        description="Sustained /api/ requests per second per client address; 0 = no limit.",
    )
    api_burst: PositiveInt = Field(
        default=100, description="Requests a client may make at once before the rate applies."
    )
    metrics_from: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")],
        description="Addresses that may read /metrics (Prometheus); to anyone else it is "
        "404. Behind a reverse proxy this is the client's forwarded address.",
    )
    hsts_max_age_s: int = Field(
        default=365 * 24 * 3600,
        ge=0,
        description="Strict-Transport-Security max-age when served over TLS; 0 = not sent.",
    )
    # Connections (hub/connections.py); 0 = worked out from the open-file limit.
    read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A request's head and body must arrive within this time of its first "
        "byte (and a new connection must begin one); else 408 and the connection closes.",
    )
    max_connections: int = Field(
        default=0,
        ge=0,
        description="Connections held at once, HTTP and WebSocket; beyond, 503 at once. "
        "0: the open-file limit (raised to its hard limit) less a tenth, at least 64.",
    )
    max_connections_per_address: int = Field(
        default=0,
        ge=0,
        description="Of those, from one address (an IPv6 /64) other than a trusted proxy's. "
        "0: half of max_connections.",
    )
    max_websockets: int = Field(
        default=0,
        ge=0,
        description="Live-view WebSockets at once; beyond, 503. 0: nine tenths of "
        "max_connections, so that plain requests always have room.",
    )
    max_websockets_per_address: int = Field(
        default=0,
        ge=0,
        description="Of those, from one client address (an IPv6 /64; behind a proxy, the "
        "address it forwards); beyond, 429. 0: half of max_websockets.",
    )

    def may_read_metrics(self, host: str) -> bool:
        try:
            address = ip_address(host)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
            address = address.ipv4_mapped  # type: ignore[union-attr]
        return any(address in network for network in self.metrics_from)


class IngestSettings(_Strict):
    client_id: str = Field(default="ruuhka-hub", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    max_payload_bytes: PositiveInt = 64 * 1024
    max_image_payload_bytes: PositiveInt = 1024 * 1024
    batch_size: int = Field(default=500, ge=1, le=10_000)
    receive_maximum: int = Field(
        default=1000, ge=1, le=65535, description="Unacknowledged readings in flight."
    )
    max_clock_skew_s: PositiveInt = 300
    broker_down_warning_s: PositiveInt = Field(
        default=120,
        description="A broker unreachable longer than this is named in /healthz's warnings "
        "(the answer stays 200: a broker outage must not take every replica out at once).",
    )
    quarantine_keep: PositiveInt = Field(
        default=10_000,
        description="Refused messages kept for operators (ruuhka store quarantine) on SQLite; "
        "the oldest go. On InfluxDB the bucket's retention bounds them.",
    )
    recompute_every_s: PositiveFloat = Field(
        default=10,
        description="While a backlog drains, late readings are folded in at their own time "
        "this often, or less when a recompute takes long (and at once when nothing waits).",
    )
    max_seq_jump: PositiveInt = Field(
        default=1_000_000,
        description="A reading whose seq is more than this ahead of the device's last is "
        "refused (seq_jump): stored, it would hold back every later reading as out of order.",
    )
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Run as one of several replicas, storing readings through the MQTT 5 "
        "shared subscription $share/{shared_group}/...; unset = a hub on its own.",
    )
    replica_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="This replica's name."
    )
    replicas: list[str] = Field(
        default_factory=list,
        description="Every replica's name, the same list on all of them: each facility's "
        "state is derived by exactly one of them (see hub/replicas.py).",
    )
    derive_username: str | None = Field(
        default=None,
        description="The account of a replica's second session (the one that derives its "
        "facilities) where the broker makes the user name the client id (Mosquitto's "
        "use_username_as_clientid); unset = the [mqtt] account.",
    )
    derive_password: SecretStr | None = None

    @model_validator(mode="after")
    def _replication(self) -> IngestSettings:
        if self.shared_group is None:
            if self.replica_id or self.replicas:
                raise ValueError("replica_id and replicas need shared_group")
            return self
        if not self.replica_id:
            raise ValueError("shared_group needs replica_id, this replica's name")
        if self.replica_id not in self.replicas:
            raise ValueError(f"replica_id {self.replica_id!r} is not in replicas {self.replicas}")
        if len(set(self.replicas)) != len(self.replicas):
            raise ValueError("replicas: a name appears twice")
        return self


class ForecastSettings(_Strict):
    """What typical-occupancy forecasts learn from, and which days are holidays."""

    holidays_country: str = Field(
        default="FI", description="Public holidays of this country (ISO 3166); empty for none."
    )
    holidays_subdivision: str | None = Field(default=None, description="E.g. a state: BY.")
    extra_holidays: list[date] = Field(
        default_factory=list, description="More days to treat as holidays (local dates)."
    )
    history_weeks: int = Field(default=8, ge=1, le=52, description="How far back to learn.")

    @model_validator(mode="after")
    def _known(self) -> ForecastSettings:
        if self.holidays_country:
            import holidays

            try:
                holidays.country_holidays(self.holidays_country, subdiv=self.holidays_subdivision)
            except NotImplementedError as exc:
                raise ValueError(f"no public holidays known: {exc}") from None
        return self


class SiteSettings(_Strict):
    title: dict[str, str] = Field(
        default_factory=lambda: {"fi": "Ruuhka", "sv": "Ruuhka", "en": "Ruuhka"}
    )
    contact: str | None = None
    default_language: str = Field(default="fi", pattern=r"^(fi|sv|en)$")
    operator: dict[str, str] = Field(
        default_factory=dict,
        description="Who runs the service, per language, for the about page.",
    )
    accessibility_contact: str | None = Field(
        default=None, description="Where accessibility feedback goes; defaults to contact."
    )
    accessibility_reviewed: date | None = Field(
        default=None, description="When the accessibility statement was last reviewed."
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="The service's public address, e.g. https://ruuhka.example.fi: printed "
        "on camera signs and in their QR codes. Default: the address a request came to.",
    )
    tile_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[^\s]*$",
        description="The map's tile server, as a URL template with {z}, {x} and {y}, e.g. "
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png or a city's own WMTS in that form. "
        "Without it there is no map, and the pages load nothing from other servers.",
    )
    tile_attribution: str | None = Field(
        default=None,
        max_length=300,
        description="The map data's attribution the tile server asks for, shown on the map "
        'and on the about page, e.g. "© OpenStreetMap contributors". Required with tile_url.',
    )

    @model_validator(mode="after")
    def _tiles(self) -> SiteSettings:
        if self.tile_url is None:
            if self.tile_attribution is not None:
                raise ValueError("tile_attribution without tile_url")
            return self
        slots = set(re.findall(r"\{([^}]*)\}", self.tile_url))
        if not {"z", "x", "y"} <= slots or slots - {"z", "x", "y", "r"}:
            raise ValueError("tile_url needs {z}, {x} and {y} (and may have {r}), nothing else")
        if not (self.tile_attribution or "").strip():
            raise ValueError("tile_url needs tile_attribution: tile servers ask to be credited")
        return self

    @property
    def tile_origin(self) -> str | None:
        """ "https://tile.example.org": what the map's pictures come from (for the CSP)."""
        if self.tile_url is None:
            return None
        scheme, _, rest = self.tile_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"


class HubSettings(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="RUUHKA_", env_nested_delimiter="__", extra="forbid"
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    site: SiteSettings = Field(default_factory=SiteSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    crew: CrewSettings | None = Field(
        default=None, description="Maintenance crews; absent = no crew features."
    )
    snapshots: SnapshotSettings = Field(default_factory=SnapshotSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    facilities: list[Facility] = Field(default_factory=list)

    @field_validator("facilities")
    @classmethod
    def _unique(cls, facilities: list[Facility]) -> list[Facility]:
        seen: set[str] = set()
        claimed: dict[tuple[str, Stream, str | None], str] = {}
        for index, facility in enumerate(facilities):
            if facility.id in seen:
                raise ValueError(f"facilities[{index}].id: {facility.id!r} appears twice")
            seen.add(facility.id)
            for number, source in enumerate(facility.sources):
                for key in source.routes():
                    other = claimed.get(key)
                    if other is not None and other != facility.id:
                        raise ValueError(
                            f"facilities[{index}].sources[{number}]: device {key[0]!r} "
                            f"({key[1].value} {key[2] or 'any'}) is mapped to both "
                            f"{other!r} and {facility.id!r}"
                        )
                    claimed[key] = facility.id
        return facilities

    def facility(self, facility_id: str) -> Facility | None:
        return next((f for f in self.facilities if f.id == facility_id), None)
