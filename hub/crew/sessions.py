"""Login sessions: a random token in an HttpOnly cookie, its hash in the database.

Each session has its own CSRF token, which the crew page sends back with every
change (a form field or the ``X-CSRF-Token`` header). Sessions end at a fixed
time after login, on logout, and when the crew's password changes.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.crew.accounts import Crew, crew_from_row, token_hash
from hub.crew.db import CrewDB, from_ms, ms


@dataclass(frozen=True)
class Session:
    crew: Crew
    csrf: str
    expires_at: datetime

    def csrf_ok(self, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(self.csrf, supplied or "")


class Sessions:
    def __init__(self, db: CrewDB, lifetime_s: int) -> None:
        self.db = db
        self.lifetime = timedelta(seconds=lifetime_s)

    def create(self, crew: Crew, now: datetime) -> tuple[str, Session]:
        """A new session; returns the cookie value (kept nowhere but in the cookie)."""
        token = secrets.token_urlsafe(32)
        session = Session(crew, secrets.token_urlsafe(32), now + self.lifetime)
        with self.db.write() as db:
            db.execute("DELETE FROM sessions WHERE expires_ms <= ?", (ms(now),))
            db.execute(
                "INSERT INTO sessions (token_hash, crew_id, csrf, created_ms, expires_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), crew.id, session.csrf, ms(now), ms(session.expires_at)),
            )
        return token, session

    def get(self, token: str | None, now: datetime) -> Session | None:
        if not token or len(token) > 100:
            return None
        with self.db.read() as db:
            row = db.execute(
                "SELECT crews.id, crews.name, crews.scope, csrf, expires_ms FROM sessions"
                " JOIN crews ON crews.id = crew_id WHERE token_hash = ? AND expires_ms > ?",
                (token_hash(token), ms(now)),
            ).fetchone()
        if row is None:
            return None
        return Session(crew_from_row(row[:3]), row[3], from_ms(row[4]))

    def end(self, token: str | None) -> None:
        if token:
            with self.db.write() as db:
                db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash(token),))
