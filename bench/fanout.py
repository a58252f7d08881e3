"""Fan-out capacity: how many WebSocket clients the hub holds, against a bare broadcast loop.

One Mosquitto; a publisher puts facility states on the retained state topics (as
an owner replica does), each stamped with the wall time of publishing in
``updated_at``, which is also the change's identity. Two servers take turns
serving the same fleet of clients (bench/wsfleet.py):

1. baseline: a bare ``websockets`` server that subscribes to the same topics and
   ``broadcast()``s each state, rendered once into the hub's own message shape,
   to every connection: no pacing, no coalescing, no per-client bookkeeping.
2. hub: ``ruuhka hub`` with its defaults for ``[live]``.

What counts is what the clients received, matched against what was published:
per client and change, the time from publishing to receipt. A change that did
not arrive counts as infinitely late, so it is in the percentiles; a delivery
counts only when it arrived within ``--bound`` s (1 s).

Capacity: the fixed workload is ``--facilities`` facilities (100) changing once
a second each. The client count steps up (``--steps``); at each step each server
runs ``--repeats`` times (alternately), and it holds the step when the medians
of its runs have p99 publish-to-client <= 100 ms and >= 99.9 % of deliveries
within the bound. A server's capacity is the last step it held before the first
it did not. At the largest step both hold: server CPU per 1,000 deliveries.

Coalescing, a separate row: ``--hot`` of the facilities change ``--hot-hz``
times a second, faster than the hub's ``max_rate_hz``, for ``--coalesce-clients``
clients. A change that never arrived but was followed by a newer state of the
same facility that did counts as coalesced (superseded before it was sent), not
as delivered or missing; "up to date within 1 s" is the share of changes for which
the client held that state or a newer one within the bound.

Memory: the hub's RSS, sampled every 0.5 s, with ``--rss-clients`` (1,000) clients
and the facilities; from the capacity runs at that step, or from a run of its own
when the hub did not get that far.

CPUs: the fleet runs on ``--fleet-cpus`` (default: the last CPU), the broker,
publisher and servers on the others (set as ``taskset`` does), so that both
servers meet the same fleet; on a shared machine other work still runs on both.

Goals (exit status 0): the hub holds >= 1,000 clients and >= 0.7 of the
baseline's capacity; hub RSS <= 200 MB with 1,000 clients and 100 facilities;
in the coalescing row, the hub keeps >= 99.9 % up to date within the bound
(median of the runs) and in no run sends a client more than ``max_rate_hz``
updates of one facility a second.

Usage:
    .venv/bin/python bench/fanout.py [--steps 50,100,250,500,1000,1500,2000,3000,4000]
        [--repeats 3] [--seconds 10] [--coalesce-clients 100] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hubrun import HubProcess, stop_child, write_hub_config  # bench/, next to this file
from paho.mqtt.enums import CallbackAPIVersion
from wsfleet import BIN_S, Fleet, raise_fd_limit

from hub.fanout import LiveSettings
from ruuhka.broker import Broker, free_port, start_broker
from ruuhka.contract import FacilityState, encode, facility_state_topic

GOAL_P99_MS = 100.0
GOAL_SHARE = 0.999
GOAL_HUB_CLIENTS = 1000
GOAL_CAPACITY_RATIO = 0.7
GOAL_RSS_MB = 200.0
START_TIMEOUT_S = 60.0
STATE_TOPICS = "ruuhka/v1/facilities/+/state"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_RATE_HZ = LiveSettings().max_rate_hz  # the hub runs with its defaults
KINDS = ("baseline", "hub")

FACILITY = """
[[facilities]]
id = "{id}"
kind = "swimming_hall"
capacity = 300
name = {{ fi = "Uimahalli {n}", sv = "Simhallen {n}", en = "Swimming hall {n}" }}
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def facility_ids(count: int) -> list[str]:
    return [f"hall-{n:03d}" for n in range(count)]


def write_config(path: Path, broker: Broker, port: int, facilities: int, tag: str) -> None:
    halls = "".join(FACILITY.format(id=f, n=n) for n, f in enumerate(facility_ids(facilities)))
    write_hub_config(path, broker.url, path.parent / f"{tag}.db", port, f"bench-{tag}", halls)


# The baseline server (a child process) ------------------------------------------


def baseline_main(argv: list[str]) -> int:
    """Bare websockets broadcast of each state from the broker to every connection."""
    from websockets.asyncio.server import broadcast, serve

    from hub.config import HubSettings
    from hub.facilities import present
    from ruuhka.settings import load_settings

    parser = argparse.ArgumentParser(prog="fanout.py _baseline")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(HubSettings, args.config)
    facilities = {f.id: f for f in settings.facilities}
    raise_fd_limit(20000)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        connections: set[Any] = set()

        async def handler(websocket: Any) -> None:
            connections.add(websocket)
            try:
                await websocket.wait_closed()
            finally:
                connections.discard(websocket)

        def send(payload: bytes) -> None:
            state = FacilityState.model_validate_json(payload)
            facility = facilities.get(state.facility)
            if facility is not None:
                out = present(facility, state, "en")
                broadcast(connections, '{"facility":' + out.model_dump_json() + "}")

        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_connect = lambda c, *_: c.subscribe(STATE_TOPICS, qos=1)
        client.on_message = lambda c, u, msg: loop.call_soon_threadsafe(send, msg.payload)
        client.connect(settings.mqtt.host, settings.mqtt.port)
        client.loop_start()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with serve(handler, "127.0.0.1", args.port, compression=None, max_queue=None):
            await stop
        client.loop_stop()

    asyncio.run(run())
    return 0


# Servers under test ---------------------------------------------------------------


@dataclass
class Server:
    """The hub or the baseline server in a child process, serving WebSockets."""

    kind: str
    process: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls, kind: str, config: Path, port: int, workdir: Path) -> Server:
        if kind == "hub":
            hub = HubProcess(config, port, workdir / "hub.log")
            hub.wait_connected(START_TIMEOUT_S)
            return cls(kind, hub.process, port)
        command = [
            sys.executable, str(Path(__file__).resolve()), "_baseline",
            "--config", str(config), "--port", str(port),
        ]  # fmt: skip
        with (workdir / f"{kind}.log").open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start; see {workdir / (kind + '.log')}")
            time.sleep(0.2)
        return cls(kind, process, port)

    @property
    def url(self) -> str:
        path = "/api/v1/live?lang=en" if self.kind == "hub" else "/"
        return f"ws://127.0.0.1:{self.port}{path}"

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_child(self.process, signal.SIGINT if self.kind == "hub" else signal.SIGTERM)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The workload and its publisher -----------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """``facilities`` facilities, each changing once a second; the first ``hot`` of
    them ``hot_hz`` times a second instead. Changes are spread evenly in time."""

    facilities: int
    hot: int = 0
    hot_hz: float = 0.0

    def schedule(self, seconds: float) -> list[tuple[float, str]]:
        """(offset from the start in s, facility) of every change, in order."""
        ids = facility_ids(self.facilities)
        events = []
        for n, facility in enumerate(ids):
            hz = self.hot_hz if n < self.hot else 1.0
            phase = n / len(ids) / hz
            events += [(phase + k / hz, facility) for k in range(math.ceil(seconds * hz))]
        return sorted(e for e in events if e[0] < seconds)

    def describe(self) -> str:
        cold = self.facilities - self.hot
        if not self.hot:
            return f"{self.facilities} facilities changing once a second each"
        return f"{cold} facilities changing once a second and {self.hot} at {self.hot_hz:g}/s"


class Publisher:
    """Publishes each change with a new ``updated_at`` (µs, strictly increasing, also its
    revision) and remembers every one, so that receipts can be matched to changes."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.changes: list[tuple[str, int]] = []
        self._last_us = 0

    def run(self, schedule: list[tuple[float, str]], start: float) -> float:
        """Publish each change at ``start`` + its offset (wall clock); returns the end."""
        for offset, facility in schedule:
            wait = start + offset - time.time()
            if wait > 0:
                time.sleep(wait)
            us = self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
            state = FacilityState(
                facility=facility,
                revision=us,
                occupancy=len(self.changes) % 300,
                updated_at=EPOCH + timedelta(microseconds=us),
            )
            self.changes.append((facility, us))
            self.client.publish(facility_state_topic(facility), encode(state), qos=1, retain=True)
        return time.time()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# One run: one server, one client count, one workload ----------------------------------


@dataclass
class Run:
    kind: str
    clients: int
    seconds: float
    offered: int = 0
    own: Counter[int] = field(default_factory=Counter)  # latency bins of changes received
    view: Counter[int] = field(default_factory=Counter)  # ... of the change or a newer one
    unknown: int = 0
    duplicates: int = 0
    closed: int = 0
    busiest: int = 0
    cpu_s: float = math.nan
    fleet_cpu_s: float = math.nan
    rss_peak_mb: float = math.nan
    error: str | None = None
    load: float = math.nan  # the machine's 1-minute load average at the end

    def within(self, bound_s: float, view: bool = False) -> int:
        bins = self.view if view else self.own
        return sum(n for b, n in bins.items() if b * BIN_S <= bound_s)

    def share(self, bound_s: float, view: bool = False) -> float:
        return self.within(bound_s, view) / self.offered if self.offered else 0.0

    def percentile_ms(self, q: float, view: bool = False) -> float:
        """Over every change offered to every client; one that never came is infinite."""
        if not self.offered:
            return math.inf
        rank, seen = math.ceil(q * self.offered), 0
        bins = self.view if view else self.own
        for b in sorted(bins):
            seen += bins[b]
            if seen >= rank:
                return b * BIN_S * 1000
        return math.inf

    @property
    def coalesced(self) -> int:
        """Never arrived, but a newer state of the same facility did."""
        return sum(self.view.values()) - sum(self.own.values())

    @property
    def missing(self) -> int:
        """Neither it nor a newer state of its facility arrived (by the end of the tail)."""
        return self.offered - sum(self.view.values())

    def cpu_ms_per_1000(self, bound_s: float) -> float:
        delivered = self.within(bound_s)
        return self.cpu_s * 1e6 / delivered if delivered else math.inf

    def fits(self, bound_s: float) -> bool:
        """The capacity criterion, for one run."""
        return (
            self.error is None
            and self.percentile_ms(0.99) <= GOAL_P99_MS
            and self.share(bound_s) >= GOAL_SHARE
        )


@dataclass
class Bench:
    args: argparse.Namespace
    broker: Broker
    publisher: Publisher
    workdir: Path
    fleet_cpus: set[int]

    def run(self, kind: str, clients: int, workload: Workload) -> Run:
        """One run; a failure (a server or the fleet falling over) is a run that fits nothing."""
        try:
            return self._run(kind, clients, workload)
        except Exception as error:  # reported, and the step is not held
            log(traceback.format_exc())
            return Run(kind, clients, self.args.seconds, error=f"{type(error).__name__}: {error}")

    def _run(self, kind: str, clients: int, workload: Workload) -> Run:
        args = self.args
        port = free_port()
        config = self.workdir / f"{kind}.toml"
        write_config(config, self.broker, port, workload.facilities, kind)
        server = Server.start(kind, config, port, self.workdir)
        fleet = None
        try:
            fleet = Fleet(
                server.url, clients, args.processes, self.workdir, "record", self.fleet_cpus
            )
            peak = [server.rss_mb()]
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.wait(0.5):
                    peak.append(server.rss_mb())

            threading.Thread(target=sample, daemon=True).start()
            start = time.time() + 0.1
            t0 = start + args.warmup
            marks: dict[str, float] = {}

            def mark(name: str) -> Callable[[], None]:
                def take() -> None:
                    marks[f"{name}_cpu"] = server.cpu_s()
                    marks[f"{name}_fleet"] = fleet.cpu_s() if fleet else math.nan

                return take

            timer = threading.Timer(t0 - time.time(), mark("t0"))
            timer.start()
            t1 = self.publisher.run(workload.schedule(args.warmup + args.seconds), start)
            timer.join()
            mark("t1")()
            time.sleep(args.tail)  # what is still on its way may arrive (it counts as late)
            sampling.set()
            peak.append(server.rss_mb())
            stats = fleet.stats(self.publisher.changes, t0, t1, self.workdir / "changes.json")
            return Run(
                kind=kind,
                clients=clients,
                seconds=t1 - t0,
                offered=stats["offered"],
                own=stats["own"],
                view=stats["view"],
                unknown=stats["unknown"],
                duplicates=stats["duplicates"],
                closed=stats["closed"],
                busiest=stats["busiest"],
                cpu_s=marks["t1_cpu"] - marks["t0_cpu"],
                fleet_cpu_s=marks["t1_fleet"] - marks["t0_fleet"],
                rss_peak_mb=max(peak),
                load=os.getloadavg()[0],
            )
        finally:
            if fleet is not None:
                fleet.close()
            server.stop()


# Reporting ------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    """Median [min-max] of the runs."""
    if not values:
        return "-"
    med = format(statistics.median(values), fmt)
    if len(values) == 1:
        return med
    return f"{med} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def ms(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.0f}"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) if values else math.inf


def held(runs: list[Run], bound_s: float) -> bool:
    """A step is held when the medians of its runs meet both criteria."""
    if not runs or any(r.error for r in runs):
        return False
    p99 = median_ms([r.percentile_ms(0.99) for r in runs])
    share = statistics.median(r.share(bound_s) for r in runs)
    return p99 <= GOAL_P99_MS and share >= GOAL_SHARE


def capacity_row(kind: str, clients: int, runs: list[Run], bound_s: float, cores: int) -> str:
    ok = [r for r in runs if r.error is None]
    if not ok:
        return f"| {kind} | {clients:,} | 0 of {len(runs)} ran: {runs[0].error} | | | | | | | no |"
    share = spread([100 * r.share(bound_s) for r in ok], ".2f")
    p50 = ms(median_ms([r.percentile_ms(0.5) for r in ok]))
    p99s = [r.percentile_ms(0.99) for r in ok]
    p99 = f"{ms(median_ms(p99s))} [{ms(min(p99s))}-{ms(max(p99s))}]" if len(ok) > 1 else ms(p99s[0])
    rate = spread([r.within(bound_s) / r.seconds for r in ok], ",.0f")
    cpu = spread([r.cpu_ms_per_1000(bound_s) for r in ok], ".0f")
    fleet = spread([100 * r.fleet_cpu_s / r.seconds / cores for r in ok], ".0f")
    rss = max(r.rss_peak_mb for r in ok)
    flags = sum(r.unknown + r.duplicates + r.closed for r in ok)
    note = f" ({flags} unknown, duplicated or closed)" if flags else ""
    return (
        f"| {kind} | {clients:,} | {share} | {p50} | {p99} | {rate} | {cpu} | {fleet} | "
        f"{rss:.0f} | {'yes' if held(runs, bound_s) else 'no'}{note} |"
    )


def coalescing_row(run: Run, bound_s: float) -> str:
    if run.error:
        return f"| {run.kind} | {run.clients:,} | {run.error} | | | | | | |"
    offered = max(run.offered, 1)
    delivered = run.within(bound_s)
    late = sum(run.own.values()) - delivered
    return (
        f"| {run.kind} | {run.clients:,} | {run.offered:,} | {delivered / offered:.2%} | "
        f"{run.coalesced / offered:.2%} | {late / offered:.2%} | {run.missing / offered:.2%} | "
        f"{run.share(bound_s, view=True):.2%} | {ms(run.percentile_ms(0.99, view=True))} | "
        f"{run.busiest / run.seconds:.1f} |"
    )


def coalescing_ok(runs: list[Run], bound_s: float) -> bool:
    """Up to date by the median of the runs; paced in every one."""
    if not runs or any(r.error for r in runs):
        return False
    share = statistics.median(r.share(bound_s, view=True) for r in runs)
    return share >= GOAL_SHARE and all(r.busiest <= MAX_RATE_HZ * r.seconds + 1 for r in runs)


# The benchmark --------------------------------------------------------------------


def cpu_split(fleet: str | None) -> tuple[set[int], set[int]]:
    """(fleet CPUs, everyone else's): the last CPU for the fleet unless told."""
    cpus = sorted(os.sched_getaffinity(0))
    chosen = {int(c) for c in fleet.split(",")} if fleet else {cpus[-1]}
    rest = set(cpus) - chosen
    return chosen, rest or set(cpus)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_baseline":
        return baseline_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="50,100,250,500,1000,1500,2000,3000,4000")
    parser.add_argument("--repeats", type=int, default=3, help="runs per server and step")
    parser.add_argument("--facilities", type=int, default=100)
    parser.add_argument("--bound", type=float, default=1.0, help="s; later is not delivered")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per run")
    parser.add_argument("--tail", type=float, default=2.0, help="s after the last change")
    parser.add_argument("--processes", type=int, default=1, help="fleet processes")
    parser.add_argument("--fleet-cpus", help="CPUs for the fleet (default: the last one)")
    parser.add_argument("--rss-clients", type=int, default=1000, help="the hub's RSS with these")
    parser.add_argument("--coalesce-clients", type=int, default=100, help="0: no such row")
    parser.add_argument("--hot", type=int, default=5, help="coalescing: facilities changing fast")
    parser.add_argument("--hot-hz", type=float, default=50.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    steps = sorted({int(s) for s in args.steps.split(",")})
    raise_fd_limit(max(steps) + 1024)
    fleet_cpus, server_cpus = cpu_split(args.fleet_cpus)
    args.fleet_cpus_used = ",".join(map(str, sorted(fleet_cpus)))
    os.sched_setaffinity(0, server_cpus)  # inherited by the broker and the servers
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ruuhka-fanout-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {workdir}; fleet on CPUs {sorted(fleet_cpus)}, the rest on "
        f"{sorted(server_cpus)}")  # fmt: skip
    fixed = Workload(args.facilities)
    runs: dict[tuple[str, int], list[Run]] = {}
    capacity: dict[str, int] = {}
    coalescing: list[Run] = []
    memory: list[Run] = []  # the hub's RSS at rss_clients, when the steps did not get there
    with start_broker(workdir / "broker", prefer="mosquitto") as broker:
        publisher = Publisher(broker)
        bench = Bench(args, broker, publisher, workdir, fleet_cpus)
        try:
            active = list(KINDS)
            for clients in steps:
                for repeat in range(args.repeats):
                    for kind in active if repeat % 2 == 0 else reversed(active):
                        run = bench.run(kind, clients, fixed)
                        runs.setdefault((kind, clients), []).append(run)
                        log(
                            f"{kind} {clients} clients: {run.share(args.bound):.2%} within "
                            f"{args.bound:g} s, p99 {ms(run.percentile_ms(0.99))} ms"
                            + (f" ({run.error})" if run.error else "")
                        )
                for kind in list(active):
                    if held(runs[(kind, clients)], args.bound):
                        capacity[kind] = clients
                    else:
                        active.remove(kind)
                        capacity.setdefault(kind, 0)
                if not active:
                    break
            if ("hub", args.rss_clients) not in runs:
                memory.append(bench.run("hub", args.rss_clients, fixed))
            if args.coalesce_clients:
                hot = Workload(args.facilities, args.hot, args.hot_hz)
                for repeat in range(args.repeats):
                    for kind in KINDS if repeat % 2 == 0 else reversed(KINDS):
                        coalescing.append(bench.run(kind, args.coalesce_clients, hot))
                        log(f"coalescing, {kind}: {coalescing_row(coalescing[-1], args.bound)}")
        finally:
            publisher.stop()
    runs_at = runs.get(("hub", args.rss_clients), memory)
    ok = report(args, steps, runs, capacity, coalescing, len(fleet_cpus), runs_at)
    return 0 if ok else 1


def report(
    args: argparse.Namespace,
    steps: list[int],
    runs: dict[tuple[str, int], list[Run]],
    capacity: dict[str, int],
    coalescing: list[Run],
    cores: int,
    memory: list[Run],
) -> bool:
    """Print the tables and the goals; True when every goal is met. ``memory``: the
    hub's runs with ``args.rss_clients`` clients."""
    bound = args.bound
    print(
        f"Capacity: {Workload(args.facilities).describe()}; {args.repeats} runs of "
        f"{args.seconds:g} s per server and step, median [min-max]; within {bound:g} s and "
        f"the percentiles count every change offered to every client, one that never "
        f"arrived as infinite. Server CPU in ms per 1,000 deliveries; fleet CPU in % of "
        f"its {cores} CPU(s)."
    )
    every = [r for rs in runs.values() for r in rs] + coalescing + memory
    loads = [r.load for r in every if not math.isnan(r.load)]
    if loads:
        print(
            f"The fleet ran on CPU(s) {args.fleet_cpus_used}, the broker, publisher and "
            f"servers on the others; both shared them with whatever else ran: the 1-minute "
            f"load average was {min(loads):.1f}-{max(loads):.1f} during the runs.\n"
        )
    print(
        f"| server | clients | within {bound:g} s, % | p50 ms | p99 ms | deliveries/s | "
        "server CPU | fleet CPU | RSS MB | held |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for clients in steps:
        for kind in KINDS:
            if (kind, clients) in runs:
                print(capacity_row(kind, clients, runs[(kind, clients)], bound, cores))
    top = max(steps)
    lines = []
    for kind in KINDS:
        held_all = capacity.get(kind) == top and held(runs.get((kind, top), []), bound)
        lines.append(f"{kind} {'>= ' if held_all else ''}{capacity.get(kind, 0):,}")
    hub, base = capacity.get("hub", 0), capacity.get("baseline", 0)
    ratio = hub / base if base else (math.inf if hub else math.nan)
    ok_capacity = hub >= GOAL_HUB_CLIENTS and ratio >= GOAL_CAPACITY_RATIO
    print(
        f"\nClients held (p99 <= {GOAL_P99_MS:.0f} ms and >= {GOAL_SHARE:.1%} within "
        f"{bound:g} s): {', '.join(lines)}; hub/baseline "
        f"{f'{ratio:.2f}' if base else '- (the baseline held no step)'} (goal >= "
        f"{GOAL_CAPACITY_RATIO}), hub goal >= {GOAL_HUB_CLIENTS:,}: "
        f"{'met' if ok_capacity else 'NOT met'}"
    )
    # At the largest step both hold; if there is none, at the smallest, said so.
    both = min(hub, base)
    at = both or min(steps)
    if all((k, at) in runs and all(r.error is None for r in runs[(k, at)]) for k in KINDS):
        cpu = {k: statistics.median(r.cpu_ms_per_1000(bound) for r in runs[(k, at)]) for k in KINDS}
        print(
            f"Server CPU per 1,000 deliveries at {at:,} clients "
            f"({'both hold it' if both else 'held by neither'}): baseline "
            f"{cpu['baseline']:.0f} ms, hub {cpu['hub']:.0f} ms (hub/baseline "
            f"{cpu['hub'] / cpu['baseline']:.2f})"
        )
    rss = max((r.rss_peak_mb for r in memory if r.error is None), default=math.nan)
    ok_rss = rss <= GOAL_RSS_MB
    print(
        f"Hub RSS with {args.rss_clients:,} clients and {args.facilities} facilities: "
        f"{rss:.0f} MB at its peak (goal <= {GOAL_RSS_MB:.0f}): {'met' if ok_rss else 'NOT met'}"
    )
    ok_coalescing = True
    if args.coalesce_clients:
        hot = Workload(args.facilities, args.hot, args.hot_hz)
        print(
            f"\nCoalescing: {hot.describe()} (the hub's max_rate_hz is {MAX_RATE_HZ:g}), "
            f"{args.coalesce_clients} clients; shares of every change offered to every client.\n"
        )
        print(
            f"| server | clients | offered | delivered within {bound:g} s | coalesced | late | "
            f"never came | up to date within {bound:g} s | p99 to up to date, ms | "
            "most updates of one facility per client, /s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for run in sorted(coalescing, key=lambda r: r.kind):
            print(coalescing_row(run, bound))
        ok_coalescing = coalescing_ok([r for r in coalescing if r.kind == "hub"], bound)
        print(
            f"\nHub: >= {GOAL_SHARE:.1%} up to date within {bound:g} s (median), at most "
            f"{MAX_RATE_HZ:g} updates of one facility a second per client: "
            f"{'met' if ok_coalescing else 'NOT met'}"
        )
    ok = ok_capacity and ok_rss and ok_coalescing
    print(f"\nAll goals: {'met' if ok else 'NOT met'}")
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
