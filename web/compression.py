"""gzip for the public pages, files and open data; never for what carries a secret.

The crew's pages and API carry a CSRF token next to text a visitor can influence;
compressing such a response lets an attacker who sees its size guess the token a
byte at a time (BREACH). Those paths go out as they are. Everything else — HTML,
CSS, JS, JSON, SVG — is gzipped when the client accepts it, by Starlette's
middleware, which leaves pictures and event streams alone.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

SECRET_PREFIXES = ("/crew", "/api/v1/crew")
MINIMUM_BYTES = 500
LEVEL = 6  # most of level 9's saving on HTML, at a fraction of its CPU


def carries_secret(path: str) -> bool:
    return path.startswith(SECRET_PREFIXES)


class Compression:
    """ASGI middleware, outside the security middleware (whose 413 and 429 answers
    are small anyway)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_BYTES, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not carries_secret(scope.get("path", "")):
            await self.gzip(scope, receive, send)
            return
        await self.app(scope, receive, send)
