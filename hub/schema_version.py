"""Schema versions of the hub's SQLite files (``PRAGMA user_version``).

Each file's original schema is version 0; every later change is one SQL step
appended to its list, never edited. Opening a file runs the steps it has not
had yet, in one transaction, so an existing database is upgraded in place and
a new one takes the same path. A file written by a newer hub is refused rather
than misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


class SchemaTooNew(RuntimeError):
    pass


def migrate(db: sqlite3.Connection, steps: Sequence[str], what: str) -> int:
    """Bring ``db`` (in autocommit mode) to version ``len(steps)``; returns the version
    it had. Replicas opening one file at once: the first upgrades, the others wait
    (busy_timeout) and then find nothing left to do."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
        if found > len(steps):
            raise SchemaTooNew(
                f"{what} has schema version {found}, newer than this hub knows "
                f"({len(steps)}); upgrade the hub or restore an older backup"
            )
        for step in steps[found:]:
            db.execute(step)
        if found < len(steps):
            db.execute(f"PRAGMA user_version = {len(steps)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return found
