"""``GET /api/v1/facilities/{id}/snapshot.jpg``: the latest anonymised camera picture.

``?w=240`` or ``?w=480`` gives a smaller copy (hub/renditions.py). ``?v=``
names the picture (``snapshot_url`` in the facility API carries it): such a URL
never changes its bytes, so it may be cached for good; once a newer picture
has replaced it, the URL redirects to the newer one's.
"""

from __future__ import annotations

from email.utils import format_datetime

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub.renditions import WIDTHS
from hub.snapshots import SnapshotStore, ms

# Pictures come every minute or so: a short max-age spares the hub, the ETag the network.
CACHE_MAX_AGE_S = 15
# A versioned URL names one picture's bytes for good.
VERSIONED_CACHE = "public, max-age=31536000, immutable"

router = APIRouter()

WidthQuery = Query(
    default=None, description=f"A smaller copy: one of {', '.join(map(str, WIDTHS))} pixels wide."
)
VersionQuery = Query(
    default=None,
    ge=0,
    le=2**53,
    description="The picture's version, as in snapshot_url; an older one redirects to the newest.",
)


# HEAD: caches and link checkers ask without the picture (one operation in the schema).
@router.head("/api/v1/facilities/{facility_id}/snapshot.jpg", include_in_schema=False)
@router.get(
    "/api/v1/facilities/{facility_id}/snapshot.jpg",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The latest anonymised picture."},
        304: {"description": "Not modified (If-None-Match)."},
        307: {"description": "`v` names a picture that a newer one has replaced."},
        400: {"description": "`w` is not one of the sizes offered."},
        404: {"description": "No such facility, or no picture in the last retention_h."},
    },
    tags=["facilities"],
)
def get_snapshot(
    request: Request,
    facility_id: str,
    w: int | None = WidthQuery,
    v: int | None = VersionQuery,
) -> Response:
    """The facility's latest anonymised camera picture (no person pixel, no metadata).

    ``X-Snapshot-At`` says when it was taken; ``ETag`` changes with every picture."""
    hub = request.app.state.hub
    store: SnapshotStore | None = getattr(hub, "snapshots", None)
    if hub.settings.facility(facility_id) is None:
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    if w is not None and w not in WIDTHS:
        raise HTTPException(
            status_code=400, detail=f"`w` must be one of {', '.join(map(str, WIDTHS))}"
        )
    picture = store.latest(facility_id) if store is not None else None
    if picture is None:
        raise HTTPException(status_code=404, detail="no camera picture")
    version = ms(picture.taken_at)
    if v is not None and v != version:
        target = f"/api/v1/facilities/{facility_id}/snapshot.jpg?v={version}"
        if w is not None:
            target += f"&w={w}"
        return RedirectResponse(target, status_code=307, headers={"Cache-Control": "no-cache"})
    etag = f'"{facility_id}-{version}-{w or "full"}"'
    headers = {
        "Cache-Control": VERSIONED_CACHE if v is not None else f"public, max-age={CACHE_MAX_AGE_S}",
        "ETag": etag,
        "Last-Modified": format_datetime(picture.taken_at, usegmt=True),
        "X-Snapshot-At": picture.taken_at.isoformat().replace("+00:00", "Z"),
    }
    if picture.people is not None:
        headers["X-People"] = str(picture.people)
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = picture.jpeg if w is None else hub.renditions.get(picture, w)
    return Response(body, media_type="image/jpeg", headers=headers)
