"""Login throttling: every try is decided and counted before its password is checked.

One transaction on the crew database (shared by every replica and the CLI, so
concurrent tries and other processes see each other) decides whether a try may
go ahead and, if so, counts it as a failure at once; a right password then takes
its count back. A flood of simultaneous guesses therefore cannot race past the
limits: each one sees the ones before it.

Two limits apply (the policy, with its sources, is in docs/run/crews.md):

- per address (an IPv6 /64 counts as one): at most ``ip_max_failures`` wrong
  passwords within ``failure_window_s``, over all accounts;
- per account: after ``max_failures`` wrong passwords from places the account
  does not know, each further try from them waits ``first_delay_s``, doubling
  up to ``max_delay_s``: slower and slower guessing, never a lock-out.

A browser that has logged in to the account before (its device cookie) or an
address it logged in from has a count of its own, so failures from elsewhere
never make it wait; a known browser is not held to its address's limit either.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from hub.crew.accounts import LoginResult
from hub.crew.db import CrewDB, ms
from hub.crew.settings import CrewSettings

DEVICE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


@dataclass(frozen=True)
class Refusal:
    """The try may not go ahead: its address's limit, or its account's delay."""

    result: LoginResult
    retry_after_s: int


@dataclass(frozen=True)
class Attempt:
    """A try that was counted and may now check its password."""

    address: str
    crew: tuple[int, str, str] | None  # id, name, scope: None for an unknown name
    password_hash: str | None
    known_device: bool
    known: bool  # from a known device or address: its own count, checked first
    bucket: str
    rows: tuple[int, ...]


def device_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginThrottle:
    def __init__(self, db: CrewDB, settings: CrewSettings) -> None:
        self.db = db
        self.settings = settings

    def delay_s(self, failures: int) -> float:
        """How long a try must wait after the last of ``failures`` wrong passwords."""
        over = failures - self.settings.max_failures
        if over < 0:
            return 0.0
        delay = self.settings.first_delay_s * 2 ** min(over, 32)
        return min(float(self.settings.max_delay_s), delay)

    def begin(
        self, name: str, address: str, device_token: str | None, now: datetime
    ) -> Attempt | Refusal:
        """Decide and count one try, in one transaction. ``address`` is already an
        address key (hub.security.address_key)."""
        s = self.settings
        now_ms = ms(now)
        name = name.strip().lower()[:64]
        with self.db.write() as db:
            db.execute(
                "DELETE FROM login_failures WHERE at_ms <= ?",
                (now_ms - 1000 * max(s.failure_window_s, s.account_window_s),),
            )
            row = db.execute(
                "SELECT id, name, scope, password_hash FROM crews WHERE name = ?", (name,)
            ).fetchone()
            known_device = known_address = False
            digest = None
            if row is not None and device_token and DEVICE_TOKEN_RE.fullmatch(device_token):
                digest = device_digest(device_token)
                since = now_ms - 1000 * s.known_device_s
                known_device = _known(db, row[0], "device:" + digest, since)
            if row is not None and not known_device:
                since = now_ms - 1000 * s.known_address_s
                known_address = _known(db, row[0], "ip:" + address, since)
            counted = []
            if not known_device:
                count, oldest = db.execute(
                    "SELECT COUNT(*), MIN(at_ms) FROM login_failures WHERE key = ? AND at_ms > ?",
                    ("ip:" + address, now_ms - 1000 * s.failure_window_s),
                ).fetchone()
                if count >= s.ip_max_failures:
                    wait_ms = oldest + 1000 * s.failure_window_s - now_ms
                    return Refusal(LoginResult.RATE_LIMITED, _seconds(wait_ms))
                counted.append("ip:" + address)
            bucket = "crew:" + name
            if known_device:
                bucket += "|device:" + str(digest)
            elif known_address:
                bucket += "|ip:" + address
            count, last = db.execute(
                "SELECT COUNT(*), MAX(at_ms) FROM login_failures WHERE key = ? AND at_ms > ?",
                (bucket, now_ms - 1000 * s.account_window_s),
            ).fetchone()
            if count:
                wait_ms = round(1000 * self.delay_s(count)) - (now_ms - last)
                if wait_ms > 0:
                    return Refusal(LoginResult.DELAYED, _seconds(wait_ms))
            counted.append(bucket)
            rows = []
            for key in counted:
                cursor = db.execute(
                    "INSERT INTO login_failures (key, at_ms) VALUES (?, ?)", (key, now_ms)
                )
                rows.append(int(cursor.lastrowid or 0))
        return Attempt(
            address=address,
            crew=(row[0], row[1], row[2]) if row else None,
            password_hash=row[3] if row else None,
            known_device=known_device,
            known=known_device or known_address,
            bucket=bucket,
            rows=tuple(rows),
        )

    def refund(self, attempt: Attempt) -> None:
        """The password was never checked (the hub was too busy): the try does not count."""
        with self.db.write() as db:
            _forget(db, attempt.rows)

    def succeeded(self, attempt: Attempt, device_token: str | None, now: datetime) -> str:
        """The right password: the try and its source's failures no longer count, and
        the browser and the address become known. Returns the browser's device token
        (the one it sent, or a new one)."""
        assert attempt.crew is not None
        if not device_token or not DEVICE_TOKEN_RE.fullmatch(device_token):
            device_token = secrets.token_urlsafe(32)
        now_ms = ms(now)
        oldest = now_ms - 1000 * max(self.settings.known_device_s, self.settings.known_address_s)
        with self.db.write() as db:
            _forget(db, attempt.rows)
            db.execute("DELETE FROM login_failures WHERE key = ?", (attempt.bucket,))
            db.execute("DELETE FROM known_logins WHERE last_ok_ms <= ?", (oldest,))
            db.executemany(
                "INSERT OR REPLACE INTO known_logins (crew_id, key, last_ok_ms) VALUES (?, ?, ?)",
                [
                    (attempt.crew[0], "device:" + device_digest(device_token), now_ms),
                    (attempt.crew[0], "ip:" + attempt.address, now_ms),
                ],
            )
        return device_token


def _known(db: sqlite3.Connection, crew_id: int, key: str, since_ms: int) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM known_logins WHERE crew_id = ? AND key = ? AND last_ok_ms > ?",
            (crew_id, key, since_ms),
        ).fetchone()
        is not None
    )


def _forget(db: sqlite3.Connection, rows: tuple[int, ...]) -> None:
    db.executemany("DELETE FROM login_failures WHERE rowid = ?", [(r,) for r in rows])


def _seconds(ms_left: int) -> int:
    return max(1, -(-ms_left // 1000))
