"""Files that hold secrets, personal data or readings belong to their owner alone.

The crew database (password hashes, sessions), the readings, the camera
pictures, the edge outbox and backups are made 0600 whatever the umask. A
SQLite database is created here first, empty, before SQLite opens it: SQLite
then gives its -wal, -shm and journal files the database file's mode.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("ruuhka.files")

PRIVATE = 0o600


def create_private(path: Path | str) -> None:
    """Make ``path`` an empty 0600 file if it does not exist. An existing file that
    every user may read or write loses that (its owner and group keep theirs: a
    group of its own is how a service account shares it)."""
    path = Path(path)
    if str(path) == ":memory:":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o007:
            path.chmod(mode & ~0o007)
            log.warning("%s was readable by every user; now %o", path, mode & ~0o007)
        return
    try:
        os.fchmod(fd, PRIVATE)  # the umask may have taken bits from 0600, never added any
    finally:
        os.close(fd)


def create_private_database(path: Path | str) -> None:
    """The folder (if missing) and the database file, ready for sqlite3.connect."""
    if str(path) == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    create_private(path)
