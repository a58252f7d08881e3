"""The hub under attack from the internet, as its README runs it (behind a proxy it
trusts on loopback for X-Forwarded-For), under ``ulimit -n 1024`` by default.

One hub with crews on a private broker and SQLite store; the crew ``carol`` has
logged in from her phone before. Then, one after another:

1. login flood: ``--concurrent`` wrong logins at once from one address, round
   after round for ``--seconds``;
2. the same spread over one IPv6 /64 (every try from another address in it);
3. the lock-out attempt: guesses at ``carol`` from ever new addresses, a flood
   and then a steady stream, while carol logs in from her phone;
4. slowloris: 1,000 connections from one address (127.0.0.2) trickling a
   request head, one header line a second, reopened as the hub closes them;
5. WebSocket hoarding: 1,200 live-view WebSockets from one (forwarded) address.

Throughout, another client asks the public API (/api/v1/facilities) every
0.2 s and the hub's RSS is read from /proc every 0.05 s. Figures come from what
the hub answers: a password was checked when the login form answered 401 (a
refused try gets 429 or 503 before any hashing).

Goals (exit status 0): at most 30 guesses checked per address (and /64) in the
throttle's 15-minute window, peak RSS growth < 150 MB over the hub's own idle
figure measured first, the public API's worst answer < 2 s, and carol's own login
succeeding during the attack.

    ruuhka-bench attack [--seconds 15] [--concurrent 100] [--open-files 1024]
"""

from __future__ import annotations

import argparse
import random
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hubrun import HubProcess, device_facilities, write_hub_config  # bench/, next to this file
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect as ws_connect
from wsfleet import raise_fd_limit

from ruuhka.broker import free_port, start_broker

GOAL_GUESSES = 30
GOAL_RSS_MB = 150.0
GOAL_LATENCY_S = 2.0
PASSWORD = "carol's long passphrase"
PHONE_ADDRESS = "203.0.113.10"
FORM = {"csrf": "made-up-token"}  # the login form's token is a double submit
COOKIE = "ruuhka_login_csrf=made-up-token"


@dataclass
class Watch:
    """The public API's answers and the hub's RSS, sampled while scenarios run."""

    hub: HubProcess
    stop: threading.Event = field(default_factory=threading.Event)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    failures: list[tuple[float, str]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (at, bytes)

    def start(self) -> None:
        threading.Thread(target=self._api, daemon=True).start()
        threading.Thread(target=self._rss, daemon=True).start()

    def _api(self) -> None:
        with httpx.Client(base_url=self.hub.url, timeout=10) as http:
            while not self.stop.wait(0.2):
                began = time.monotonic()
                try:
                    response = http.get("/api/v1/facilities",
                                        headers={"X-Forwarded-For": "192.0.2.200"})  # fmt: skip
                    if response.status_code != 200:
                        self.failures.append((began, f"HTTP {response.status_code}"))
                except httpx.HTTPError as exc:
                    self.failures.append((began, type(exc).__name__))
                self.latencies.append((began, time.monotonic() - began))

    def _rss(self) -> None:
        status = Path(f"/proc/{self.hub.process.pid}/status")
        while not self.stop.wait(0.05):
            try:
                text = status.read_text()
            except OSError:
                return
            kb = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
            self.rss.append((time.monotonic(), kb * 1024))

    def worst_s(self, since: float, until: float) -> float:
        return max((s for at, s in self.latencies if since <= at <= until), default=0.0)

    def peak_rss(self, since: float, until: float) -> int:
        return max((b for at, b in self.rss if since <= at <= until), default=0)


def login(http: httpx.Client, address: str, name: str, password: str) -> int:
    response = http.post(
        "/crew/login?lang=en",
        data={**FORM, "name": name, "password": password},
        headers={"X-Forwarded-For": address, "Cookie": COOKIE},
    )
    return response.status_code


def flood(hub: HubProcess, tries: list[tuple[str, str, str]], workers: int) -> Counter[int]:
    limits = httpx.Limits(max_connections=workers)
    with (
        httpx.Client(base_url=hub.url, timeout=60, limits=limits) as http,
        ThreadPoolExecutor(workers) as pool,
    ):
        return Counter(pool.map(lambda t: login(http, *t), tries))


def rounds(hub: HubProcess, seconds: float, make: Callable[[int], list[tuple[str, str, str]]],
           workers: int) -> Counter[int]:  # fmt: skip
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < deadline:
        statuses += flood(hub, make(round_), workers)
        round_ += 1
    return statuses


class Phone:
    """carol's phone: a browser that has logged in before (it has the device cookie)."""

    def __init__(self, hub: HubProcess) -> None:
        self.http = httpx.Client(
            base_url=hub.url, timeout=60, headers={"X-Forwarded-For": PHONE_ADDRESS}
        )

    def login(self) -> int:
        page = self.http.get("/crew/login?lang=en")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        form = {"csrf": token, "name": "carol", "password": PASSWORD}
        return self.http.post("/crew/login?lang=en", data=form).status_code


def slowloris(port: int, seconds: float, count: int = 1000) -> Counter[str]:
    """``count`` connections from 127.0.0.2, one header line a second each, reopened
    each second as the hub closes them; how they ended."""
    selector = selectors.DefaultSelector()
    endings: Counter[str] = Counter()

    def open_one() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: hub\r\n")
        except OSError:
            sock.close()
            endings["refused at connect"] += 1
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    def end(sock: socket.socket) -> None:
        try:
            data = sock.recv(100) or b"closed"
        except OSError:
            data = b"reset"
        endings[data.split(b"\r\n")[0].decode(errors="replace")] += 1
        selector.unregister(sock)
        sock.close()

    deadline = time.monotonic() + seconds
    tick = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - tick >= 1.0:
            tick = time.monotonic()
            for key in list(selector.get_map().values()):
                try:
                    key.fileobj.send(b"X-Slow: yes\r\n")  # type: ignore[union-attr]
                except OSError:
                    end(key.fileobj)  # type: ignore[arg-type]
            for _ in range(count - len(selector.get_map())):
                open_one()
        for key, _ in selector.select(timeout=0.1):
            end(key.fileobj)  # type: ignore[arg-type]
    endings["held at the end"] = len(selector.get_map())
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return endings


def hoard(hub: HubProcess, count: int, hold_s: float) -> Counter[str]:
    url = hub.url.replace("http", "ws") + "/api/v1/live"
    held = []
    lock = threading.Lock()

    def one(_: int) -> str:
        try:
            ws = ws_connect(url, additional_headers={"X-Forwarded-For": "198.51.100.77"},
                            open_timeout=30, max_size=None)  # fmt: skip
        except InvalidStatus as exc:
            return f"refused {exc.response.status_code}"
        except (OSError, WebSocketException) as exc:
            return f"failed ({type(exc).__name__})"
        with lock:
            held.append(ws)
        return "accepted"

    with ThreadPoolExecutor(64) as pool:
        outcome = Counter(pool.map(one, range(count)))
    time.sleep(hold_s)
    for ws in held:
        ws.close()
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per flood scenario")
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--open-files", type=int, default=1024, help="the hub's ulimit -n")
    parser.add_argument("--checks", type=int, help="[crew] max_concurrent_logins (default: its)")
    args = parser.parse_args()
    raise_fd_limit(8192)
    with tempfile.TemporaryDirectory(prefix="ruuhka-attack-") as tmp:
        base = Path(tmp)
        with start_broker(base / "broker", prefer="mosquitto") as broker:
            port = free_port()
            config = base / "hub.toml"
            write_hub_config(config, broker.url, base / "hub.db", port, "bench-attack",
                             device_facilities(["gate-1", "gate-2"]))  # fmt: skip
            text = config.read_text(encoding="utf-8")
            crew = f'\n[crew]\ndb = "sqlite:///{base / "crew.db"}"\n'
            if args.checks:
                crew += f"max_concurrent_logins = {args.checks}\n"
            config.write_text(text + crew, encoding="utf-8")
            add = subprocess.run(
                [sys.executable, "-m", "ruuhka", "crew", "--config", str(config), "add",
                 "carol", "--all", "--password-stdin"],
                input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if add.returncode:
                print(add.stderr, file=sys.stderr)
                return 2
            hub = HubProcess(config, port, base / "hub.log", open_files=args.open_files)
            try:
                hub.wait_connected()
                return attack(hub, args)
            finally:
                hub.stop()


def attack(hub: HubProcess, args: argparse.Namespace) -> int:
    phone = Phone(hub)
    assert phone.login() == 303, "carol's first login"
    watch = Watch(hub)
    watch.start()
    time.sleep(2)
    idle = watch.peak_rss(0, time.monotonic())
    calm = watch.worst_s(0, time.monotonic())
    print(f"hub under ulimit -n {args.open_files}; before the attack (the baseline): RSS "
          f"{idle / 2**20:.0f} MB after carol's first login, "
          f"public API worst {calm:.2f} s\n")  # fmt: skip
    rows = []
    crew_logins: list[int] = []

    def scenario(name: str, run: Callable[[], Counter]) -> Counter:
        began = time.monotonic()
        outcome = run()
        ended = time.monotonic()
        rows.append((name, outcome, watch.worst_s(began, ended),
                     watch.peak_rss(began, ended) - idle))  # fmt: skip
        time.sleep(1)
        return outcome

    def single(r: int) -> list[tuple[str, str, str]]:
        return [("198.51.100.1", f"guess{r}x{i}", "password1") for i in range(args.concurrent)]

    one_address = scenario("login flood, one address",
                           lambda: rounds(hub, args.seconds, single, args.concurrent))  # fmt: skip

    def spread(r: int) -> list[tuple[str, str, str]]:
        return [(f"2001:db8:1:2:{random.getrandbits(16):x}:{random.getrandbits(16):x}::1",
                 f"v6guess{r}x{i}", "password1") for i in range(args.concurrent)]  # fmt: skip

    over_64 = scenario("login flood, one /64", lambda: rounds(hub, args.seconds, spread,
                                                              args.concurrent))  # fmt: skip

    def lockout() -> Counter[int]:
        addresses = (f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}" for n in range(1, 10**6))
        outcome = flood(hub, [(next(addresses), "carol", "password1") for _ in range(150)], 150)
        deadline = time.monotonic() + args.seconds
        with httpx.Client(base_url=hub.url, timeout=60) as http:
            while time.monotonic() < deadline:
                outcome[login(http, next(addresses), "carol", "password1")] += 1
                if not crew_logins and time.monotonic() > deadline - args.seconds / 2:
                    crew_logins.append(phone.login())  # in the middle of it
                time.sleep(0.2)
        return outcome

    account = scenario("lock-out attempt at carol", lockout)
    scenario("slowloris, 1,000 from one address", lambda: slowloris(hub.port, args.seconds))
    scenario("1,200 WebSockets from one address", lambda: hoard(hub, 1200, 3))
    crew_logins.append(phone.login())
    watch.stop.set()

    for name, outcome, worst, growth in rows:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(outcome.items(), key=str))
        print(f"{name}\n    answers {counts}\n    public API worst {worst:.2f} s, "
              f"RSS growth {growth / 2**20:.0f} MB")  # fmt: skip
    checked = {"one address": one_address[401], "one /64": over_64[401], "carol": account[401]}
    peak = max(growth for *_, growth in rows) / 2**20
    worst = max(worst for _, _, worst, _ in rows)
    crew_ok = all(status == 303 for status in crew_logins)
    print(f"\npublic API: {len(watch.latencies)} answers, {len(watch.failures)} not 200"
          f"{' ' + str(watch.failures[:5]) if watch.failures else ''}")  # fmt: skip
    goals = [
        (f"guesses checked: one address {checked['one address']}, one /64 "
         f"{checked['one /64']} (at carol: {checked['carol']})",
         max(checked["one address"], checked["one /64"]) <= GOAL_GUESSES, f"<= {GOAL_GUESSES}"),
        (f"peak RSS growth {peak:.0f} MB", peak < GOAL_RSS_MB, f"< {GOAL_RSS_MB:.0f} MB"),
        (f"public API worst {worst:.2f} s", worst < GOAL_LATENCY_S and not watch.failures,
         f"< {GOAL_LATENCY_S:.0f} s, all 200"),
        (f"carol's own login: {crew_logins}", crew_ok, "303 during and after"),
    ]  # fmt: skip
    for text, ok, goal in goals:
        print(f"{'ok  ' if ok else 'MISS'} {text} (goal {goal})")
    return 0 if all(ok for _, ok, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
