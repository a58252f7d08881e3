"""A fleet of WebSocket clients in several processes, for the fan-out and soak benchmarks.

Each fleet process opens its share of the connections and reads with a minimal
RFC 6455 client (an asyncio Protocol: handshake, then unmasked server frames).
The websockets library's own client spends several times more CPU per message
than the server under test, and on a 2-core machine the readers would then be
what is measured. A fleet process can be held to given CPUs (``--cpus``, as
``taskset`` does), so that every server under test meets the same fleet.

Two ways to read, chosen per fleet:

- ``record`` (bench/fanout.py): per message, the receive time and the state's
  ``updated_at``, which the benchmark publishes as the change's identity and time
  of publishing. Nothing else is parsed while messages arrive; what arrived is
  matched against what was published only when asked (``stats``).
- ``latest`` (bench/soak.py): the newest raw message per facility, so that every
  client's last view can be checked against the store.

Protocol between the parent and a fleet process (lines on stdin/stdout, JSON):
the process prints {"ready": n} once its n clients are open; the parent writes
"dump" for everyone's newest message per facility (``latest``), "stats FILE T0
T1" for how each change published in [T0, T1) (wall-clock seconds) reached each
client (``record``; FILE lists every change published, see ``Fleet.stats``), and
"quit" to end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from array import array
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_ID = b'"id":"'
_UPDATED = b'"updated_at":"'
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BIN_S = 1e-4  # latency histograms count in bins of 0.1 ms, rounded up
CONNECTING = 64  # handshakes in flight per fleet process


def stamp_us(text: str) -> int:
    """An RFC 3339 time as integer microseconds since the epoch (exact, no float)."""
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1)


class Stamps:
    """The ``updated_at`` texts seen by one fleet process, each kept once, by number."""

    def __init__(self) -> None:
        self.number: dict[bytes, int] = {}

    def of(self, text: bytes) -> int:
        number = self.number.get(text)
        if number is None:
            number = self.number[text] = len(self.number)
        return number


class Reader(asyncio.Protocol):
    def __init__(
        self, host: str, path: str, opened: asyncio.Future[None], stamps: Stamps | None
    ) -> None:
        self.request_path = path
        self.host = host
        self.opened = opened
        self.stamps = stamps
        self.key = base64.b64encode(os.urandom(16))
        self.buffer = b""
        self.upgraded = False
        self.closed = False
        self.latest: dict[bytes, bytes] = {}
        self.numbers = array("l")  # record: the updated_at of each message received ...
        self.times = array("d")  # ... and when (time.time())
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
                self._message(buffer, pos + header, pos + header + length, now)
            elif opcode == 9:  # ping: the server drops clients that do not answer
                self._pong(buffer[pos + header : pos + header + length])
            elif opcode == 8:
                self.closed = True
            pos += header + length
        self.buffer = buffer[pos:]

    def _message(self, buffer: bytes, start: int, end: int, now: float) -> None:
        if self.stamps is None:
            at = buffer.find(_ID, start, end) + len(_ID)
            self.latest[buffer[at : buffer.find(b'"', at, end)]] = buffer[start:end]
            return
        at = buffer.find(_UPDATED, start, end)
        if at >= 0:
            at += len(_UPDATED)
            self.numbers.append(self.stamps.of(buffer[at : buffer.find(b'"', at, end)]))
            self.times.append(now)

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

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(str(exc)))


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def tally(readers: list[Reader], stamps: Stamps, path: Path, t0: float, t1: float) -> dict:
    """How each change published in [t0, t1) reached each of these clients.

    ``path`` holds {"changes": [[facility, updated_at in µs], ...]}, every change
    published, in order. Per client and change: "own" is when that change itself
    first arrived; "view" is when the client first held it or a newer state of the
    same facility (a change superseded before it was sent arrives only as a newer
    one). Latencies are counted in histograms of ``BIN_S`` bins; a change that
    never arrived is in no bin, so the parent counts it as infinitely late.
    """
    changes = json.loads(path.read_text())["changes"]
    index = {us: n for n, (_, us) in enumerate(changes)}
    known = [-1] * len(stamps.number)
    for text, number in stamps.number.items():
        known[number] = index.get(stamp_us(text.decode()), -1)
    lo, hi = round(t0 * 1e6), round(t1 * 1e6)
    chains: dict[str, list[int]] = {}
    for n, (facility, us) in enumerate(changes):
        if us >= lo:  # older changes cannot bring a change of the window up to date
            chains.setdefault(facility, []).append(n)
    published = [us / 1e6 for _, us in changes]
    window = [lo <= us < hi for _, us in changes]
    own: Counter[int] = Counter()
    view: Counter[int] = Counter()
    unknown = duplicates = busiest = 0
    for reader in readers:
        first: dict[int, float] = {}
        for number, at in zip(reader.numbers, reader.times, strict=True):
            n = known[number]
            if n < 0:
                unknown += 1
            elif n in first:
                duplicates += 1
            else:
                first[n] = at
        for chain in chains.values():
            newest = math.inf
            received = 0
            for n in reversed(chain):
                arrived = first.get(n, math.inf)
                newest = min(newest, arrived)
                if window[n]:
                    if arrived < math.inf:
                        own[math.ceil(max(0.0, arrived - published[n]) / BIN_S)] += 1
                        received += 1
                    if newest < math.inf:
                        view[math.ceil(max(0.0, newest - published[n]) / BIN_S)] += 1
            busiest = max(busiest, received)
    return {
        "offered": sum(window) * len(readers),
        "own": sorted(own.items()),
        "view": sorted(view.items()),
        "unknown": unknown,
        "duplicates": duplicates,
        "busiest": busiest,  # the most changes of one facility that reached one client
        "closed": sum(r.closed for r in readers),
    }


async def open_reader(
    host: str, port: int, path: str, stamps: Stamps | None, limit: asyncio.Semaphore
) -> Reader:
    loop = asyncio.get_running_loop()
    async with limit:
        for attempt in range(50):
            opened: asyncio.Future[None] = loop.create_future()
            reader = Reader(f"{host}:{port}", path, opened, stamps)
            try:
                await loop.create_connection(lambda r=reader: r, host, port)
                await asyncio.wait_for(opened, 30)
                return reader
            except (OSError, TimeoutError):
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def fleet_main(url: str, clients: int, mode: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    stamps = Stamps() if mode == "record" else None
    limit = asyncio.Semaphore(CONNECTING)
    readers = list(
        await asyncio.gather(
            *(open_reader(host, port, path, stamps, limit) for _ in range(clients))
        )
    )
    print(json.dumps({"ready": clients}), flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := (await stdin.readline()).decode().split():
        if line[0] == "dump":
            out = [{k.decode(): json.loads(v) for k, v in r.latest.items()} for r in readers]
            print(json.dumps({"latest": out}), flush=True)
        elif line[0] == "stats" and stamps is not None:
            result = tally(readers, stamps, Path(line[1]), float(line[2]), float(line[3]))
            print(json.dumps({"stats": result}), flush=True)
        elif line[0] == "quit":
            break
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()


class Fleet:
    """Parent side: ``processes`` fleet processes sharing ``clients`` connections,
    each held to ``cpus`` when given."""

    def __init__(
        self,
        url: str,
        clients: int,
        processes: int,
        log_dir: Path,
        mode: str = "latest",
        cpus: set[int] | None = None,
    ) -> None:
        self.children: list[subprocess.Popen[str]] = []
        share, extra = divmod(clients, processes)
        pin = ["--cpus", ",".join(map(str, sorted(cpus)))] if cpus else []
        for number in range(processes):
            count = share + (1 if number < extra else 0)
            command = [sys.executable, str(Path(__file__).resolve()), url, str(count)]
            with (log_dir / f"fleet-{number}.log").open("ab") as err:
                self.children.append(
                    subprocess.Popen(
                        [*command, "--mode", mode, *pin],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                    )
                )
        try:
            for child in self.children:
                self._answer(child, "ready")
        except BaseException:
            self.close()
            raise

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

    def stats(self, changes: list[tuple[str, int]], t0: float, t1: float, path: Path) -> dict:
        """Every process's ``tally`` of the changes published in [t0, t1), added up.

        ``changes``: every change published so far, (facility, updated_at in µs)."""
        path.write_text(json.dumps({"changes": changes}))
        own: Counter[int] = Counter()
        view: Counter[int] = Counter()
        total: dict[str, int] = {"offered": 0, "unknown": 0, "duplicates": 0, "closed": 0}
        busiest = 0
        for part in self.ask(f"stats {path} {t0!r} {t1!r}", "stats"):
            own.update(dict(part["own"]))
            view.update(dict(part["view"]))
            for key in total:
                total[key] += part[key]
            busiest = max(busiest, part["busiest"])
        return {**total, "own": own, "view": view, "busiest": busiest}

    def latest(self) -> list[dict[str, Any]]:
        """Every client's newest message per facility, as parsed JSON."""
        return [client for part in self.ask("dump", "latest") for client in part]

    def cpu_s(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for child in self.children:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

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
    parser.add_argument("--mode", choices=("record", "latest"), default="latest")
    parser.add_argument("--cpus", help="run only on these CPUs, e.g. 1 or 2,3 (as taskset -c)")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    raise_fd_limit(args.clients + 64)
    asyncio.run(fleet_main(args.url, args.clients, args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
