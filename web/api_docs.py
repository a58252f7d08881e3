"""The open-data API's documentation: /docs (Swagger UI) and /redoc (ReDoc).

Both come from files the hub ships: the fastapi-offline package carries Swagger
UI 5 (which renders FastAPI's OpenAPI 3.1) and ReDoc 2, and the pages start
them with a script of our own (web/static/api-docs.js) rather than an inline
one, so they live under the same Content-Security-Policy as every other page:
nothing from a third party, no inline script or style.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from web.assets import ASSETS

ASSETS_PATH = "/docs-assets"
DOCS_ASSETS = StaticFiles(directory=Path(str(files("fastapi_offline") / "static")))

router = APIRouter(include_in_schema=False)


def _page(title: str, head: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        f'<link rel="icon" href="{ASSETS_PATH}/favicon.png">\n{head}</head>\n'
        f"<body>\n{body}</body>\n</html>\n"
    )


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    return HTMLResponse(
        _page(
            "Ruuhka open data API",
            f'<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">\n',
            '<div id="swagger-ui" data-spec="/openapi.json"></div>\n'
            f'<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>\n'
            f'<script src="{ASSETS.url("api-docs.js")}"></script>\n',
        )
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    return HTMLResponse(
        _page(
            "Ruuhka open data API",
            "",
            '<redoc spec-url="/openapi.json"></redoc>\n'
            f'<script src="{ASSETS_PATH}/redoc.standalone.js"></script>\n',
        )
    )
