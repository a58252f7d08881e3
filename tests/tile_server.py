"""A local map tile server for the map tests: every /{z}/{x}/{y}.png is answered with
a small PNG, and every request is kept, so that a test sees what the browser asked."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from ruuhka.broker import free_port


def _tile() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (214, 222, 214)).save(out, "PNG")
    return out.getvalue()


class TileServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, str]]] = []
        tile = _tile()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) != 4 or parts[0] != "tiles" or not parts[3].endswith(".png"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(tile)))
                self.end_headers()
                self.wfile.write(tile)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def template(self) -> str:
        return f"{self.origin}/tiles/{{z}}/{{x}}/{{y}}.png"

    def site_toml(self, attribution: str = "© Test map makers") -> str:
        return f'[site]\ntile_url = "{self.template}"\ntile_attribution = "{attribution}"\n'


@contextmanager
def tile_server() -> Iterator[TileServer]:
    server = TileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
