"""Connection limits at the socket: a read timeout, and caps per address and in total.

uvicorn holds a connection for as long as its peer keeps it open, even one that
sends a header line every ten seconds and never finishes (slowloris), and it
accepts connections until the process runs out of file descriptors, when it
cannot even answer ``/healthz``. So the hub runs uvicorn with its HTTP and
WebSocket protocols subclassed here:

- a request's head and body must arrive within ``read_timeout_s`` of its first
  byte, and a new connection must start its request within that time too;
  otherwise 408 and the connection is closed;
- at most ``max_connections`` connections (HTTP and WebSocket) are held in
  total, and at most ``max_connections_per_address`` from one address (an IPv6
  /64); beyond either, a new connection gets 503 at once and is closed.

Behind a reverse proxy every connection comes from the proxy, so a peer that
uvicorn trusts for X-Forwarded-For (``FORWARDED_ALLOW_IPS``, loopback by
default) is not held to the per-address cap: the proxy applies that one
(deploy/compose/nginx.conf), and WebSockets are also counted per real client
address in hub/security.py. The defaults follow the process's open-file limit
(raised to its hard limit at start), so that the caps bind before the
descriptors run out; see ``effective``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from hub.config import HttpSettings
from hub.security import address_key

log = logging.getLogger("ruuhka.connections")

# Descriptors kept back from the connection cap: the stores, the broker, log
# files, the picture and password threads' files, and a margin.
RESERVED_FILES = 64
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 28\r\nConnection: close\r\n\r\nthe request came too slowly\n"
)


@dataclass(frozen=True)
class Limits:
    read_timeout_s: float
    connections: int
    connections_per_address: int
    websockets: int
    websockets_per_address: int


def open_file_limit() -> int:
    """The soft limit on open files, first raised as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


def effective(http: HttpSettings, files: int | None = None) -> Limits:
    """The configured caps, with 0 ("auto") worked out from the open-file limit:
    connections = the limit less a reserve; one address may hold half of them (many
    residents share one address behind carrier-grade NAT); WebSockets may take nine
    tenths of the connections, so plain requests always have room, and one address
    half of those."""
    files = open_file_limit() if files is None else files
    reserve = max(RESERVED_FILES, files // 10)
    connections = http.max_connections or max(16, files - reserve)
    websockets = http.max_websockets or max(8, connections * 9 // 10)
    return Limits(
        read_timeout_s=http.read_timeout_s,
        connections=connections,
        connections_per_address=http.max_connections_per_address or max(1, connections // 2),
        websockets=websockets,
        websockets_per_address=http.max_websockets_per_address or max(1, websockets // 2),
    )


class Trusted:
    """The peers uvicorn trusts for X-Forwarded-For: reverse proxies."""

    def __init__(self, forwarded_allow_ips: list[str] | str) -> None:
        items = (
            forwarded_allow_ips.split(",")
            if isinstance(forwarded_allow_ips, str)
            else forwarded_allow_ips
        )
        self.everyone = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (i.strip() for i in items):
            if item == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue  # a unix socket path or a host name: not a peer address

    def __contains__(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class Connections:
    """Who holds how many connections; used on the event loop only."""

    def __init__(self, limits: Limits, trusted: Trusted) -> None:
        self.limits = limits
        self.trusted = trusted
        self.total = 0
        self.by_address: dict[str, int] = {}
        self.refused = 0
        self.timed_out = 0
        self._held: dict[int, str | None] = {}
        self._last_warning = -1e9

    def admit(self, transport: asyncio.BaseTransport, host: str | None) -> bool:
        key = None if host is None or host in self.trusted else address_key(host)
        if self.total >= self.limits.connections or (
            key is not None and self.by_address.get(key, 0) >= self.limits.connections_per_address
        ):
            self.refused += 1
            self._warn(key)
            return False
        self.total += 1
        if key is not None:
            self.by_address[key] = self.by_address.get(key, 0) + 1
        self._held[id(transport)] = key
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        if id(transport) not in self._held:
            return
        key = self._held.pop(id(transport))
        self.total -= 1
        if key is not None:
            left = self.by_address[key] - 1
            if left:
                self.by_address[key] = left
            else:
                del self.by_address[key]

    def _warn(self, key: str | None) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning(
                "refusing connections: %d held (at most %d), %s",
                self.total,
                self.limits.connections,
                f"{self.by_address.get(key, 0)} from {key}" if key else "over all addresses",
            )


def protocols(connections: Connections) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP (h11) and WebSocket protocols, held to ``connections``."""
    timeout = connections.limits.read_timeout_s

    class LimitedWebSocket(WebSocketsSansIOProtocol):
        def connection_lost(self, exc: Exception | None) -> None:
            connections.release(self.transport)
            super().connection_lost(exc)

    class LimitedHTTP(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.ws_protocol_class = LimitedWebSocket
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not connections.admit(transport, self.client[0] if self.client else None):
                transport.write(REFUSED)
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request on a kept-alive connection begins
            super().data_received(data)
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._disarm()  # all of it is in (or the connection is switching)

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self._disarm()
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            connections.release(self.transport)
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(timeout, self._timed_out)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _timed_out(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.conn.their_state not in (
                h11.IDLE,
                h11.SEND_BODY,
            ):
                return
            connections.timed_out += 1
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(TIMED_OUT)
            self.transport.close()

    return LimitedHTTP, LimitedWebSocket
