"""What a crew can log, per facility kind, and how good each outcome is.

The ideas (a fixed list of actions per kind, each with one of three qualities,
and a free-text notice for anything else) follow the observation vocabulary the
City of Helsinki uses for its outdoor sports facilities; the ids, choices and
wording here are our own. Labels live in the translation catalogs
(``web/messages.py`` marks them), so the vocabulary itself is language-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Quality(StrEnum):
    GOOD = "good"
    SATISFACTORY = "satisfactory"
    UNUSABLE = "unusable"


@dataclass(frozen=True)
class Action:
    id: str
    quality: Quality | None
    """The usual outcome; a crew may log a different one."""


NOTICE = "notice"

_ACTIONS = {
    a.id: a
    for a in (
        Action("iced", Quality.GOOD),
        Action("icing_started", Quality.UNUSABLE),
        Action("brushed", Quality.GOOD),
        Action("plowed", Quality.GOOD),
        Action("mowed", Quality.GOOD),
        Action("groomed", Quality.GOOD),
        Action("base_prepared", Quality.SATISFACTORY),
        Action("littered", Quality.SATISFACTORY),
        Action("snowless", Quality.UNUSABLE),
        Action("snowmaking", Quality.UNUSABLE),
        Action("event", Quality.UNUSABLE),
        Action("cleaned", Quality.GOOD),
        Action("out_of_order", Quality.UNUSABLE),
        Action("back_in_order", Quality.GOOD),
        Action("opened", Quality.GOOD),
        Action("closed", Quality.UNUSABLE),
        Action(NOTICE, None),
    )
}

_RINK = ("iced", "brushed", "plowed", "icing_started", "opened", "closed")

# Per facility kind, in the order the buttons appear: the most frequent first.
ACTIONS_BY_KIND: dict[str, tuple[str, ...]] = {
    "ice_rink": _RINK,
    "sports_field": (*_RINK[:4], "mowed", "opened", "closed"),
    "ski_trail": (
        "groomed",
        "base_prepared",
        "snowless",
        "littered",
        "snowmaking",
        "event",
        "opened",
        "closed",
    ),
    "carpet_washing": ("cleaned", "out_of_order", "back_in_order"),
    "swimming_hall": ("opened", "closed"),
    "gym": ("opened", "closed"),
    "library": ("opened", "closed"),
    "other": ("opened", "closed"),
}

# How long a logged condition says something true, per kind. Ice and trails
# change within a day (weather, skaters); a carpet-washing place rarely does.
CONDITION_TTL_S: dict[str, int] = {
    "ice_rink": 24 * 3600,
    "sports_field": 24 * 3600,
    "ski_trail": 36 * 3600,
    "carpet_washing": 72 * 3600,
    "swimming_hall": 72 * 3600,
    "gym": 72 * 3600,
    "library": 72 * 3600,
    "other": 72 * 3600,
}


def action(action_id: str) -> Action | None:
    return _ACTIONS.get(action_id)


def usual(action_id: str) -> Quality | None:
    """The action's usual quality (None for a notice or an unknown action)."""
    known = _ACTIONS.get(action_id)
    return known.quality if known else None


def actions_for(kind: str) -> tuple[str, ...]:
    """The actions a crew may log at a facility of this kind (the notice included)."""
    return (*ACTIONS_BY_KIND.get(kind, ACTIONS_BY_KIND["other"]), NOTICE)


def all_actions() -> list[Action]:
    return list(_ACTIONS.values())
