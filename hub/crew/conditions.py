"""A facility's public condition: the newest logged work, until it is too old to trust.

Decay happens here, in what the API says, not only on the page: past the
kind's time-to-live a condition reads ``condition_state: "unknown"`` with no
value, while the history still tells when the work was done.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.crew.maintenance import Entry, Latest
from web.i18n import translations
from web.messages import CREW_ACTIONS


def label(action: str, lang: str) -> str:
    return translations(lang).gettext(CREW_ACTIONS[action]) if action in CREW_ACTIONS else action


def when_text(at: datetime, tz: ZoneInfo, now: datetime, lang: str) -> str:
    """ "today 06:30", "yesterday 22:10" or "21.11. 06:30", in the facility's time zone."""
    gettext = translations(lang).gettext
    local, today = at.astimezone(tz), now.astimezone(tz).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return gettext("today") + " " + clock
    if local.date() == today - timedelta(days=1):
        return gettext("yesterday") + " " + clock
    return f"{local.day}.{local.month}. {clock}"


def notice_text(notice: dict[str, str] | None, lang: str) -> str | None:
    if not notice:
        return None
    for candidate in (lang, "fi", "sv", "en"):
        if candidate in notice:
            return notice[candidate]
    return None


def condition_fields(
    latest: Latest | None, lang: str, tz: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """The condition fields of the public facility shape (all empty when unknown)."""
    out: dict[str, Any] = {"condition_state": "unknown"}
    if latest is None:
        return out
    entry: Entry | None = latest.condition
    if entry is not None:
        expires = entry.performed_at + timedelta(seconds=latest.condition_ttl_s)
        if now < expires:
            text = label(entry.action, lang)
            out.update(
                condition=entry.action,
                condition_label=text,
                condition_quality=entry.quality.value if entry.quality else None,
                condition_at=entry.performed_at,
                condition_expires_at=expires,
                condition_state="known",
                condition_text=f"{text} {when_text(entry.performed_at, tz, now, lang)}",
            )
    notice = latest.notice
    if notice is not None and now < notice.performed_at + timedelta(seconds=latest.notice_ttl_s):
        out.update(notice=notice_text(notice.notice, lang), notice_at=notice.performed_at)
    return out
