"""The connection part of a configuration for a hub on this machine.

The demo, the tests and the benchmarks all run hubs on a loopback broker with a
SQLite store; this is the one place that writes their [mqtt], [store], [http]
and [ingest] sections, so a new required setting is added once. Values may be
``str.format`` placeholders (``"{port}"``) where the caller fills in a template.
"""

from __future__ import annotations

from pathlib import Path


def local_hub_toml(
    mqtt_url: str,
    db: Path | str,
    port: int | str,
    client_id: str = "ruuhka-hub",
    *,
    protocol: str | None = None,
    http: str = "",
    ingest: str = "",
) -> str:
    """The four sections; ``http`` and ``ingest`` are extra TOML lines for theirs.
    Facilities and other sections go after the returned text."""
    mqtt = f'url = "{mqtt_url}"\n' + (f'protocol = "{protocol}"\n' if protocol else "")
    return (
        f"[mqtt]\n{mqtt}\n"
        f'[store]\nurl = "sqlite:///{db}"\n\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n{_lines(http)}\n'
        f'[ingest]\nclient_id = "{client_id}"\n{_lines(ingest)}'
    )


def _lines(extra: str) -> str:
    return extra if not extra or extra.endswith("\n") else extra + "\n"
