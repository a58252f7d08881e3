"""Words picked at run time — a facility's kind, a level, a crew action — and the
strings the browser scripts need. ``N_`` marks them for ``pybabel extract``; they
are translated where they are shown, through the catalogs in ``translations/``."""

from __future__ import annotations


def N_(message: str) -> str:
    return message


def nN_(singular: str, plural: str) -> tuple[str, str]:
    """``N_`` for a message with plural forms."""
    return singular, plural


KINDS = {
    "swimming_hall": N_("swimming hall"),
    "carpet_washing": N_("carpet washing place"),
    "ice_rink": N_("ice rink"),
    "ski_trail": N_("ski trail"),
    "sports_field": N_("sports field"),
    "gym": N_("gym"),
    "library": N_("library"),
    "other": N_("facility"),
}
LEVELS = {
    "quiet": N_("quiet"),
    "moderate": N_("moderate"),
    "busy": N_("busy"),
    "full": N_("full"),
}
TRENDS = {
    "rising": N_("filling up"),
    "steady": N_("steady"),
    "falling": N_("emptying"),
}
VERSUS = {
    "busier": N_("busier than usual"),
    "quieter": N_("quieter than usual"),
    "same": N_("about as busy as usual"),
}
# A crew's word on the condition, as the public pages say it.
CONDITIONS = {
    "good": N_("good condition"),
    "satisfactory": N_("fair condition"),
    "unusable": N_("not usable"),
}
# Why a camera sends no new picture (its status when it failed closed).
CAMERA_REASONS = {
    "dark": N_("too dark"),
    "light_change": N_("the light changed suddenly"),
    "calibrating": N_("the camera is still learning the scene"),
    "implausible_mask": N_("hiding people in the picture could not be confirmed"),
    "error": N_("a technical fault"),
    "timeout": N_("the camera did not answer in time"),
    "no_frame": N_("no picture from the camera"),
}
CREW_ACTIONS = {
    "iced": N_("Iced"),
    "icing_started": N_("Icing in progress"),
    "brushed": N_("Brushed"),
    "plowed": N_("Snow ploughed"),
    "mowed": N_("Grass mowed"),
    "groomed": N_("Groomed, tracks set"),
    "base_prepared": N_("Base prepared, no tracks yet"),
    "littered": N_("Litter on the trail"),
    "snowless": N_("Not enough snow"),
    "snowmaking": N_("Snowmaking in progress"),
    "event": N_("Reserved for a race or training"),
    "cleaned": N_("Cleaned"),
    "out_of_order": N_("Out of order"),
    "back_in_order": N_("Back in order"),
    "opened": N_("Opened"),
    "closed": N_("Closed"),
    "notice": N_("Notice"),
}
# How good the outcome of a crew's work is, as the crew page says it.
CREW_QUALITIES = {
    "good": N_("good"),
    "satisfactory": N_("satisfactory"),
    "unusable": N_("unusable"),
}
NOTICE_LANGUAGES = {"fi": N_("In Finnish"), "sv": N_("In Swedish"), "en": N_("In English")}

# What static/live.js and near.js say, by the names the scripts use; a message with
# plural forms goes to the browser as its forms per plural category (web/i18n.py).
Client = dict[str, str | tuple[str, str]]
CLIENT: Client = {
    **{f"level_{k}": v for k, v in LEVELS.items()},
    **{f"trend_{k}": v for k, v in TRENDS.items()},
    **{f"usual_{k}": v for k, v in VERSUS.items()},
    **{f"cond_{k}": v for k, v in CONDITIONS.items()},
    **{f"camera_{k}": v for k, v in CAMERA_REASONS.items()},
    "updated_ago": N_("updated {ago}"),
    "just_now": N_("updated just now"),
    "no_data": N_("no data yet"),
    "pct_of_capacity": N_("{pct} of capacity ({capacity})"),
    "people": nN_("person", "people"),
    "people_seen": nN_("person on the camera image", "people on the camera image"),
    "people_on_camera": nN_("{n} person on the camera image", "{n} people on the camera image"),
    "ice_temp": N_("ice {temp}"),
    "air_temp": N_("air {temp}"),
    "open_now": N_("open now"),
    "closed_now": N_("closed now"),
    "live": N_("Figures update on their own."),
    "connecting": N_("Connecting…"),
    "offline": N_("Connection lost: figures are not updating. Trying again in {s} s."),
    "places_free": nN_("{n} place free", "{n} places free"),
    "distance": N_("{km} away"),
    "location_failed": N_("Could not get your location, so the list is in the usual order."),
    "sorted_near": N_("Nearest first. Your location is used only on your device."),
    "picture_ago": N_("picture {ago}"),
    "picture_just_now": N_("picture just now"),
    "spots_in_use": nN_(
        "{n} of {total} washing spot in use", "{n} of {total} washing spots in use"
    ),
    "people_waiting": N_("waiting for a spot: {n}"),
    "camera_alt_people": N_("Anonymised camera picture, {time}: people {people}."),
    "camera_alt_spots": N_(
        "Anonymised camera picture, {time}: people {people}, spots in use {used} of {total}."
    ),
    "camera_not_current": N_("No current picture: the newest is from {time}."),
    "camera_paused_short": N_("Camera paused: {reason}"),
    "map_zoom_in": N_("Zoom in"),
    "map_zoom_out": N_("Zoom out"),
}
# What static/crew.js says.
CREW_CLIENT: Client = {
    "crew_no_condition": N_("No current entry"),
    "crew_queued": nN_(
        "{count} entry waiting for a connection; it keeps the time of the work.",
        "{count} entries waiting for a connection; they keep the time of the work.",
    ),
    "crew_offline": N_("No connection."),
    "crew_location_failed": N_("Could not get the location; the order is unchanged."),
    "crew_kept": N_("Kept on this phone: {what}"),
    "crew_notice_empty": N_("Write the notice first."),
    "crew_undo": N_("Undo the last one"),
    "crew_undone": N_("Taken back."),
    "crew_rejected": N_("Not saved ({what}): {reason}"),
    "crew_session_ended": nN_(
        "Your session ended: log in again. {count} entry is kept on this phone.",
        "Your session ended: log in again. {count} entries are kept on this phone.",
    ),
    "crew_sent": N_("Saved: {text}"),
    "crew_corrected": N_("corrected"),
    "crew_nothing_yet": N_("Nothing logged yet."),
    **{f"crew_quality_{k}": v for k, v in CREW_QUALITIES.items()},
}
