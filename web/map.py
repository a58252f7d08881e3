"""The map view of the list (``/?view=map``): the same places, drawn on a map in the
browser by Leaflet (vendored in ``static/leaflet``, BSD-2) over tiles from the one
server the operator configures in ``[site] tile_url``. Without one there is no map
and no page asks another server for anything. The list stays below the map, the
primary view; ``static/map.js`` builds the markers from its cards.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from markupsafe import escape

from hub.config import SiteSettings
from hub.security import page_policy
from web.i18n import Formatter


@dataclass(frozen=True)
class MapView:
    tiles: str
    attribution: str
    """HTML for Leaflet's attribution line: the configured text, escaped."""
    label: str


def map_of(site: SiteSettings, fmt: Formatter) -> MapView:
    assert site.tile_url is not None and site.tile_attribution is not None
    return MapView(
        tiles=site.tile_url,
        attribution=str(escape(site.tile_attribution)),
        label=fmt.gettext("Map of the places in the list below"),
    )


def map_policy(request: Request, site: SiteSettings) -> str:
    """The page policy with the tile server's origin, exactly, admitted for pictures."""
    tls = request.url.scheme == "https"
    return page_policy(request.headers.get("host"), tls, site.tile_origin)
