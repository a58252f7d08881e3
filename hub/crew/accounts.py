"""Crew accounts: argon2-hashed passwords, scopes, API tokens.

A crew is scoped to facilities (``facility:ID``), to a team of facilities named
in the configuration (``team:NAME``), or to the whole municipality (``*``, every
facility of this hub). Who may try a password, and when, is decided before it
is checked (hub/crew/throttle.py); checks run a few at a time (hub/crew/checks.py).
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
    RATE_LIMITED = "rate_limited"  # its address tried too many wrong passwords
    DELAYED = "delayed"  # the account had wrong passwords: this try must wait
    BUSY = "busy"  # too many passwords being checked at once


@dataclass(frozen=True)
class LoginOutcome:
    result: LoginResult
    crew: Crew | None = None
    retry_after_s: int = 0
    device_token: str | None = None


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
            # Wrong passwords counted against the old one no longer make anyone wait.
            db.execute(
                "DELETE FROM login_failures WHERE key = ? OR substr(key, 1, ?) = ?",
                ("crew:" + name, len(name) + 6, "crew:" + name + "|"),
            )

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

    # --- checking a password (hub/crew/throttle.py decides whether it may be tried) ---

    def verify(self, hashed: str | None, password: str) -> tuple[bool, str | None]:
        """Whether the password is right, and its new hash when the stored one uses
        older costs. An unknown name (``hashed`` None) costs the same time, so
        timing does not tell names apart."""
        known = hashed is not None
        if hashed is None:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
            hashed = self._dummy_hash
        if len(password) > MAX_PASSWORD:
            return False, None
        try:
            ok = bool(self.hasher.verify(hashed, password)) and known
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if ok and self.hasher.check_needs_rehash(hashed):
            return True, self.hasher.hash(password)
        return ok, None

    def rehash(self, crew_id: int, hashed: str) -> None:
        with self.db.write() as db:
            db.execute("UPDATE crews SET password_hash = ? WHERE id = ?", (hashed, crew_id))

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
