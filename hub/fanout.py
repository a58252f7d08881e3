"""Fan-out of facility states to WebSocket clients, sized for thousands of browsers.

Each state change is rendered once per language, and the same bytes go to every
client. A client never has a queue that grows: it has one pending slot per
facility (latest wins), and it is sent at most ``max_rate_hz`` batches a second,
so a burst of changes becomes one message per facility. What a client may have
in flight is bounded too: a small socket send buffer (``send_buffer_bytes``)
and the transport's high-water mark; beyond that its updates wait in the pending
slots, where newer ones replace older ones. A client whose socket takes no data
for ``send_timeout_s`` (a stalled phone, a peer that stopped reading) is dropped:
its connection is aborted and nothing is kept for it. Nobody waits for anybody:
a client that cannot take data is skipped, not awaited.

Under uvicorn's websockets-sansio protocol (the hub's default) sending works like
``websockets.broadcast()``: one pass over the clients writes each one's batch of
ready-made frames in a single socket write, with no task per client. Elsewhere,
or when an extension such as compression was negotiated, each client gets a task
that sends through ASGI (see ``DirectSink.of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketDisconnect

from ruuhka.contract import FacilityState

log = logging.getLogger("ruuhka.fanout")

Render = Callable[[FacilityState], str | None]

# Close code 1013 "Try Again Later" (RFC 6455, IANA registry): the page reconnects.
CLOSE_DROPPED = 1013
# A state's rendered text (it says its age) is shared with clients that connect
# within this many seconds; later ones get it rendered anew.
SNAPSHOT_FRESH_S = 1.0
SERVER_SEND = "ruuhka.server_send"  # scope key, set by ServerSend


class LiveSettings(BaseModel):
    """``[live]``: how the hub paces and protects its WebSocket clients."""

    model_config = ConfigDict(extra="forbid")

    max_rate_hz: float = Field(
        default=20,
        gt=0,
        le=1000,
        description="Batches a client is sent per second, at most; changes in between are "
        "coalesced per facility (latest wins).",
    )
    send_timeout_s: float = Field(
        default=10,
        gt=0,
        le=3600,
        description="A client whose socket accepts no data for this long is dropped.",
    )
    send_buffer_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="Socket send buffer per client: how far a slow client may fall behind "
        "before its updates are coalesced instead of queued (the kernel would otherwise "
        "let megabytes of old states pile up).",
    )


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented RFC 6455 text frame, as a server sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class Update:
    """One facility state, rendered (and framed) at most once per language."""

    __slots__ = ("created", "facility", "frames", "state", "texts")

    def __init__(self, state: FacilityState) -> None:
        self.facility = state.facility
        self.state = state
        self.texts: dict[str, str | None] = {}
        self.frames: dict[str, bytes | None] = {}
        self.created = time.monotonic()

    def text(self, language: str, render: Render) -> str | None:
        try:
            return self.texts[language]
        except KeyError:
            text = self.texts[language] = render(self.state)
            return text

    def frame(self, language: str, render: Render) -> bytes | None:
        try:
            return self.frames[language]
        except KeyError:
            text = self.text(language, render)
            frame = self.frames[language] = None if text is None else text_frame(text)
            return frame


class DirectSink:
    """uvicorn's websockets-sansio connection, written to without awaiting anything.

    ASGI can neither tell whether a socket would block, nor send several messages
    in one write, nor abort a connection; this reaches the protocol object behind
    the server's ``send`` (kept by ``ServerSend``) for that. Only data frames are
    written here; the protocol keeps doing the handshake, pings and close.
    """

    def __init__(self, protocol: Any, send_buffer_bytes: int) -> None:
        self.protocol = protocol
        self.transport: asyncio.Transport = protocol.transport
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
        self.transport.set_write_buffer_limits(high=send_buffer_bytes // 4)

    @classmethod
    def of(cls, websocket: Any, send_buffer_bytes: int) -> DirectSink | None:
        """The direct sink for this Starlette WebSocket; None when it is not served by
        the uvicorn protocol this was written for, or an extension was negotiated."""
        protocol = getattr(websocket.scope.get(SERVER_SEND), "__self__", None)
        conn = getattr(protocol, "conn", None)
        if (
            isinstance(getattr(protocol, "transport", None), asyncio.Transport)
            and isinstance(getattr(protocol, "writable", None), asyncio.Event)
            and isinstance(getattr(protocol, "close_sent", None), bool)
            and isinstance(getattr(protocol, "disconnected", None), bool)
            and getattr(conn, "extensions", None) == []
        ):
            return cls(protocol, send_buffer_bytes)
        return None

    def open(self) -> bool:
        protocol = self.protocol
        return not (protocol.close_sent or protocol.disconnected or self.transport.is_closing())

    def writable(self) -> bool:
        """Below the transport's high-water mark (uvicorn's flow control)."""
        return bool(self.protocol.writable.is_set())

    async def until_writable(self) -> None:
        await self.protocol.writable.wait()

    def write(self, frames: list[bytes]) -> None:
        self.transport.write(b"".join(frames))

    def abort(self) -> None:
        self.transport.abort()


class ServerSend:
    """ASGI middleware, outermost: keeps the server's own ``send`` of each WebSocket in
    its scope (Starlette wraps the one an endpoint sees), for ``DirectSink.of``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


class LiveClient:
    """One WebSocket: a pending slot per facility (latest wins)."""

    __slots__ = (
        "blocked_since",
        "direct",
        "dropped",
        "language",
        "pending",
        "render",
        "resume",
        "sender",
        "wakeup",
        "websocket",
    )

    def __init__(
        self, websocket: Any, language: str, render: Render, direct: DirectSink | None
    ) -> None:
        self.websocket = websocket
        self.language = language
        self.render = render
        self.direct = direct
        self.pending: dict[str, Update] = {}
        self.blocked_since: float | None = None
        self.dropped = False
        self.resume: asyncio.Task[None] | None = None  # direct: waits for the socket to drain
        self.sender: asyncio.Task[None] | None = None  # ASGI: sends for this client
        self.wakeup = asyncio.Event() if direct is None else None

    def push(self, update: Update) -> bool:
        """Queue the update; True when it replaced one not yet sent."""
        replaced = update.facility in self.pending
        self.pending[update.facility] = update
        if self.wakeup is not None:
            self.wakeup.set()
        return replaced

    def take(self) -> list[Update]:
        batch = list(self.pending.values())
        self.pending.clear()
        return batch


class FanoutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "ruuhka_live_messages_sent",
            "Facility updates written to WebSockets.",
            registry=registry,
        )
        self.coalesced = Counter(
            "ruuhka_live_messages_coalesced",
            "Updates replaced by a newer state of the same facility before they were sent.",
            registry=registry,
        )
        self.dropped = Counter(
            "ruuhka_live_clients_dropped",
            "WebSocket clients dropped because their socket took no data for send_timeout_s.",
            registry=registry,
        )


class Fanout:
    """The live clients. Everything here runs on the event loop."""

    def __init__(
        self,
        settings: LiveSettings,
        on_clients: Callable[[int], None],
        metrics: FanoutMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.clients: set[LiveClient] = set()
        self.latest: dict[str, Update] = {}
        self._on_clients = on_clients
        self._metrics = metrics
        self._interval = 1 / settings.max_rate_hz
        self._last_flush = float("-inf")
        self._flush_at: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def publish(self, state: FacilityState) -> None:
        update = self.latest[state.facility] = Update(state)
        if not self.clients:
            return
        coalesced = 0
        for client in self.clients:
            coalesced += client.push(update)
        if coalesced and self._metrics:
            self._metrics.coalesced.inc(coalesced)
        self._schedule()

    async def serve(
        self, websocket: Any, language: str, render: Render, initial: Iterable[FacilityState]
    ) -> None:
        """Serve one accepted WebSocket until the peer leaves or is dropped.

        ``websocket`` is Starlette's; ``render`` makes the text for a state (None = skip).
        """
        direct = DirectSink.of(websocket, self.settings.send_buffer_bytes)
        client = LiveClient(websocket, language, render, direct)
        for state in initial:
            client.push(self._snapshot(state))
        self.clients.add(client)
        self._on_clients(len(self.clients))
        self._ensure_watchdog()
        if direct is None:
            client.sender = asyncio.create_task(self._send_asgi(client))
        else:
            self._schedule()
        try:
            await _drain(websocket)
        finally:
            self.clients.discard(client)
            self._on_clients(len(self.clients))
            for task in (client.sender, client.resume):
                if task is not None:
                    task.cancel()

    def _snapshot(self, state: FacilityState) -> Update:
        """The facility's current update, shared by clients connecting at about the same
        time: a thousand browsers arriving at once cost one rendering per facility."""
        update = self.latest.get(state.facility)
        if (
            update is None
            or update.state is not state
            or update.created < time.monotonic() - SNAPSHOT_FRESH_S
        ):
            update = self.latest[state.facility] = Update(state)
        return update

    # Direct clients: one pass over all of them, at most max_rate_hz times a second.

    def _schedule(self) -> None:
        if self._flush_at is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + self._interval - loop.time())
        self._flush_at = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        loop = asyncio.get_running_loop()
        now = self._last_flush = loop.time()
        sent = 0
        for client in self.clients:
            direct = client.direct
            if direct is None or not client.pending or client.dropped:
                continue
            if not direct.open():
                client.pending.clear()  # its endpoint ends as the disconnect arrives
                continue
            if not direct.writable():
                # Not awaited: its updates wait (and coalesce) until the socket drains.
                if client.blocked_since is None:
                    client.blocked_since = now
                    client.resume = loop.create_task(self._resume(client, direct))
                continue
            batch = client.take()
            frames = [f for f in (u.frame(client.language, client.render) for u in batch) if f]
            direct.write(frames)
            sent += len(batch)
        if sent and self._metrics:
            self._metrics.sent.inc(sent)

    async def _resume(self, client: LiveClient, direct: DirectSink) -> None:
        await direct.until_writable()
        client.blocked_since = None
        client.resume = None
        self._schedule()

    # ASGI clients: a task each, paced the same way.

    async def _send_asgi(self, client: LiveClient) -> None:
        assert client.wakeup is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                await client.wakeup.wait()
                client.wakeup.clear()
                batch = client.take()
                client.blocked_since = loop.time()
                for update in batch:
                    text = update.text(client.language, client.render)
                    if text is not None:
                        await client.websocket.send_text(text)
                client.blocked_since = None
                if self._metrics:
                    self._metrics.sent.inc(len(batch))
                await asyncio.sleep(self._interval)
        except (WebSocketDisconnect, RuntimeError):
            return  # the peer went away
        except asyncio.CancelledError:
            if client.dropped:
                await _close(client.websocket)
            raise

    # Both: drop whoever has been blocked for longer than send_timeout_s.

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="live-watchdog")

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.settings.send_timeout_s
        while self.clients:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = loop.time()
            for client in list(self.clients):
                since = client.blocked_since
                if since is not None and now - since > timeout and not client.dropped:
                    self._drop(client)

    def _drop(self, client: LiveClient) -> None:
        client.dropped = True
        client.pending.clear()
        if self._metrics:
            self._metrics.dropped.inc()
        log.info("dropped a live client: no data taken for %.0f s", self.settings.send_timeout_s)
        if client.direct is not None:
            client.direct.abort()  # a close frame would wait behind the unread data
        elif client.sender is not None:
            client.sender.cancel()  # which sends a close frame if it can


async def _drain(websocket: Any) -> None:
    """Read (and ignore) what the client sends, until it leaves or is aborted."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


async def _close(websocket: Any) -> None:
    """Best effort under a server this cannot abort: a close frame, if it gets out."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code=CLOSE_DROPPED), timeout=1)
