"""The ``[crew]`` section of the hub's configuration (absent = no crew features)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from hub.crew.vocabulary import CONDITION_TTL_S

FacilityId = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")]
TeamName = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,64}$")]


class CrewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db: str = Field(
        default="sqlite:///crew.db",
        description="sqlite:///relative/path.db or sqlite:////absolute/path.db",
    )
    session_lifetime_s: PositiveInt = Field(
        default=12 * 3600, description="A login lasts this long (one working day), then ends."
    )
    secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: Secure when the request came over https (directly or via a "
        "trusted proxy's X-Forwarded-Proto).",
    )
    # Logging in (hub/crew/throttle.py; the policy is in docs/run/crews.md).
    ip_max_failures: PositiveInt = Field(
        default=30,
        description="Wrong passwords one address (an IPv6 /64) may try within "
        "failure_window_s; beyond, it waits. Counted before the password is checked.",
    )
    failure_window_s: PositiveInt = 15 * 60
    max_failures: PositiveInt = Field(
        default=5,
        description="Wrong passwords an account may have from unknown places before each "
        "further try from them must wait (never a lock-out).",
    )
    first_delay_s: PositiveFloat = Field(
        default=2.0, description="The first wait; it doubles with each further wrong password …"
    )
    max_delay_s: PositiveInt = Field(default=20 * 60, description="… up to this.")
    account_window_s: PositiveInt = Field(
        default=24 * 3600, description="How long an account's wrong passwords count."
    )
    known_device_s: PositiveInt = Field(
        default=180 * 86400,
        description="A browser that logged in to an account is known to it this long: its "
        "tries are counted on their own, so failures from elsewhere never make it wait.",
    )
    known_address_s: PositiveInt = Field(
        default=30 * 86400,
        description="The same for an address (an IPv6 /64) the account logged in from.",
    )
    max_concurrent_logins: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Passwords checked at once per hub process: each argon2 check takes "
        "64 MiB and four threads (lanes) for about a tenth of a second of a fast core.",
    )
    login_queue: int = Field(
        default=16, ge=0, le=10_000, description="Logins that may wait for a check …"
    )
    login_wait_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="… this long at most; beyond either, 503 with Retry-After.",
    )
    max_backdate_s: PositiveInt = Field(
        default=48 * 3600, description="How far back a crew may date its work."
    )
    clock_tolerance_s: int = Field(
        default=300, ge=0, le=3600, description="A phone clock this far ahead is accepted."
    )
    condition_ttl_s: dict[str, PositiveInt] = Field(
        default_factory=dict,
        description="Per facility kind: after this long a condition reads as unknown.",
    )
    notice_ttl_s: PositiveInt = Field(default=7 * 86400, description="Notices expire too.")
    teams: dict[TeamName, list[FacilityId]] = Field(
        default_factory=dict,
        description="Named groups of facilities a crew can be scoped to (--team NAME).",
    )

    @field_validator("condition_ttl_s")
    @classmethod
    def _kinds(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(CONDITION_TTL_S)
        if unknown:
            raise ValueError(
                f"unknown facility kind(s) {sorted(unknown)}; use {', '.join(CONDITION_TTL_S)}"
            )
        return value

    def ttl_for(self, kind: str) -> int:
        return self.condition_ttl_s.get(kind) or CONDITION_TTL_S[kind]
