"""The ``ruuhka`` command: demo, hub, edge, simulate."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ruuhka import __version__
from ruuhka.settings import ConfigError, load_settings


def _hub(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app
    from hub.config import HubSettings

    settings = load_settings(HubSettings, args.config)
    uvicorn.run(
        create_app(settings),
        host=settings.http.host,
        port=settings.http.port,
        log_level="info" if args.verbose else "warning",
        ws_max_size=64 * 1024,
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
        print(f"{args.config}: valid; device {settings.device_id}, {len(settings.sources)} sources")
        return 0
    agent = Agent(settings)
    thread = threading.Thread(target=agent.run, name="agent")
    stop = threading.Event()
    _run_until_signal(thread, stop)
    agent.stop()
    thread.join(timeout=15)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from edge.simulate import agents_for, run
    from hub.config import HubSettings
    from ruuhka.settings import MqttSettings

    hub = load_settings(HubSettings, args.config)
    mqtt = MqttSettings(url=args.broker, protocol=args.protocol) if args.broker else hub.mqtt
    agents = agents_for(hub, mqtt, args.state_dir, args.interval, always_open=args.always_open)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(agents, stop), name="simulate")
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
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(func=_edge)

    p = sub.add_parser("simulate", help="simulated devices for a hub config's sources")
    p.add_argument("--config", type=Path, required=True, help="hub TOML file")
    p.add_argument("--broker", help="mqtt://host:port (default: the config's)")
    p.add_argument("--protocol", default="5", choices=["5", "3.1.1"])
    p.add_argument("--state-dir", type=Path, default=Path(".simulate"))
    p.add_argument("--interval", type=float, default=None, help="seconds between readings")
    p.add_argument("--always-open", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=_simulate)

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
