"""HTTP hardening in one ASGI middleware: headers, CORS, rate and size limits.

It wraps the whole app, so every response — including the 413 and 429 it
makes itself and the errors of the routes — gets the security headers. It is a
plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so that WebSockets
and streamed bodies pass through untouched.

- Content-Security-Policy without 'unsafe-inline' and without any other host:
  every page, the API documentation included (web/api_docs.py), loads its
  scripts and styles from the hub itself. ReDoc (/redoc) sets its styles inline
  and runs its search in a worker it makes from a blob, so that one page admits
  inline styles and blob: workers (never an inline script, nor another host).
- Strict-Transport-Security only when the request came over TLS (directly, or via
  a reverse proxy that uvicorn trusts for X-Forwarded-Proto).
- CORS: open data is readable from any origin (GET/HEAD, never with
  credentials); nothing else is allowed cross-origin.
- A token bucket per client address on /api/ (IPv6 by /64, since one host owns a
  whole /64): 429 with Retry-After when empty.
- Request bodies above a limit: 413, without reading them.
- Live-view WebSockets counted per client address (the one a trusted proxy
  forwards; IPv6 by /64) and in total: beyond the caps (hub/connections.py),
  429 or 503 with Retry-After instead of the handshake.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from hub.config import HttpSettings

if TYPE_CHECKING:
    from hub.connections import Limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/"
# Everything under /api/ is open data except the crew's own API.
CLOSED_API_PREFIXES = ("/api/v1/crew",)
REDOC_PATH = "/redoc"
# At most this many client addresses are tracked; idle ones go first, and a
# bucket that has been idle long enough to refill loses nothing by being dropped.
MAX_TRACKED_CLIENTS = 10_000
_HOST_RE = re.compile(
    r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$"
)

BASE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
STATIC_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
CORS_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Retry-After"),
)


def policy_text(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def page_policy(
    host: str | None, tls: bool, image_origin: str | None = None, redoc: bool = False
) -> str:
    """The policy for everything but the docs. connect-src names the page's own
    WebSocket origin too, for browsers whose 'self' does not cover ws: and wss:.
    ``image_origin`` is one more origin pictures may come from (the map's tiles);
    ``redoc``: ReDoc writes its styles inline and searches in a blob worker."""
    policy = dict(BASE_POLICY)
    if redoc:
        policy["style-src"] = "'self' 'unsafe-inline'"
        policy["worker-src"] = "'self' blob:"
    if host and _HOST_RE.fullmatch(host):
        policy["connect-src"] = f"'self' {'wss' if tls else 'ws'}://{host}"
    if image_origin:
        policy["img-src"] = f"{BASE_POLICY['img-src']} {image_origin}"
    return policy_text(policy)


class TokenBuckets:
    """One bucket per client key: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token: 0.0 when granted, else seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(scope: Scope) -> str:
    """The client's address; an IPv6 address counts as its /64."""
    client = scope.get("client")
    return address_key(client[0] if client else "unknown")


def address_key(host: str) -> str:
    """What counts as one client: an IPv4 address, or an IPv6 /64 (one host owns a
    whole /64, so counting single IPv6 addresses would count nothing)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: HttpSettings, limits: Limits) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits
        # Open WebSockets, in total and per client address (the real one, behind a proxy).
        self.websockets = 0
        self.websockets_by_client: dict[str, int] = {}
        self.buckets = (
            TokenBuckets(settings.api_rate_per_s, settings.api_burst)
            if settings.api_rate_per_s > 0
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        is_api = path.startswith(API_PREFIX)
        if kind == "websocket":
            if is_api and self._limited(scope) > 0:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self._websocket(scope, receive, send)
            return

        send = self._with_headers(scope, send)
        method: str = scope.get("method", "GET")
        headers = _headers(scope)
        if is_api and method == "OPTIONS" and b"access-control-request-method" in headers:
            await _preflight(headers, send, open_data(path))
            return
        if is_api:
            wait = self._limited(scope)
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await _respond(send, 429, "too many requests", [(b"retry-after", retry.encode())])
                return
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _respond(send, 413, f"request body larger than {limit} bytes")
            return
        await self._bounded(scope, receive, send, limit)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the WebSocket if its client and the hub are within their caps."""
        key = client_key(scope)
        held = self.websockets_by_client.get(key, 0)
        if held >= self.limits.websockets_per_address:
            await _refuse_websocket(scope, send, 429, "too many live connections from your address")
            return
        if self.websockets >= self.limits.websockets:
            await _refuse_websocket(scope, send, 503, "too many live connections; try again soon")
            return
        self.websockets += 1
        self.websockets_by_client[key] = held + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.websockets -= 1
            left = self.websockets_by_client[key] - 1
            if left:
                self.websockets_by_client[key] = left
            else:
                del self.websockets_by_client[key]

    def _limited(self, scope: Scope) -> float:
        return 0.0 if self.buckets is None else self.buckets.take(client_key(scope))

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, refusing a body (e.g. chunked) that grows beyond the limit."""
        received = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _respond(send, 413, f"request body larger than {limit} bytes")

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        path: str = scope.get("path", "")
        tls = scope.get("scheme") == "https"
        readable = open_data(path) and scope.get("method") in ("GET", "HEAD")
        extra = list(STATIC_HEADERS)
        if tls and self.settings.hsts_max_age_s:
            hsts = f"max-age={self.settings.hsts_max_age_s}"
            extra.append((b"strict-transport-security", hsts.encode()))
        if readable:
            extra += CORS_HEADERS
        host = _headers(scope).get(b"host", b"").decode("latin-1")

        policy = page_policy(host, tls, redoc=path == REDOC_PATH)
        extra.append((b"content-security-policy", policy.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                raw += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": raw}
            await send(message)

        return send_with_headers


def open_data(path: str) -> bool:
    return path.startswith(API_PREFIX) and not path.startswith(CLOSED_API_PREFIXES)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


async def _refuse_websocket(scope: Scope, send: Send, status: int, detail: str) -> None:
    """An HTTP answer instead of the handshake where the server can send one (uvicorn
    can), so the page sees 429 or 503 with Retry-After; else a close (403 on the wire)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1013})
        return
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", b"10"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _preflight(headers: dict[bytes, bytes], send: Send, readable: bool) -> None:
    """CORS preflight: open data may be read from anywhere; nothing else is allowed."""
    requested = headers.get(b"access-control-request-method", b"").upper()
    if not readable or requested not in (b"GET", b"HEAD"):
        await _respond(send, 403, "only reading open data is allowed cross-origin")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                *CORS_HEADERS,
                (b"access-control-allow-methods", b"GET, HEAD"),
                (b"access-control-allow-headers", b"Accept, Accept-Language"),
                (b"access-control-max-age", b"86400"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _respond(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
