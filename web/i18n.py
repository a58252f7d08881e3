"""Language choice and the translation catalogs (one JSON file per language)."""

from __future__ import annotations

import json
from functools import cache

from web import WEB_DIR

LANGUAGES = ("fi", "sv", "en")


@cache
def catalog(lang: str) -> dict[str, str]:
    path = WEB_DIR / "translations" / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8"))


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
