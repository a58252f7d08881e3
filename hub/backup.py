"""``ruuhka store backup|restore``: consistent copies of the hub's SQLite files.

Each file (readings, camera pictures, crew log) is copied with SQLite's online
backup API in one step, which reads one consistent snapshot while the hub goes on
writing (the files are in WAL mode, so the copy does not block it). The files are
copied one after another, not as one atomic snapshot. Copies are created 0600, are
checked before they get their final name, and are listed in ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruuhka import __version__
from ruuhka.private_files import create_private
from ruuhka.settings import load_settings

if TYPE_CHECKING:
    from hub.config import HubSettings

MANIFEST = "manifest.json"
SQLITE_PREFIX = "sqlite:///"

Say = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says what to do."""


@dataclass(frozen=True)
class Part:
    """One of the hub's SQLite files, by what it holds."""

    role: str  # readings, pictures, crew
    path: Path

    @property
    def file_name(self) -> str:
        return f"{self.role}.db"


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX) :]
    return None if path in ("", ":memory:") else Path(path)


def parts(settings: HubSettings) -> list[Part]:
    """The SQLite files this configuration keeps (InfluxDB readings are not among them)."""
    from hub.snapshots import snapshot_path

    found = []
    readings = _sqlite_path(settings.store.url)
    if readings is not None:
        found.append(Part("readings", readings))
    pictures = snapshot_path(settings.snapshots, settings.store.url)
    if pictures != ":memory:":
        found.append(Part("pictures", Path(pictures)))
    crew = _sqlite_path(settings.crew.db) if settings.crew is not None else None
    if crew is not None:
        found.append(Part("crew", crew))
    return found


def _tables(db: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {name: db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def _check(db: sqlite3.Connection, what: Path) -> None:
    result = db.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"{what}: SQLite's check failed: {result}")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _copy(source: Path, target: Path) -> dict[str, int]:
    """source → target (which exists), in one step; checked; returns rows per table."""
    src = _connect(source)
    try:
        dst = _connect(target)
        try:
            src.backup(dst)
            # One self-contained file: no -wal beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
            _check(dst, target)
            return _tables(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(settings: HubSettings, directory: Path, say: Say = print) -> dict[str, Any]:
    """Copy each of the hub's SQLite files into ``directory``; returns the manifest."""
    todo = parts(settings)
    if not todo:
        raise BackupError(
            "this configuration keeps no SQLite file; back up InfluxDB with its own tools"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    taken = [p.file_name for p in todo if (directory / p.file_name).exists()]
    if taken or (directory / MANIFEST).exists():
        raise BackupError(f"{directory} already holds a backup; give a new directory")
    manifest: dict[str, Any] = {"ruuhka": __version__, "files": {}}
    for part in todo:
        if not part.path.exists():
            say(f"{part.role}: {part.path} does not exist yet, nothing to copy")
            continue
        final = directory / part.file_name
        partial = directory / (part.file_name + ".partial")
        partial.unlink(missing_ok=True)
        create_private(partial)
        began = time.monotonic()
        at = datetime.now(UTC)
        try:
            tables = _copy(part.path, partial)
            _fsync(partial)
        except (sqlite3.Error, BackupError) as exc:
            partial.unlink(missing_ok=True)
            raise BackupError(f"{part.role}: {part.path}: {exc}") from None
        partial.rename(final)
        manifest["files"][part.role] = {
            "file": part.file_name,
            "source": str(part.path),
            "copied_at": at.isoformat(),
            "bytes": final.stat().st_size,
            "rows": tables,
        }
        say(
            f"{part.role}: {part.path} → {final} ({final.stat().st_size:,} bytes, "
            f"{sum(tables.values()):,} rows, {time.monotonic() - began:.1f} s)"
        )
    manifest_path = directory / MANIFEST
    create_private(manifest_path)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _fsync(manifest_path)
    _fsync(directory)
    return manifest


def _holds_data(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    db = _connect(path)
    try:
        return any(_tables(db).values())
    finally:
        db.close()


def restore(
    settings: HubSettings, directory: Path, *, replace: bool = False, say: Say = print
) -> None:
    """Write a backup's files to where ``settings`` keeps them (the hub stopped)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, Any] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{directory}: not a backup ({MANIFEST}: {exc})") from None
    targets = {part.role: part for part in parts(settings)}
    for role in files:
        if role not in targets:
            say(f"{role}: in the backup, but this configuration keeps no such file; skipped")
    plan = [
        (targets[role], directory / entry["file"])
        for role, entry in files.items()
        if role in targets
    ]
    for part, source in plan:
        if not source.exists():
            raise BackupError(f"{source}: missing from the backup")
        if _holds_data(part.path) and not replace:
            raise BackupError(
                f"{part.path} already holds data; stop the hub and give --replace to overwrite it"
            )
    for part, source in plan:
        part.path.parent.mkdir(parents=True, exist_ok=True)
        if not part.path.exists():
            create_private(part.path)
        try:
            tables = _copy(source, part.path)
        except sqlite3.Error as exc:
            raise BackupError(f"{part.role}: {source} → {part.path}: {exc}") from None
        os.chmod(part.path, 0o600)
        say(f"{part.role}: {source} → {part.path} ({sum(tables.values()):,} rows)")
    for role in targets.keys() - files.keys():
        say(f"{role}: not in the backup; {targets[role].path} left as it is")


def _run(args: argparse.Namespace) -> int:
    from hub.config import HubSettings

    settings = load_settings(HubSettings, args.config)
    if args.store_command == "rederive":
        from hub.rederive import run_command

        return run_command(settings, args.facility, args.since, args.until)
    if args.store_command == "quarantine":
        from hub.quarantine import run_command as show

        return show(settings, args.device, args.reason, args.limit, args.json)
    try:
        if args.store_command == "backup":
            backup(settings, args.directory)
        else:
            restore(settings, args.directory, replace=args.replace)
    except BackupError as exc:
        print(f"ruuhka store {args.store_command}: {exc}", file=sys.stderr)
        return 1
    return 0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="hub TOML file")
    sub = parser.add_subparsers(dest="store_command", required=True)
    p = sub.add_parser("backup", help="copy the hub's SQLite files while it runs")
    p.add_argument("directory", type=Path, help="a new directory for the backup")
    p = sub.add_parser("restore", help="write a backup's files where this config keeps them")
    p.add_argument("directory", type=Path, help="a directory made by backup")
    p.add_argument(
        "--replace", action="store_true", help="overwrite files that hold data (hub stopped)"
    )
    p = sub.add_parser(
        "rederive",
        help="fold the stored readings again and rewrite the derived series "
        "(the running hub does this by itself for late readings)",
    )
    p.add_argument(
        "--facility", action="append", default=[], help="a facility id (repeat; default all)"
    )
    p.add_argument(
        "--from", dest="since", help="a date or RFC 3339 time (default: the first reading)"
    )
    p.add_argument(
        "--to", dest="until", help="a date or time: through the end of its day (default: all)"
    )
    p = sub.add_parser("quarantine", help="the messages ingest refused, newest first")
    p.add_argument("--device", help="only from this device")
    p.add_argument("--reason", help="only for this reason (as in /metrics)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="JSON, with the payloads in base64")
    parser.set_defaults(func=_run)
