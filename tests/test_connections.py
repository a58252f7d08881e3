"""Connections under attack: slow clients are cut off, one address cannot take the
hub's connections, and /healthz and the public page answer throughout.

The attackers connect from other loopback addresses (127.0.0.2, ...): 127.0.0.1 is
the trusted proxy address, which is not held to the per-address cap."""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from hub.config import HttpSettings
from hub.connections import effective
from ruuhka.broker import Broker, free_port
from tests.conftest import HUB_CONFIG, HubProcess, http_get


@contextmanager
def hub_with(
    tmp_path: Path, broker: Broker, http: str, open_files: int | None = None
) -> Iterator[HubProcess]:
    port = free_port()
    config = tmp_path / "hub.toml"
    text = HUB_CONFIG.format(
        mqtt_url=broker.url, db=tmp_path / "hub.db", port=port, client_id=f"conn-{port}"
    )
    config.write_text(text.replace("[http]\n", "[http]\n" + http + "\n", 1), encoding="utf-8")
    hub = HubProcess(config, port, tmp_path / "hub.log", open_files=open_files).start()
    try:
        yield hub
    finally:
        hub.stop()


def answer(sock: socket.socket) -> bytes:
    """What the hub sent before closing, or b"" while the connection is still open."""
    sock.settimeout(0)
    try:
        return sock.recv(200) or b"(closed)"
    except BlockingIOError:
        return b""
    except OSError:
        return b"(reset)"


class Slowloris(threading.Thread):
    """Keeps ``count`` connections from ``source`` trickling a request head, one header
    line a second, and each second reopens those the hub closed; notes how they ended."""

    def __init__(self, port: int, source: str, count: int) -> None:
        super().__init__(name="slowloris", daemon=True)
        self.port, self.source, self.count = port, source, count
        self.stop = threading.Event()
        self.endings: Counter[str] = Counter()
        self.longest_s = 0.0
        self.selector = selectors.DefaultSelector()

    def open(self) -> None:
        sock = socket.socket()
        sock.bind((self.source, 0))
        try:
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: hub\r\n")
        except OSError:
            sock.close()
            self.endings["refused at connect"] += 1
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, time.monotonic())

    def ended(self, key: selectors.SelectorKey) -> None:
        sock: socket.socket = key.fileobj  # type: ignore[assignment]
        data = answer(sock)
        self.endings[data.split(b"\r\n")[0].decode(errors="replace")] += 1
        self.longest_s = max(self.longest_s, time.monotonic() - key.data)
        self.selector.unregister(sock)
        sock.close()

    def run(self) -> None:
        for _ in range(self.count):
            self.open()
        last_line = time.monotonic()
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.1):
                self.ended(key)
            if time.monotonic() - last_line >= 1.0:  # each second: a line, and reopen
                last_line = time.monotonic()
                for key in list(self.selector.get_map().values()):
                    try:
                        key.fileobj.send(b"X-Slow: yes\r\n")  # type: ignore[union-attr]
                    except OSError:
                        self.ended(key)
                for _ in range(self.count - len(self.selector.get_map())):
                    self.open()
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


def test_a_thousand_slow_connections_from_one_address_leave_the_hub_answering(
    tmp_path: Path, broker: Broker
) -> None:
    """Under `ulimit -n 1024`: the default caps bind before the descriptors run out."""
    with hub_with(tmp_path, broker, "read_timeout_s = 3", open_files=1024) as hub:
        attack = Slowloris(hub.port, "127.0.0.2", 1000)
        attack.start()
        try:
            time.sleep(2)
            answers = []
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                answers.append(http_get(hub.url + "/healthz")[0])
                with urllib.request.urlopen(hub.url + "/?lang=en", timeout=5) as page:
                    answers.append(page.status)
                time.sleep(0.3)
        finally:
            attack.stop.set()
            attack.join(30)
    assert set(answers) == {200} and len(answers) >= 4, answers
    # Beyond the per-address cap (half of 1024 less a tenth): 503 at once; the ones
    # let in: 408 when their head had not come within the read timeout.
    assert attack.endings["HTTP/1.1 503 Service Unavailable"] > 0, attack.endings
    assert attack.endings["HTTP/1.1 408 Request Timeout"] > 0, attack.endings
    assert attack.longest_s < 3 + 5, attack.endings  # nobody was held past the timeout


def test_the_caps_per_address_and_in_total(tmp_path: Path, broker: Broker) -> None:
    http = "read_timeout_s = 60\nmax_connections = 40\nmax_connections_per_address = 15"
    with hub_with(tmp_path, broker, http) as hub:
        opened: dict[str, list[socket.socket]] = {}
        try:
            for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
                opened[source] = []
                for _ in range(20):
                    sock = socket.socket()
                    sock.bind((source, 0))
                    sock.connect(("127.0.0.1", hub.port))
                    opened[source].append(sock)
            time.sleep(1)
            refused = {
                source: sum(b"503" in answer(sock) for sock in socks)
                for source, socks in opened.items()
            }
            # 15 of each address are let in, until 40 are held in all.
            assert refused == {"127.0.0.2": 5, "127.0.0.3": 5, "127.0.0.4": 10}, refused
            assert http_get(hub.url + "/healthz")[0] == 503  # the total binds everyone
        finally:
            for socks in opened.values():
                for sock in socks:
                    sock.close()
        time.sleep(1)
        assert http_get(hub.url + "/healthz")[0] == 200


def test_websockets_per_client_address_and_in_total(tmp_path: Path, broker: Broker) -> None:
    """Counted on the client's real address, as the trusted proxy forwards it."""
    http = "max_websockets = 6\nmax_websockets_per_address = 3\napi_rate_per_s = 0"
    with hub_with(tmp_path, broker, http) as hub:
        url = hub.url.replace("http", "ws") + "/api/v1/live"

        def live(address: str):  # type: ignore[no-untyped-def]
            return ws_connect(url, additional_headers={"X-Forwarded-For": address}, open_timeout=10)

        def refused(address: str) -> tuple[int, str | None]:
            with pytest.raises(InvalidStatus) as refusal:
                live(address)
            response = refusal.value.response
            return response.status_code, response.headers.get("Retry-After")

        held = [live("203.0.113.1") for _ in range(3)]
        assert refused("203.0.113.1") == (429, "10")
        held += [live(f"2001:db8:5:5::{n}") for n in (1, 2, 3)]
        assert refused("2001:db8:5:5::4") == (429, "10")  # one /64
        assert refused("198.51.100.9") == (503, "10")  # six in all
        held.pop().close()
        time.sleep(0.5)
        held.append(live("198.51.100.9"))
        for ws in held:
            ws.close()


def test_the_default_caps_follow_the_open_file_limit() -> None:
    small = effective(HttpSettings(), files=1024)
    assert (small.connections, small.connections_per_address) == (922, 461)
    assert (small.websockets, small.websockets_per_address) == (829, 414)
    # With the usual server limits, bench/fanout.py's 1,000 WebSockets from one
    # address fit, and so does a large carrier-grade NAT.
    assert effective(HttpSettings(), files=65536).websockets_per_address > 20_000
    configured = effective(HttpSettings(max_connections=100, max_websockets_per_address=7))
    assert (configured.connections, configured.connections_per_address) == (100, 50)
    assert (configured.websockets, configured.websockets_per_address) == (90, 7)
    assert os.sysconf("SC_OPEN_MAX") >= 1024
