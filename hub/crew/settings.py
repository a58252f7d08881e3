"""The ``[crew]`` section of the hub's configuration (absent = no crew features)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

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
    max_failures: PositiveInt = Field(
        default=5, description="Wrong passwords for one account within failure_window_s …"
    )
    lockout_s: PositiveInt = Field(default=15 * 60, description="… lock it for this long.")
    ip_max_failures: PositiveInt = Field(
        default=30, description="Wrong logins from one address within failure_window_s."
    )
    failure_window_s: PositiveInt = 15 * 60
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
