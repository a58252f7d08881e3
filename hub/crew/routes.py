"""The crew API (log, correct, overview) and the public maintenance history.

The public history is open data with no personal data: it never says which
crew logged an entry. Crews see who did what, and every correction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from hub.config import Facility
from hub.crew import vocabulary
from hub.crew.auth import CSRF_HEADER, Caller, check_csrf, require_caller, scope, service
from hub.crew.conditions import label, when_text
from hub.crew.maintenance import Change, Entry, EntryError, Revision
from hub.crew.service import CrewService, latest_for
from hub.crew.vocabulary import Quality, usual
from hub.facilities import present
from hub.store import DeviceStatus, in_range
from ruuhka.contract import FacilityState
from web.i18n import negotiate, translations
from web.messages import CREW_QUALITIES

router = APIRouter()

QualityName = Literal["good", "satisfactory", "unusable"]
NoticeText = dict[Literal["fi", "sv", "en"], Annotated[str, Field(max_length=500)]]
LangQuery = Query(default=None, pattern=r"^(fi|sv|en)$", description="fi, sv or en.")
MAX_BODY = 16 * 1024


def _utc(value: datetime | None) -> datetime | None:
    """In UTC; a date so far out that no store keeps it is refused, not a server error."""
    return in_range(value) if value is not None else None


# A time in a query: in UTC and within what the stores keep, or a 422 that says so.
QueryTime = Annotated[AwareDatetime, AfterValidator(in_range)]
# Ids are SQLite integers: a larger number names nothing (404 rather than an overflow).
EntryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The entry's id.")]


class EntryIn(BaseModel):
    """One piece of work, as a crew logs it."""

    model_config = ConfigDict(extra="forbid")

    facility: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    action: str = Field(max_length=40, description="From the facility kind's vocabulary.")
    quality: QualityName | None = Field(default=None, description="Default: the action's usual.")
    performed_at: AwareDatetime | None = Field(
        default=None,
        description="When the work was done (default: now); not in the future, "
        "not older than 48 h (configurable).",
    )
    notice: NoticeText | None = Field(default=None, description="Free text in fi, sv, en.")
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="Chosen by the client; resending the same id stores the entry once.",
    )

    _in_utc = field_validator("performed_at")(_utc)


class CorrectionIn(BaseModel):
    """A correction; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    action: str | None = Field(default=None, max_length=40)
    quality: QualityName | None = None
    performed_at: AwareDatetime | None = None
    notice: NoticeText | None = None
    withdrawn: bool | None = Field(default=None, description="True takes the entry back.")
    reason: str | None = Field(default=None, max_length=500)

    _in_utc = field_validator("performed_at")(_utc)


class PublicEntryOut(BaseModel):
    id: int
    facility: str
    action: str
    label: str = Field(description="The action, in the requested language.")
    quality: Quality | None
    performed_at: datetime = Field(description="When the work was done (UTC).")
    received_at: datetime = Field(description="When the hub received the entry (UTC).")
    notice: dict[str, str] | None
    corrected: bool = Field(description="True when the entry was corrected after logging.")


class RevisionOut(BaseModel):
    revision: int
    action: str
    quality: Quality | None
    notice: dict[str, str] | None
    performed_at: datetime
    withdrawn: bool
    changed_at: datetime
    changed_by: str
    reason: str | None


class CrewEntryOut(PublicEntryOut):
    logged_by: str
    via: str
    withdrawn: bool
    revision: int
    text: str = Field(description='E.g. "Iced today 06:30", in the facility\'s time zone.')
    revisions: list[RevisionOut] | None = None


class ActionOut(BaseModel):
    id: str
    label: str
    quality: Quality | None


class DeviceOut(BaseModel):
    device: str
    online: bool | None
    last_seen: datetime | None
    last_seen_age_s: float | None
    outbox_depth: int | None = None
    dropped: int | None = None
    disk_free_mb: float | None = None
    cpu_temp_c: float | None = None
    agent_version: str | None = None


class CrewFacilityOut(BaseModel):
    id: str
    name: str
    kind: str
    lat: float | None
    lon: float | None
    stale: bool
    updated_at: datetime | None
    condition_text: str | None
    condition_state: str
    notice: str | None
    actions: list[ActionOut]
    devices: list[DeviceOut]
    recent: list[CrewEntryOut]


class VocabularyOut(BaseModel):
    qualities: dict[str, str]
    actions: dict[str, ActionOut]
    by_kind: dict[str, list[str]]
    condition_ttl_s: dict[str, int]


def _now() -> datetime:
    return datetime.now(UTC)


def _lang(request: Request, lang: str | None) -> str:
    default = request.app.state.hub.settings.site.default_language
    return negotiate(lang, request.headers.get("accept-language"), default)


def public_entry(entry: Entry, lang: str) -> PublicEntryOut:
    return PublicEntryOut(
        id=entry.id,
        facility=entry.facility,
        action=entry.action,
        label=label(entry.action, lang),
        quality=entry.quality,
        performed_at=entry.performed_at,
        received_at=entry.received_at,
        notice=entry.notice,
        corrected=entry.revision > 1,
    )


def crew_entry(
    entry: Entry, facility: Facility, lang: str, now: datetime, revisions: list[Revision] | None
) -> CrewEntryOut:
    base = public_entry(entry, lang).model_dump()
    return CrewEntryOut(
        **base,
        logged_by=entry.logged_by,
        via=entry.via,
        withdrawn=entry.withdrawn,
        revision=entry.revision,
        text=f"{base['label']} {when_text(entry.performed_at, facility.zone, now, lang)}",
        revisions=[RevisionOut(**vars(r)) for r in revisions] if revisions is not None else None,
    )


def facility_in_scope(svc: CrewService, caller: Caller, facility_id: str) -> Facility:
    """The facility, if this crew may log for it: 404 when unknown, 403 when not theirs."""
    facility = svc.hub_settings.facility(facility_id)
    if facility is None:
        svc.metrics.refused("invalid", f"unknown facility {facility_id[:64]!r}")
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    if facility_id not in scope(caller, svc):
        svc.metrics.refused("forbidden", f"{caller.crew.name} for {facility_id}")
        raise HTTPException(
            status_code=403, detail=f"crew {caller.crew.name!r} does not look after {facility_id!r}"
        )
    return facility


def refuse(svc: CrewService, exc: EntryError) -> HTTPException:
    svc.metrics.refused(exc.reason, str(exc))
    return HTTPException(status_code=409 if exc.reason == "conflict" else 422, detail=str(exc))


def log_entry(
    svc: CrewService, caller: Caller, body: EntryIn, now: datetime
) -> tuple[Entry, Facility, bool]:
    """Scope-check and store one entry (shared by the JSON API and the plain form)."""
    facility = facility_in_scope(svc, caller, body.facility)
    try:
        entry, created = svc.log.add(
            facility=facility.id,
            kind=facility.kind.value,
            action=body.action,
            quality=Quality(body.quality) if body.quality else None,
            notice=dict(body.notice) if body.notice else None,
            performed_at=body.performed_at,
            logged_by=caller.crew.name,
            via=caller.via,
            client_id=body.client_id,
            now=now,
        )
    except EntryError as exc:
        raise refuse(svc, exc) from None
    svc.metrics.entries.labels("accepted" if created else "duplicate").inc()
    return entry, facility, created


def announce(request: Request, facility_id: str) -> None:
    """Push the facility to live clients again, so pages show the new condition."""
    live = request.app.state.hub.live
    live.offer(live.states.get(facility_id) or FacilityState(facility=facility_id), local=True)


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
    body = await request.body()
    svc = service(request)
    if len(body) > MAX_BODY:
        svc.metrics.refused("invalid", "body too large")
        raise HTTPException(status_code=413, detail=f"body larger than {MAX_BODY} bytes")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        svc.metrics.refused("invalid", str(exc.errors(include_url=False))[:300])
        raise HTTPException(
            status_code=422,
            detail=exc.errors(include_url=False, include_context=False, include_input=False),
        ) from None


async def entry_body(request: Request) -> EntryIn:
    return await _json_body(request, EntryIn)  # type: ignore[no-any-return]


async def correction_body(request: Request) -> CorrectionIn:
    return await _json_body(request, CorrectionIn)  # type: ignore[no-any-return]


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


@router.post(
    "/api/v1/crew/entries",
    response_model=CrewEntryOut,
    status_code=201,
    tags=["crew"],
    openapi_extra=_schema(EntryIn),
    responses={
        200: {"description": "Already stored (same client_id): the stored entry."},
        401: {"description": "Not logged in."},
        403: {"description": "Not this crew's facility, or a missing CSRF token."},
        422: {"description": "Unknown action, or a time in the future or too far back."},
    },
)
def post_entry(
    request: Request,
    response: Response,
    body: Annotated[EntryIn, Depends(entry_body)],
    lang: str | None = LangQuery,
) -> CrewEntryOut:
    """Log a piece of work. Cookie sessions send the page's token in X-CSRF-Token."""
    svc = service(request)
    now = _now()
    caller = require_caller(request, svc, now)
    check_csrf(request, svc, caller, request.headers.get(CSRF_HEADER))
    entry, facility, created = log_entry(svc, caller, body, now)
    if created:
        announce(request, facility.id)
    else:
        response.status_code = 200
    return crew_entry(entry, facility, _lang(request, lang), now, None)


@router.patch(
    "/api/v1/crew/entries/{entry_id}",
    response_model=CrewEntryOut,
    tags=["crew"],
    openapi_extra=_schema(CorrectionIn),
)
def correct_entry(
    request: Request,
    entry_id: EntryId,
    body: Annotated[CorrectionIn, Depends(correction_body)],
    lang: str | None = LangQuery,
) -> CrewEntryOut:
    """Correct or withdraw an entry; the previous version stays in its revisions."""
    svc = service(request)
    now = _now()
    caller = require_caller(request, svc, now)
    check_csrf(request, svc, caller, request.headers.get(CSRF_HEADER))
    entry = svc.log.get(entry_id)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"no entry {entry_id}")
    facility = facility_in_scope(svc, caller, entry.facility)
    change = Change(
        action=body.action,
        quality=Quality(body.quality) if body.quality else None,
        notice=dict(body.notice) if body.notice is not None else None,
        performed_at=body.performed_at,
        withdrawn=body.withdrawn,
        reason=body.reason,
    )
    try:
        updated = svc.log.correct(entry, facility.kind.value, change, caller.crew.name, now)
    except EntryError as exc:
        raise refuse(svc, exc) from None
    svc.metrics.entries.labels("corrected").inc()
    announce(request, facility.id)
    language = _lang(request, lang)
    return crew_entry(updated, facility, language, now, svc.log.revisions(updated.id))


@router.get("/api/v1/crew/entries", response_model=list[CrewEntryOut], tags=["crew"])
def crew_history(
    request: Request,
    facility: str = Query(pattern=r"^[a-z0-9-]{1,64}$"),
    limit: int = Query(default=50, ge=1, le=500),
    lang: str | None = LangQuery,
) -> list[CrewEntryOut]:
    """A facility's log as crews see it: who logged what, withdrawn entries, every revision."""
    svc = service(request)
    now = _now()
    caller = require_caller(request, svc, now)
    target = facility_in_scope(svc, caller, facility)
    language = _lang(request, lang)
    return [
        crew_entry(e, target, language, now, svc.log.revisions(e.id))
        for e in svc.log.history(facility, limit=limit, include_withdrawn=True)
    ]


@router.get("/api/v1/crew/me", tags=["crew"])
def me(request: Request) -> dict[str, Any]:
    svc = service(request)
    caller = require_caller(request, svc, _now())
    return {
        "crew": caller.crew.name,
        "via": caller.via,
        "facilities": sorted(scope(caller, svc)),
        "expires_at": caller.session.expires_at if caller.session else None,
    }


def action_out(action_id: str, lang: str) -> ActionOut:
    return ActionOut(id=action_id, label=label(action_id, lang), quality=usual(action_id))


def devices_of(
    facility: Facility, statuses: dict[str, DeviceStatus], now: datetime
) -> list[DeviceOut]:
    out = []
    for device in dict.fromkeys(s.device for s in facility.sources):
        status = statuses.get(device)
        beat = (status.heartbeat if status else None) or {}
        out.append(
            DeviceOut(
                device=device,
                online=status.online if status else None,
                last_seen=status.at if status else None,
                last_seen_age_s=round((now - status.at).total_seconds(), 1) if status else None,
                outbox_depth=beat.get("outbox_depth"),
                dropped=beat.get("dropped"),
                disk_free_mb=beat.get("disk_free_mb"),
                cpu_temp_c=beat.get("cpu_temp_c"),
                agent_version=beat.get("agent_version"),
            )
        )
    return out


def overview(
    request: Request, svc: CrewService, caller: Caller, lang: str, now: datetime
) -> list[CrewFacilityOut]:
    """The crew's facilities, with what the crew page shows about each."""
    hub = request.app.state.hub
    allowed = scope(caller, svc)
    statuses = {s.device: s for s in hub.store.devices()}
    out = []
    for facility in hub.settings.facilities:
        if facility.id not in allowed:
            continue
        public = present(
            facility,
            hub.live.states.get(facility.id),
            lang,
            now,
            condition=latest_for(request.app, facility.id),
        )
        out.append(
            CrewFacilityOut(
                id=facility.id,
                name=public.name,
                kind=public.kind,
                lat=facility.location.lat if facility.location else None,
                lon=facility.location.lon if facility.location else None,
                stale=public.stale,
                updated_at=public.updated_at,
                condition_text=public.condition_text,
                condition_state=public.condition_state,
                notice=public.notice,
                actions=[action_out(a, lang) for a in vocabulary.actions_for(facility.kind.value)],
                devices=devices_of(facility, statuses, now),
                recent=[
                    crew_entry(e, facility, lang, now, None)
                    for e in svc.log.history(facility.id, limit=3)
                ],
            )
        )
    return out


@router.get("/api/v1/crew/facilities", response_model=list[CrewFacilityOut], tags=["crew"])
def crew_facilities(request: Request, lang: str | None = LangQuery) -> list[CrewFacilityOut]:
    """The crew's facilities: actions, condition, recent work, devices and staleness."""
    svc = service(request)
    now = _now()
    caller = require_caller(request, svc, now)
    return overview(request, svc, caller, _lang(request, lang), now)


@router.get(
    "/api/v1/facilities/{facility_id}/maintenance",
    response_model=list[PublicEntryOut],
    responses={404: {"description": "No such facility."}},
    tags=["facilities"],
)
def maintenance_history(
    request: Request,
    facility_id: str,
    action: str | None = Query(default=None, max_length=40, description="e.g. iced"),
    before: Annotated[QueryTime | None, Query(description="Work done before this.")] = None,
    limit: int = Query(default=100, ge=1, le=1000),
    lang: str | None = LangQuery,
) -> list[PublicEntryOut]:
    """Maintenance done at a facility, newest work first (open data: no crew identities).

    "When was the rink last iced?" is ``?action=iced&limit=1``."""
    svc = service(request)
    if svc.hub_settings.facility(facility_id) is None:
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    language = _lang(request, lang)
    entries = svc.log.history(facility_id, limit=limit, before=before, action=action)
    return [public_entry(e, language) for e in entries]


@router.get("/api/v1/maintenance/vocabulary", response_model=VocabularyOut, tags=["facilities"])
def maintenance_vocabulary(request: Request, lang: str | None = LangQuery) -> VocabularyOut:
    """What crews can log per facility kind, each action's usual quality, and decay times."""
    svc = service(request)
    language = _lang(request, lang)
    gettext = translations(language).gettext
    return VocabularyOut(
        qualities={q.value: gettext(CREW_QUALITIES[q.value]) for q in Quality},
        actions={a.id: action_out(a.id, language) for a in vocabulary.all_actions()},
        by_kind={kind: list(vocabulary.actions_for(kind)) for kind in vocabulary.ACTIONS_BY_KIND},
        condition_ttl_s={kind: svc.settings.ttl_for(kind) for kind in vocabulary.CONDITION_TTL_S},
    )
