"""Language choice, the translation catalogs and locale formatting.

Every user-visible string is an English message in the code or a template,
translated through the gettext catalogs ``translations/{lang}/LC_MESSAGES/messages.po``
(``make translations`` runs ``pybabel extract``, ``update`` and ``compile``). The hub
reads the ``.po`` files itself, so an install needs no build step. Sentences with
values in them have ``{name}`` slots, filled by ``fill`` here and by the same rule
in ``static/live.js``, so the server-rendered page and the live updates read alike.
Numbers and times go through Babel (CLDR), as the browser's ``Intl`` does.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

from web import WEB_DIR
from web.messages import N_

LANGUAGES = ("fi", "sv", "en")
# The locale each language is formatted in; the same tags go to the browser's Intl.
LOCALES = {"fi": "fi-FI", "sv": "sv-FI", "en": "en-GB"}
SITE_ZONE = ZoneInfo("Europe/Helsinki")
_SLOT = re.compile(r"\{(\w+)\}")
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


TRANSLATIONS_DIR = WEB_DIR / "translations"


def po_path(lang: str) -> Path:
    return TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po"


@cache
def translations(lang: str) -> Translations:
    """The language's catalog, compiled in memory from its ``.po`` file (fuzzy
    entries left out, as ``pybabel compile`` does)."""
    with po_path(lang).open("rb") as source:
        po = read_po(source, locale=lang)
    compiled = BytesIO()
    write_mo(compiled, po)
    compiled.seek(0)
    return Translations(compiled)


@cache
def plural_samples(lang: str) -> dict[str, int]:
    """A number for each plural category of the language, by the names CLDR and the
    browser's ``Intl.PluralRules`` give them ("one", "other"). Checked against the
    catalog's own rule: every number of a category takes the same form there."""
    rule = Locale.parse(LOCALES[lang], sep="-").plural_form
    form_of = translations(lang).plural
    samples: dict[str, int] = {}
    for n in range(1000):
        first = samples.setdefault(rule(n), n)
        if form_of(first) != form_of(n):
            raise ValueError(f"{lang}: the catalog's plural rule splits CLDR's {rule(n)!r}")
    return samples


def client_strings(lang: str, messages: dict[str, str | tuple[str, str]]) -> dict[str, Any]:
    """The scripts' strings in a language; a message with plural forms as a form per
    plural category, for the script to pick with ``Intl.PluralRules``."""
    catalog = translations(lang)
    out: dict[str, Any] = {}
    for key, message in messages.items():
        if isinstance(message, str):
            out[key] = catalog.gettext(message)
        else:
            singular, plural = message
            out[key] = {
                category: catalog.ngettext(singular, plural, n)
                for category, n in plural_samples(lang).items()
            }
    return out


def fill(template: str, **values: object) -> str:
    """Put values into a catalog template's ``{name}`` slots (unknown slots stay)."""
    return _SLOT.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def negotiate(query_lang: str | None, accept_language: str | None, default: str) -> str:
    """?lang= wins, then the browser's Accept-Language by weight, then the default."""
    if query_lang in LANGUAGES:
        return query_lang
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            choices.append((-weight, index, primary))
    return min(choices)[2] if choices else default


def age_unit(seconds: float) -> tuple[int, str] | None:
    """How an age is said: None for "just now", else (amount, unit).

    The client's ``ageText`` in live.js follows the same steps."""
    if seconds < 10:
        return None
    if seconds < 60:
        return int(seconds), "second"
    minutes = int(seconds // 60)
    if minutes < 60:
        return minutes, "minute"
    hours = minutes // 60
    if hours < 48:
        return hours, "hour"
    return hours // 24, "day"


class Formatter:
    """Numbers, times and ages in one language's locale."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.translations = translations(lang)
        self.gettext = self.translations.gettext
        self.ngettext = self.translations.ngettext
        self.pgettext = self.translations.pgettext
        self.locale = Locale.parse(LOCALES[lang], sep="-")

    def number(self, value: float, digits: int = 0) -> str:
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return format_decimal(round(value, digits), format=pattern, locale=self.locale)

    def percent(self, pct: float) -> str:
        return format_percent(round(pct) / 100, locale=self.locale)

    def clock(self, value: datetime | time, zone: ZoneInfo = SITE_ZONE) -> str:
        """A time of day, short form ("6.30" in Finnish, "06:30" in English)."""
        if isinstance(value, datetime):
            value = value.astimezone(zone).time()
        return format_time(value, "short", locale=self.locale)

    def span(self, start: datetime | time, end: datetime | time, zone: ZoneInfo = SITE_ZONE) -> str:
        return f"{self.clock(start, zone)}–{self.clock(end, zone)}"

    def standalone_weekday(self, when: datetime) -> str:
        """ "maanantai", "måndag", "Monday": the weekday as a word on its own."""
        return format_date(when, "cccc", locale=self.locale)

    def date(self, value: date) -> str:
        return format_date(value, "long", locale=self.locale)

    def age(
        self,
        seconds: float | None,
        template: str = N_("updated {ago}"),
        now_text: str = N_("updated just now"),
    ) -> str:
        """ "updated 3 minutes ago"; "no data yet" when nothing was ever measured.
        ``template`` and ``now_text`` are other phrasings ("picture 3 minutes ago")."""
        if seconds is None:
            return self.gettext("no data yet")
        if age_unit(seconds) is None:
            return self.gettext(now_text)
        return fill(self.gettext(template), ago=self.ago(seconds))

    def ago(self, seconds: float) -> str:
        """ "3 minutes ago", in the unit ``age_unit`` picks (under 10 s: seconds)."""
        amount, name = age_unit(seconds) or (max(0, int(seconds)), "second")
        return format_timedelta(
            timedelta(seconds=-amount * UNIT_SECONDS[name]),
            granularity=name,
            threshold=10**6,
            add_direction=True,
            locale=self.locale,
        )

    def duration(self, seconds: float) -> str:
        """ "15 minutes", "6 hours": a length of time, rounded to its largest unit."""
        return format_timedelta(timedelta(seconds=seconds), locale=self.locale)

    def temperature(self, celsius: float) -> str:
        return f"{self.number(celsius, 1)} °C"
