"""Crew accounts: argon2-hashed passwords, scopes, login throttling, API tokens.

A crew is scoped to facilities (``facility:ID``), to a team of facilities named
in the configuration (``team:NAME``), or to the whole municipality (``*``, every
facility of this hub). Wrong passwords lock the account for a while and, counted
per address, throttle whoever is guessing; both are kept in the database, so a
restart or another replica does not reset them.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.crew.db import CrewDB, ms
from hub.crew.settings import CrewSettings

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
TOKEN_PREFIX = "ruuhka_"
EVERYTHING = "*"


class AccountError(ValueError):
    """A request the accounts cannot carry out; the message says why."""


@dataclass(frozen=True)
class Crew:
    id: int
    name: str
    scope: tuple[str, ...]

    def facilities(self, all_ids: Iterable[str], teams: dict[str, list[str]]) -> set[str]:
        """The facility ids this crew may log for, resolved against the current config."""
        known = set(all_ids)
        allowed: set[str] = set()
        for item in self.scope:
            if item == EVERYTHING:
                return known
            kind, _, value = item.partition(":")
            if kind == "facility":
                allowed.add(value)
            elif kind == "team":
                allowed.update(teams.get(value, ()))
        return allowed & known


class LoginResult(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class LoginOutcome:
    result: LoginResult
    crew: Crew | None = None
    retry_after_s: int = 0


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise AccountError(
            f"bad crew name {name[:80]!r}: use 1-64 of a-z, 0-9, '.', '_', '-' (lower case)"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password may have at most {MAX_PASSWORD} characters")
    return password


def token_hash(token: str) -> str:
    """Tokens are long random strings: a plain hash is enough and keeps lookups fast."""
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, db: CrewDB, settings: CrewSettings) -> None:
        self.db = db
        self.settings = settings
        self.hasher = PasswordHasher()
        self._dummy_hash: str | None = None

    # --- managing accounts (the ``ruuhka crew`` command) -------------------

    def add(self, name: str, password: str, scope: list[str], now: datetime) -> Crew:
        check_name(name)
        check_password(password)
        if not scope:
            raise AccountError("give the crew a scope: --facility ID, --team NAME or --all")
        hashed = self.hasher.hash(password)
        with self.db.write() as db:
            if db.execute("SELECT 1 FROM crews WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"crew {name!r} exists already")
            cursor = db.execute(
                "INSERT INTO crews (name, password_hash, scope, created_ms, password_changed_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, hashed, json.dumps(sorted(set(scope))), ms(now), ms(now)),
            )
            return Crew(int(cursor.lastrowid or 0), name, tuple(sorted(set(scope))))

    def remove(self, name: str) -> None:
        """Its sessions and tokens go with it; the entries it logged stay, under its name."""
        with self.db.write() as db:
            if db.execute("DELETE FROM crews WHERE name = ?", (name,)).rowcount == 0:
                raise AccountError(f"no crew {name!r}")

    def set_password(self, name: str, password: str, now: datetime) -> None:
        """A new password also ends every session of the crew."""
        check_password(password)
        hashed = self.hasher.hash(password)
        with self.db.write() as db:
            row = db.execute("SELECT id FROM crews WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AccountError(f"no crew {name!r}")
            db.execute(
                "UPDATE crews SET password_hash = ?, password_changed_ms = ? WHERE id = ?",
                (hashed, ms(now), row[0]),
            )
            db.execute("DELETE FROM sessions WHERE crew_id = ?", (row[0],))
            db.execute("DELETE FROM lockouts WHERE key = ?", (_account_key(name),))

    def set_scope(self, name: str, scope: list[str]) -> None:
        if not scope:
            raise AccountError("give the crew a scope: --facility ID, --team NAME or --all")
        with self.db.write() as db:
            changed = db.execute(
                "UPDATE crews SET scope = ? WHERE name = ?",
                (json.dumps(sorted(set(scope))), name),
            ).rowcount
            if not changed:
                raise AccountError(f"no crew {name!r}")

    def get(self, name: str) -> Crew | None:
        with self.db.read() as db:
            row = db.execute("SELECT id, name, scope FROM crews WHERE name = ?", (name,)).fetchone()
        return crew_from_row(row) if row else None

    def by_id(self, crew_id: int) -> Crew | None:
        with self.db.read() as db:
            row = db.execute(
                "SELECT id, name, scope FROM crews WHERE id = ?", (crew_id,)
            ).fetchone()
        return crew_from_row(row) if row else None

    def list(self) -> list[Crew]:
        with self.db.read() as db:
            rows = db.execute("SELECT id, name, scope FROM crews ORDER BY name").fetchall()
        return [crew_from_row(row) for row in rows]

    # --- logging in -----------------------------------------------------------

    def login(self, name: str, password: str, address: str, now: datetime) -> LoginOutcome:
        """Check a password, counting failures per account and per address."""
        name = name.strip().lower()[:64]
        now_ms = ms(now)
        window_start = now_ms - self.settings.failure_window_s * 1000
        ip_key, account_key = _address_key(address), _account_key(name)
        with self.db.read() as db:
            ip_failures = db.execute(
                "SELECT COUNT(*), MIN(at_ms) FROM login_failures WHERE key = ? AND at_ms > ?",
                (ip_key, window_start),
            ).fetchone()
            locked = db.execute(
                "SELECT until_ms FROM lockouts WHERE key = ? AND until_ms > ?",
                (account_key, now_ms),
            ).fetchone()
            row = db.execute(
                "SELECT id, name, scope, password_hash FROM crews WHERE name = ?", (name,)
            ).fetchone()
        if ip_failures[0] >= self.settings.ip_max_failures:
            retry = ip_failures[1] + self.settings.failure_window_s * 1000 - now_ms
            return LoginOutcome(LoginResult.RATE_LIMITED, retry_after_s=_seconds(retry))
        if locked:
            return LoginOutcome(LoginResult.LOCKED, retry_after_s=_seconds(locked[0] - now_ms))
        if len(password) > MAX_PASSWORD or not self._verify(row[3] if row else None, password):
            return self._failed(ip_key, account_key, now_ms, window_start)
        crew = crew_from_row(row[:3])
        with self.db.write() as db:
            db.execute("DELETE FROM login_failures WHERE key = ?", (account_key,))
            if self.hasher.check_needs_rehash(row[3]):
                db.execute(
                    "UPDATE crews SET password_hash = ? WHERE id = ?",
                    (self.hasher.hash(password), crew.id),
                )
        return LoginOutcome(LoginResult.OK, crew)

    def _verify(self, hashed: str | None, password: str) -> bool:
        known = hashed is not None
        if hashed is None:
            # Spend the same time on an unknown name, so timing does not tell names apart.
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
            hashed = self._dummy_hash
        try:
            return bool(self.hasher.verify(hashed, password)) and known
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _failed(self, ip_key: str, account_key: str, now_ms: int, window: int) -> LoginOutcome:
        with self.db.write() as db:
            db.execute("DELETE FROM login_failures WHERE at_ms <= ?", (window,))
            db.execute("DELETE FROM lockouts WHERE until_ms <= ?", (now_ms,))
            db.executemany(
                "INSERT INTO login_failures (key, at_ms) VALUES (?, ?)",
                [(ip_key, now_ms), (account_key, now_ms)],
            )
            count = db.execute(
                "SELECT COUNT(*) FROM login_failures WHERE key = ?", (account_key,)
            ).fetchone()[0]
            if count >= self.settings.max_failures:
                until = now_ms + self.settings.lockout_s * 1000
                db.execute(
                    "INSERT OR REPLACE INTO lockouts (key, until_ms) VALUES (?, ?)",
                    (account_key, until),
                )
                db.execute("DELETE FROM login_failures WHERE key = ?", (account_key,))
        return LoginOutcome(LoginResult.WRONG)

    # --- API tokens for integrations -------------------------------------------

    def add_token(self, name: str, label: str, now: datetime) -> str:
        """A new token for the crew; only its hash is kept, so it is shown once."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", label):
            raise AccountError("a token label is 1-64 of A-Z, a-z, 0-9, '.', '_', '-'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as db:
            row = db.execute("SELECT id FROM crews WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AccountError(f"no crew {name!r}")
            if db.execute(
                "SELECT 1 FROM api_tokens WHERE crew_id = ? AND label = ?", (row[0], label)
            ).fetchone():
                raise AccountError(f"crew {name!r} has a token {label!r} already")
            db.execute(
                "INSERT INTO api_tokens (token_hash, crew_id, label, created_ms)"
                " VALUES (?, ?, ?, ?)",
                (token_hash(token), row[0], label, ms(now)),
            )
        return token

    def remove_token(self, name: str, label: str) -> None:
        with self.db.write() as db:
            removed = db.execute(
                "DELETE FROM api_tokens WHERE label = ?"
                " AND crew_id = (SELECT id FROM crews WHERE name = ?)",
                (label, name),
            ).rowcount
            if not removed:
                raise AccountError(f"crew {name!r} has no token {label!r}")

    def tokens(self, name: str) -> list[str]:
        with self.db.read() as db:
            rows = db.execute(
                "SELECT label FROM api_tokens JOIN crews ON crews.id = crew_id"
                " WHERE crews.name = ? ORDER BY label",
                (name,),
            ).fetchall()
        return [label for (label,) in rows]

    def by_token(self, token: str, now: datetime) -> tuple[Crew, str] | None:
        """The crew a bearer token belongs to, and the token's label."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = token_hash(token)
        with self.db.read() as db:
            row = db.execute(
                "SELECT crews.id, crews.name, crews.scope, label FROM api_tokens"
                " JOIN crews ON crews.id = crew_id WHERE token_hash = ?",
                (digest,),
            ).fetchone()
        if row is None:
            return None
        with self.db.write() as db:
            db.execute(
                "UPDATE api_tokens SET last_used_ms = ? WHERE token_hash = ?", (ms(now), digest)
            )
        return crew_from_row(row[:3]), row[3]


def crew_from_row(row: tuple[int, str, str]) -> Crew:
    return Crew(int(row[0]), row[1], tuple(json.loads(row[2])))


def _account_key(name: str) -> str:
    return "crew:" + name


def _address_key(address: str) -> str:
    return "ip:" + address


def _seconds(ms_left: int) -> int:
    return max(1, -(-ms_left // 1000))
