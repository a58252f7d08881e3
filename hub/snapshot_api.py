"""``GET /api/v1/facilities/{id}/snapshot.jpg``: the latest anonymised camera picture."""

from __future__ import annotations

from email.utils import format_datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from hub.snapshots import SnapshotStore, ms

# Pictures come every minute or so: a short max-age spares the hub, the ETag the network.
CACHE_MAX_AGE_S = 15

router = APIRouter()


@router.api_route(
    "/api/v1/facilities/{facility_id}/snapshot.jpg",
    methods=["GET", "HEAD"],  # HEAD: caches and link checkers ask without the picture
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The latest anonymised picture."},
        304: {"description": "Not modified (If-None-Match)."},
        404: {"description": "No such facility, or no picture in the last retention_h."},
    },
    tags=["facilities"],
)
def get_snapshot(request: Request, facility_id: str) -> Response:
    """The facility's latest anonymised camera picture (no person pixel, no metadata).

    ``X-Snapshot-At`` says when it was taken; ``ETag`` changes with every picture."""
    hub = request.app.state.hub
    store: SnapshotStore | None = getattr(hub, "snapshots", None)
    if hub.settings.facility(facility_id) is None:
        raise HTTPException(status_code=404, detail=f"no facility {facility_id[:64]!r}")
    picture = store.latest(facility_id) if store is not None else None
    if picture is None:
        raise HTTPException(status_code=404, detail="no camera picture")
    etag = f'"{facility_id}-{ms(picture.taken_at)}"'
    headers = {
        "Cache-Control": f"public, max-age={CACHE_MAX_AGE_S}",
        "ETag": etag,
        "Last-Modified": format_datetime(picture.taken_at, usegmt=True),
        "X-Snapshot-At": picture.taken_at.isoformat().replace("+00:00", "Z"),
    }
    if picture.people is not None:
        headers["X-People"] = str(picture.people)
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(picture.jpeg, media_type="image/jpeg", headers=headers)
