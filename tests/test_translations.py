"""The gettext catalogs: every message the code and the templates use is in the
Finnish, Swedish and English catalogs, translated, with the same slots, and the
catalogs hold nothing the code no longer says."""

from __future__ import annotations

import re

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from hub.config import FacilityKind
from hub.crew import vocabulary
from web import STATIC_DIR, WEB_DIR
from web.i18n import LANGUAGES, client_strings, plural_samples, po_path, translations
from web.messages import (
    CAMERA_REASONS,
    CLIENT,
    CONDITIONS,
    CREW_ACTIONS,
    CREW_CLIENT,
    CREW_QUALITIES,
    KINDS,
)

ROOT = WEB_DIR.parent
# As in the Makefile's `translations` target (babel.cfg, the extra plural marker).
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
KEYWORDS = {
    "_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3), "N_": None, "nN_": (1, 2),
}  # fmt: skip
SLOT = re.compile(r"\{(\w+)\}")


def used() -> dict[tuple[str | None, str], tuple[str, ...]]:
    """(context, msgid) → the message's ids (one, or singular and plural), from the code."""
    found: dict[tuple[str | None, str], tuple[str, ...]] = {}
    for folder in ("web", "hub"):
        for _, _, message, _, context in extract_from_dir(
            ROOT / folder, METHODS, keywords=KEYWORDS, comment_tags=()
        ):
            ids = (message,) if isinstance(message, str) else tuple(message)
            found[(context, ids[0])] = ids
    return found


def load(lang: str) -> Catalog:
    with po_path(lang).open("rb") as source:
        return read_po(source, locale=lang)


def slots(text: str) -> set[str]:
    return set(SLOT.findall(text))


def test_the_extraction_sees_the_templates_the_code_and_the_markers() -> None:
    found = used()
    assert (None, "How busy is it now?") in found  # a template
    assert (None, "closed today") in found  # web/pages.py
    assert (None, "yesterday") in found  # hub/crew/conditions.py
    assert ("crew", "Nearest first") in found  # with a context
    assert (None, "carpet washing place") in found  # an N_ marker


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated_in(lang: str) -> None:
    catalog = load(lang)
    found = used()
    messages: dict[tuple[str | None, str], Message] = {
        (m.context, m.id if isinstance(m.id, str) else m.id[0]): m for m in catalog if m.id
    }
    assert set(found) - set(messages) == set(), "missing: run `make translations`"
    assert set(messages) - set(found) == set(), "no longer used: run `make translations`"
    plurals = catalog.num_plurals
    for key, ids in found.items():
        message = messages[key]
        assert not message.fuzzy, (lang, key)
        assert (message.id if isinstance(message.id, str) else tuple(message.id)) == (
            ids[0] if len(ids) == 1 else ids
        ), (lang, key)
        wanted = set().union(*(slots(i) for i in ids))
        forms = [message.string] if isinstance(message.string, str) else list(message.string)
        assert len(forms) == (1 if len(ids) == 1 else plurals), (lang, key, forms)
        for form in forms:
            assert form.strip(), (lang, key)
            assert slots(form) == wanted, (lang, key, form)


def test_every_word_picked_at_run_time_has_a_message() -> None:
    assert set(KINDS) == {k.value for k in FacilityKind}
    assert set(CREW_ACTIONS) == {a.id for a in vocabulary.all_actions()}
    assert set(CREW_QUALITIES) == set(CONDITIONS) == {q.value for q in vocabulary.Quality}
    assert {"error", "dark"} <= set(CAMERA_REASONS)


def scripts_use(name: str) -> set[str]:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    return set(re.findall(r"\bt\.([a-z_]+)", text))


def test_the_scripts_get_every_string_they_use() -> None:
    assert scripts_use("live.js") | scripts_use("near.js") <= set(CLIENT)
    assert scripts_use("crew.js") <= set(CREW_CLIENT)
    live = (STATIC_DIR / "live.js").read_text(encoding="utf-8")
    for prefix in re.findall(r't\["([a-z]+_)" \+', live):  # t["level_" + f.level]
        assert any(key.startswith(prefix) for key in CLIENT), prefix


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_scripts_get_a_form_per_plural_category(lang: str) -> None:
    strings = client_strings(lang, CLIENT)
    assert set(plural_samples(lang)) == {"one", "other"}  # CLDR's categories for fi, sv, en
    forms = strings["places_free"]
    catalog = translations(lang)
    assert forms == {
        "one": catalog.ngettext("{n} place free", "{n} places free", 1),
        "other": catalog.ngettext("{n} place free", "{n} places free", 5),
    }
    assert forms["one"] != forms["other"]
    assert isinstance(strings["live"], str)
    assert isinstance(client_strings(lang, CREW_CLIENT)["crew_queued"], dict)


def test_a_catalog_rule_that_splits_a_plural_category_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scripts pick forms by CLDR's categories; a catalog whose Plural-Forms put
    two numbers of one category in different forms cannot be said that way."""
    catalog = translations("fi")
    monkeypatch.setattr(catalog, "plural", lambda n: int(n == 1 or n == 7))
    with pytest.raises(ValueError, match="splits CLDR's 'other'"):
        plural_samples.__wrapped__("fi")
