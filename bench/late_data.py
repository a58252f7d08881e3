"""How the hub absorbs late data: a busy facility's counter drains a day's backlog.

A pool has three gate counters reporting every 10 s. Counters A and B have
reported the last 24 hours in time; counter C was offline and sends its whole
24 hours afterwards, as fast as the broker takes them. Measured from outside:

1. absorbed: from C's first publish until the hub's history API (one bucket per
   minute) equals, minute for minute, the series the benchmark computes itself
   from the workload (entries minus exits since each local midnight, summed over
   the counters);
2. recompute per day: ``ruuhka store rederive`` over one whole local day of the
   stored readings, the hub stopped, timed as a command.

Exit status 0 when every minute of the history is right.

Usage:
    ruuhka-bench late-data [--interval-s 10] [--hours 24] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hubrun import HubProcess, http_get, write_hub_config
from ruuhka.broker import Broker, free_port, start_broker

ZONE = ZoneInfo("Europe/Helsinki")
COUNTERS = ("gate-a", "gate-b", "gate-c")
FACILITY = """
[[facilities]]
id = "pool"
kind = "swimming_hall"
capacity = 100000
timezone = "Europe/Helsinki"
name = { en = "Bench pool" }
""" + "".join(
    f'[[facilities.sources]]\ndevice = "{device}"\ncounter = "main"\n' for device in COUNTERS
)


@dataclass
class Reading:
    device: str
    seq: int
    at: datetime
    entries: int
    exits: int

    def payload(self) -> bytes:
        body = {"seq": self.seq, "ts": self.at.isoformat(), "counter": "main"}
        return json.dumps(body | {"entries": self.entries, "exits": self.exits}).encode()


def workload(start: datetime, hours: int, interval_s: int) -> list[Reading]:
    """Cumulative counts; exits never outrun the entries of the local day."""
    rng = random.Random(11)
    out: list[Reading] = []
    for device in COUNTERS:
        entries = exits = inside = 0
        day: date | None = None
        for seq in range(1, hours * 3600 // interval_s + 1):
            at = start + timedelta(seconds=seq * interval_s)
            local_day = at.astimezone(ZONE).date()
            if local_day != day:
                day, inside = local_day, 0
            came = rng.randint(0, 3)
            left = min(rng.randint(0, 3), inside + came)
            entries, exits, inside = entries + came, exits + left, inside + came - left
            out.append(Reading(device, seq, at, entries, exits))
    return out


def expected_series(readings: list[Reading]) -> dict[datetime, int]:
    """Occupancy after each minute's last reading: the rule the hub's page explains
    (people counted in since local midnight, minus those counted out)."""
    last: dict[str, tuple[int, int]] = {}
    net, day = 0, None
    series: dict[datetime, int] = {}
    for r in sorted(readings, key=lambda r: (r.at, r.device, r.seq)):
        local_day = r.at.astimezone(ZONE).date()
        if local_day != day:
            net, day = 0, local_day
        if r.device in last:
            net += (r.entries - last[r.device][0]) - (r.exits - last[r.device][1])
        last[r.device] = (r.entries, r.exits)
        minute = r.at.replace(second=0, microsecond=0)
        series[minute] = net
    return series


def publish(broker: Broker, readings: list[Reading]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [
            client.publish(f"ruuhka/v1/devices/{r.device}/count", r.payload(), qos=1)
            for r in readings
        ]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.loop_stop()
        client.disconnect()


def history(hub: HubProcess, start: datetime, end: datetime) -> dict[datetime, float]:
    query = f"from={start.isoformat()}&to={end.isoformat()}&every=60".replace("+00:00", "Z")
    body = json.loads(http_get(f"{hub.url}/api/v1/facilities/pool/history?{query}", 30))
    return {
        datetime.fromisoformat(b["start"].replace("Z", "+00:00")): b["occupancy_avg"]
        for b in body["buckets"]
    }


def wrong_minutes(got: dict[datetime, float], want: dict[datetime, int]) -> int:
    return sum(1 for minute, value in want.items() if got.get(minute) != value)


def accepted(hub: HubProcess) -> float:
    return hub.metrics().get('ruuhka_readings_accepted_total{stream="count"}', 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ruuhka-bench late-data", description=__doc__)
    parser.add_argument("--interval-s", type=int, default=10, help="seconds between readings")
    parser.add_argument("--hours", type=int, default=24, help="hours of backlog")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (s)")
    parser.add_argument("--workdir", type=Path, help="keep the broker, store and logs here")
    args = parser.parse_args(argv)
    if args.interval_s < 1 or not 1 <= args.hours <= 24 * 30:
        parser.error("--interval-s must be at least 1 and --hours from 1 to 720")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="ruuhka-late-"))
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(hours=args.hours + 1)
    readings = workload(start, args.hours, args.interval_s)
    live = [r for r in readings if r.device != "gate-c"]
    backlog = [r for r in readings if r.device == "gate-c"]
    want = expected_series(readings)
    print(
        f"Ruuhka late-data benchmark: {len(live):,} readings in time from two counters, "
        f"then {len(backlog):,} ({args.hours} h, every {args.interval_s} s) from the third"
    )
    broker = start_broker(root / "broker", prefer="mosquitto")
    port = free_port()
    config = root / "hub.toml"
    write_hub_config(config, broker.url, root / "hub.db", port, "late-bench", FACILITY)
    ok = False
    try:
        hub = HubProcess(config, port, root / "hub.log")
        try:
            hub.wait_connected()
            publish(broker, sorted(live, key=lambda r: r.at))
            deadline = time.monotonic() + args.timeout
            while accepted(hub) < len(live) and time.monotonic() < deadline:
                time.sleep(0.2)
            began = time.monotonic()
            publish(broker, backlog)
            published = time.monotonic() - began
            got: dict[datetime, float] = {}
            while time.monotonic() < deadline:
                if accepted(hub) >= len(readings):
                    got = history(hub, start, now)
                    if wrong_minutes(got, want) == 0:
                        break
                time.sleep(0.25)
            absorbed = time.monotonic() - began
            wrong = wrong_minutes(got, want)
            recomputes = hub.metrics().get("ruuhka_recomputes_total", 0.0)
        finally:
            hub.stop()
        print(f"  backlog published in {published:.1f} s ({len(backlog) / published:,.0f}/s)")
        print(
            f"  absorbed: history right {absorbed:.1f} s after the first late reading "
            f"({len(backlog) / absorbed:,.0f} late readings/s), {recomputes:.0f} recomputes"
        )
        print(f"  minutes of history wrong: {wrong} of {len(want):,}")
        day = (now - timedelta(days=1)).astimezone(ZONE).date().isoformat()
        command = [sys.executable, "-m", "ruuhka", "store", "--config", str(config), "rederive"]
        began = time.monotonic()
        done = subprocess.run(
            [*command, "--facility", "pool", "--from", day, "--to", day],
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        took = time.monotonic() - began
        if done.returncode != 0:
            print(f"  rederive failed: {done.stderr.strip()}")
        else:
            print(f"  recompute of one day ({day}): {took:.2f} s, the command says: ")
            print(f"    {done.stdout.strip()}")
        ok = wrong == 0 and done.returncode == 0
        print(f"  result: {'PASS' if ok else 'FAIL'}")
    finally:
        broker.stop()
        if args.workdir is None and ok:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"  kept {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
