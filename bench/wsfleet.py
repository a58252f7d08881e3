"""A fleet of WebSocket clients in several processes, for the fan-out and soak benchmarks.

Each fleet process opens its share of the connections and reads with a minimal
RFC 6455 client (an asyncio Protocol: handshake, then unmasked server frames).
The websockets library's own client spends several times more CPU per message
than the server under test, and on a 2-core machine the readers would then be
what is measured. Per message a client notes its receive time and the facility's
``updated_at`` (the benchmark publishes it as the time of publishing), and keeps
the newest raw message per facility so that its last view can be checked.
The "clear" command forgets the latencies so far.

Protocol between the parent and a fleet process (lines on stdin/stdout, JSON):
the process prints {"ready": n} once its n clients are open; the parent writes
"dump" for everyone's newest message per facility, "stats T0 T1" for the
latencies of messages published in [T0, T1) (wall-clock seconds), "quit" to end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_ID = b'"id":"'
_UPDATED = b'"updated_at":"'


@dataclass
class Tally:
    """What all clients of one process received: (publish time, latency) per message."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    closed: int = 0


class Reader(asyncio.Protocol):
    def __init__(
        self, host: str, path: str, tally: Tally, opened: asyncio.Future[None], samples: bool
    ) -> None:
        self.samples = samples
        self.request_path = path
        self.host = host
        self.tally = tally
        self.opened = opened
        self.key = base64.b64encode(os.urandom(16))
        self.buffer = b""
        self.upgraded = False
        self.latest: dict[bytes, bytes] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            b"GET " + self.request_path.encode() + b" HTTP/1.1\r\nHost: " + self.host.encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + self.key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )  # fmt: skip

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            self._check_handshake(buffer[:end])
            buffer = buffer[end + 4 :]
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length, header = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < header + length:
                break
            opcode = buffer[pos] & 0x0F
            if opcode == 1:
                self._message(buffer[pos + header : pos + header + length], now)
            elif opcode == 9:  # ping: the server drops clients that do not answer
                self._pong(buffer[pos + header : pos + header + length])
            elif opcode == 8:
                self.tally.closed += 1
            pos += header + length
        self.buffer = buffer[pos:]

    def _pong(self, payload: bytes) -> None:
        """A client's frames are masked (RFC 6455 section 5.3); pings carry <= 125 bytes."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(bytes((0x8A, 0x80 | len(payload))) + mask + masked)

    def _check_handshake(self, head: bytes) -> None:
        accept = base64.b64encode(hashlib.sha1(self.key + _GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(head[:200].decode(errors="replace")))
            return
        self.upgraded = True
        if not self.opened.done():
            self.opened.set_result(None)

    def _message(self, message: bytes, now: float) -> None:
        start = message.find(_ID) + len(_ID)
        self.latest[message[start : message.find(b'"', start)]] = message
        at = message.find(_UPDATED) if self.samples else -1
        if at >= 0:
            at += len(_UPDATED)
            published = datetime.fromisoformat(message[at : message.find(b'"', at)].decode())
            stamp = published.timestamp()
            self.tally.samples.append((stamp, now - stamp))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(str(exc)))


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def fleet_main(url: str, clients: int, samples: bool) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    tally = Tally()
    readers: list[Reader] = []
    for _ in range(clients):
        for attempt in range(50):
            opened: asyncio.Future[None] = loop.create_future()
            reader = Reader(f"{host}:{port}", path, tally, opened, samples)
            try:
                await loop.create_connection(lambda r=reader: r, host, port)
                await asyncio.wait_for(opened, 30)
                break
            except (OSError, TimeoutError):
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
        readers.append(reader)
    print(json.dumps({"ready": clients}), flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := (await stdin.readline()).decode().split():
        if line[0] == "dump":
            out = [{k.decode(): json.loads(v) for k, v in r.latest.items()} for r in readers]
            print(json.dumps({"latest": out}), flush=True)
        elif line[0] == "stats":
            t0, t1 = float(line[1]), float(line[2])
            latencies = [lat for at, lat in tally.samples if t0 <= at < t1]
            print(json.dumps({"latencies": latencies, "closed": tally.closed}), flush=True)
        elif line[0] == "clear":
            tally.samples.clear()
            print(json.dumps({"cleared": True}), flush=True)
        elif line[0] == "quit":
            break
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()


class Fleet:
    """Parent side: ``processes`` fleet processes sharing ``clients`` connections."""

    def __init__(
        self, url: str, clients: int, processes: int, log_dir: Path, samples: bool = True
    ) -> None:
        self.children: list[subprocess.Popen[str]] = []
        share, extra = divmod(clients, processes)
        for number in range(processes):
            count = share + (1 if number < extra else 0)
            with (log_dir / f"fleet-{number}.log").open("ab") as err:
                self.children.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(Path(__file__).resolve()),
                            url,
                            str(count),
                            *([] if samples else ["--no-samples"]),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                    )
                )
        for child in self.children:
            self._answer(child, "ready")

    def _answer(self, child: subprocess.Popen[str], key: str) -> Any:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"a fleet process ended early (exit {child.wait()}); see its log")
        answer = json.loads(line)
        if key not in answer:
            raise RuntimeError(f"fleet answered {line[:200]!r}, expected {key!r}")
        return answer[key]

    def ask(self, command: str, key: str) -> list[Any]:
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write(command + "\n")
            child.stdin.flush()
        return [self._answer(child, key) for child in self.children]

    def latencies(self, t0: float, t1: float) -> list[float]:
        return [lat for part in self.ask(f"stats {t0} {t1}", "latencies") for lat in part]

    def latest(self) -> list[dict[str, Any]]:
        """Every client's newest message per facility, as parsed JSON."""
        return [client for part in self.ask("dump", "latest") for client in part]

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None and child.stdin is not None:
                try:
                    child.stdin.write("quit\n")
                    child.stdin.flush()
                except BrokenPipeError:
                    pass
        for child in self.children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="One fleet process (started by Fleet).")
    parser.add_argument("url")
    parser.add_argument("clients", type=int)
    parser.add_argument("--no-samples", action="store_true", help="keep no latencies (long runs)")
    args = parser.parse_args(argv)
    raise_fd_limit(args.clients + 64)
    asyncio.run(fleet_main(args.url, args.clients, not args.no_samples))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
