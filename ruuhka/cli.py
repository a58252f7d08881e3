"""The ``ruuhka`` command: demo, hub, edge, simulate, device, crew, store."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ruuhka import __version__
from ruuhka.broker_access import add_cli as add_device_cli
from ruuhka.secret_hygiene import protect
from ruuhka.settings import ConfigError, load_settings


def _hub(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from hub.app import create_app
    from hub.config import HubSettings
    from hub.connections import Connections, Trusted, effective, protocols

    settings = load_settings(HubSettings, args.config)
    protect(args.config, settings)
    limits = effective(settings.http)
    # The peers uvicorn trusts for X-Forwarded-For (its own default: loopback).
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    http, ws = protocols(Connections(limits, Trusted(trusted)))
    uvicorn.run(
        create_app(settings, limits),
        host=settings.http.host,
        port=settings.http.port,
        log_level="info" if args.verbose else "warning",
        http=http,
        ws=ws,
        forwarded_allow_ips=trusted,
        ws_max_size=64 * 1024,
        # A live update is rendered once for all clients; per-message deflate would
        # compress it again for every browser (CPU per client per message).
        ws_per_message_deflate=False,
    )
    return 0


def _run_until_signal(start: threading.Thread, stop: threading.Event | None = None) -> None:
    done = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    start.start()
    while start.is_alive() and not done.wait(0.5):
        pass


def _edge(args: argparse.Namespace) -> int:
    from edge.agent import Agent
    from edge.config import EdgeSettings

    settings = load_settings(EdgeSettings, args.config)
    if args.check:
        from edge.check import run_check

        return run_check(settings, args.config)
    agent = Agent(settings)
    thread = threading.Thread(target=agent.run, name="agent")
    stop = threading.Event()
    _run_until_signal(thread, stop)
    agent.stop()
    thread.join(timeout=15)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from edge.config import ReconnectSettings
    from edge.simulate import Faults, agents_for, backfill, run
    from hub.config import HubSettings
    from ruuhka.settings import MqttSettings

    hub = load_settings(HubSettings, args.config)
    mqtt = MqttSettings(url=args.broker, protocol=args.protocol) if args.broker else hub.mqtt
    agents = agents_for(
        hub,
        mqtt,
        args.state_dir,
        args.interval,
        always_open=args.always_open,
        reconnect=ReconnectSettings(min_s=args.reconnect_min, max_s=args.reconnect_max),
    )
    if args.backlog_hours:
        for agent in agents:
            count = backfill(agent, args.backlog_hours)
            print(f"{agent.settings.device_id}: {count} readings of backlog", flush=True)
    faults = Faults(
        counter_reset_every_s=args.counter_reset_every,
        clock_jump_s=args.clock_jump or 0.0,
        clock_jump_after_s=args.clock_jump_after,
        outage_every_s=args.outage_every,
        outage_for_s=args.outage_for,
    )
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(agents, stop, faults), name="simulate")
    _run_until_signal(thread, stop)
    stop.set()
    thread.join(timeout=15)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ruuhka.demo import run_demo

    run_demo(args.state_dir, args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ruuhka", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ruuhka {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="broker + hub + simulated devices + public page")
    p.add_argument("--state-dir", type=Path, default=Path(".demo"))
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_demo)

    p = sub.add_parser("hub", help="run the hub")
    p.add_argument("--config", type=Path, required=True, help="hub TOML file")
    p.set_defaults(func=_hub)

    p = sub.add_parser("edge", help="run the on-site agent")
    p.add_argument("--config", type=Path, required=True, help="edge TOML file")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the config, probe the broker and each source once, print what was read",
    )
    p.set_defaults(func=_edge)

    p = sub.add_parser("simulate", help="simulated devices for a hub config's sources")
    p.add_argument("--config", type=Path, required=True, help="hub TOML file")
    p.add_argument("--broker", help="mqtt://host:port (default: the config's)")
    p.add_argument("--protocol", default="5", choices=["5", "3.1.1"])
    p.add_argument("--state-dir", type=Path, default=Path(".simulate"))
    p.add_argument("--interval", type=float, default=None, help="seconds between readings")
    p.add_argument("--always-open", action=argparse.BooleanOptionalAction, default=True)
    faults = p.add_argument_group("faults, on request")
    faults.add_argument(
        "--counter-reset-every", type=float, metavar="S", help="counters restart from zero"
    )
    faults.add_argument("--clock-jump", type=float, metavar="S", help="device clocks jump by S")
    faults.add_argument(
        "--clock-jump-after", type=float, default=60.0, metavar="S", help="... after S seconds"
    )
    faults.add_argument("--outage-every", type=float, metavar="S", help="network outages")
    faults.add_argument(
        "--outage-for", type=float, default=60.0, metavar="S", help="... lasting S seconds"
    )
    faults.add_argument(
        "--backlog-hours",
        type=float,
        metavar="H",
        help="start with H hours of readings in each outbox, as after an outage",
    )
    faults.add_argument("--reconnect-min", type=float, default=1.0, metavar="S")
    faults.add_argument("--reconnect-max", type=float, default=60.0, metavar="S")
    p.set_defaults(func=_simulate)

    add_device_cli(sub)

    from hub.crew.cli import configure_parser as crew_parser

    crew_parser(sub.add_parser("crew", help="maintenance crew accounts and API tokens"))

    from hub.backup import configure_parser as store_parser

    store_parser(sub.add_parser("store", help="the hub's data: backup, restore"))

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ruuhka: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
