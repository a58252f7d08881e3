"""Static files by content hash: ``/static/style.3f9c2a1b0d4e.css`` never changes,
so browsers may keep it for a year without asking (``Cache-Control: immutable``);
a new version has a new name. The plain names (``/static/style.css``) still work,
revalidated on every use, for what needs a stable address (the crew's service
worker) and for pages rendered before an upgrade."""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from web import STATIC_DIR

IMMUTABLE = "public, max-age=31536000, immutable"
HASH_CHARS = 12


def hashed_name(relative: str, content: bytes) -> str:
    """ "leaflet/leaflet.js" → "leaflet/leaflet.<hash>.js"."""
    digest = hashlib.sha256(content).hexdigest()[:HASH_CHARS]
    folder, _, name = relative.rpartition("/")
    stem, dot, ext = name.partition(".")
    hashed = f"{stem}.{digest}{dot}{ext}" if dot else f"{stem}.{digest}"
    return f"{folder}/{hashed}" if folder else hashed


class Assets(StaticFiles):
    """The static folder, served under hashed and plain names."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self.hashed: dict[str, str] = {}
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                relative = path.relative_to(directory).as_posix()
                self.hashed[relative] = hashed_name(relative, path.read_bytes())
        self.real = {hashed: relative for relative, hashed in self.hashed.items()}

    def url(self, name: str) -> str:
        """The address of a static file by its content; a missing file is a bug."""
        return f"/static/{self.hashed[name]}"

    async def get_response(self, path: str, scope: Scope) -> Response:
        real = self.real.get(path)
        response = await super().get_response(real or path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE if real else "no-cache"
        return response


ASSETS = Assets(STATIC_DIR)
