"""Maintenance crews against a real hub: accounts, sessions, CSRF, scope, the log, decay.

One hub serves the module (crews are made with the real ``ruuhka crew`` command);
each test uses its own facility, crew or client address where state could leak.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from websockets.sync.client import connect as ws_connect

from hub.config import FacilityKind
from hub.crew import vocabulary
from hub.crew.settings import CrewSettings
from tests.conftest import HubProcess, http_get, mosquitto_pub, wait_for
from tests.crew_support import (
    PASSWORD,
    CrewClient,
    CrewHub,
    add_crew,
    crew_hub,
    iso,
    ruuhka_crew,
)
from web.i18n import translations
from web.messages import CREW_ACTIONS, CREW_QUALITIES


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrewHub]:
    with crew_hub(tmp_path_factory.mktemp("crew")) as running:
        yield running


def now() -> datetime:
    return datetime.now(UTC)


def public_history(hub: HubProcess, facility: str, query: str = "") -> list[dict[str, Any]]:
    return hub.get(f"/api/v1/facilities/{facility}/maintenance?lang=en{query}")  # type: ignore[no-any-return]


def crew_db(hub: HubProcess) -> sqlite3.Connection:
    return sqlite3.connect(hub.config.parent / "crew.db")


# --- the vocabulary (no hub needed) -------------------------------------------


def test_every_kind_has_actions_a_decay_time_and_words_in_three_languages() -> None:
    for kind in FacilityKind:
        assert vocabulary.actions_for(kind.value)[-1] == vocabulary.NOTICE
        assert kind.value in vocabulary.ACTIONS_BY_KIND
        assert CrewSettings().ttl_for(kind.value) > 0
    for lang in ("fi", "sv", "en"):
        gettext = translations(lang).gettext
        for action in vocabulary.all_actions():
            assert gettext(CREW_ACTIONS[action.id]), (lang, action.id)
        for quality in vocabulary.Quality:
            assert gettext(CREW_QUALITIES[quality.value]), (lang, quality)
    assert vocabulary.usual("iced") is vocabulary.Quality.GOOD
    assert vocabulary.usual("snowless") is vocabulary.Quality.UNUSABLE
    with pytest.raises(ValueError, match="unknown facility kind"):
        CrewSettings(condition_ttl_s={"volcano": 5})


# --- accounts, logging in, sessions --------------------------------------------


def test_passwords_are_stored_as_argon2_hashes(hub: HubProcess) -> None:
    with crew_db(hub) as db:
        rows = db.execute("SELECT name, password_hash FROM crews").fetchall()
    assert {name for name, _ in rows} >= {"rinkcrew", "north", "city"}
    for _, hashed in rows:
        assert hashed.startswith("$argon2id$")
        assert PASSWORD not in hashed


def test_login_sets_a_locked_down_cookie_and_a_wrong_password_does_not(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.1.1")
    assert client.http.get("/api/v1/crew/me").status_code == 401
    wrong = client.try_login("rinkcrew", "not the password")
    assert wrong.status_code == 401
    assert "Wrong user name or password" in wrong.text
    assert "ruuhka_crew=" not in wrong.headers.get("set-cookie", "")
    assert client.http.get("/api/v1/crew/me").status_code == 401
    unknown = client.try_login("nobody", PASSWORD)
    assert unknown.status_code == 401

    ok = client.try_login("rinkcrew", PASSWORD)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/crew")
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("ruuhka_crew="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    me = client.http.get("/api/v1/crew/me").json()
    assert me["crew"] == "rinkcrew" and me["facilities"] == ["rink"]

    # Behind a TLS-terminating proxy (trusted: loopback) the cookie is Secure.
    tls = CrewClient(hub, "10.0.1.2").try_login(
        "rinkcrew", PASSWORD, **{"X-Forwarded-Proto": "https"}
    )
    assert tls.status_code == 303
    assert "Secure" in tls.headers["set-cookie"]


def test_logout_ends_the_session(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.2.1").login("city")
    cookie = client.http.cookies["ruuhka_crew"]
    assert client.http.post("/crew/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.http.get("/api/v1/crew/me").status_code == 200
    out = client.http.post("/crew/logout", data={"csrf": client.csrf})
    assert out.status_code == 303
    replay = CrewClient(hub, "10.0.2.1")
    replay.http.cookies.set("ruuhka_crew", cookie)
    assert replay.http.get("/api/v1/crew/me").status_code == 401
    assert replay.http.get("/crew").status_code == 303  # back to the login form


def test_wrong_passwords_slow_guessing_down_but_never_lock_the_crew_out(hub: HubProcess) -> None:
    add_crew(hub.config, "locky", "--facility", "rink")
    delayed_before = hub.metric("ruuhka_crew_logins_total", result="delayed")
    phone = CrewClient(hub, "10.0.3.9").login("locky")  # the crew's own phone
    assert "ruuhka_device" in phone.http.cookies
    guesser = CrewClient(hub, "10.0.3.1")
    for _ in range(3):  # max_failures = 3
        assert guesser.try_login("locky", "wrong password!").status_code == 401
    delayed = guesser.try_login("locky", "wrong password!")
    assert delayed.status_code == 429  # first_delay_s = 5: wait before the next try
    assert 1 <= int(delayed.headers["retry-after"]) <= 5
    assert "Too many attempts" in delayed.text
    # Another place the account does not know waits too: the count is the account's.
    assert CrewClient(hub, "10.0.3.2").try_login("locky", PASSWORD).status_code == 429
    assert hub.metric("ruuhka_crew_logins_total", result="delayed") == delayed_before + 2
    # The phone is known to the account (its cookie), and so is its address:
    # failures from elsewhere do not make either wait.
    assert phone.try_login("locky", PASSWORD).status_code == 303
    assert CrewClient(hub, "10.0.3.9").try_login("locky", PASSWORD).status_code == 303
    wait_for(
        lambda: CrewClient(hub, "10.0.3.3").try_login("locky", PASSWORD).status_code == 303,
        20,
        "the wait to pass",
    )


def test_one_address_guessing_many_names_is_throttled(hub: HubProcess) -> None:
    limited_before = hub.metric("ruuhka_crew_logins_total", result="rate_limited")
    guesser = CrewClient(hub, "10.0.4.1")
    for number in range(6):  # ip_max_failures = 6
        assert guesser.try_login(f"guess{number}", "password123").status_code == 401
    limited = guesser.try_login("city", PASSWORD)
    assert limited.status_code == 429
    assert hub.metric("ruuhka_crew_logins_total", result="rate_limited") == limited_before + 1
    assert CrewClient(hub, "10.0.4.2").try_login("city", PASSWORD).status_code == 303


def test_an_expired_session_is_refused(tmp_path: Path) -> None:
    with crew_hub(tmp_path, session_lifetime_s=2) as short:
        client = CrewClient(short).login("rinkcrew")
        assert client.http.get("/api/v1/crew/me").status_code == 200
        wait_for(
            lambda: client.http.get("/api/v1/crew/me").status_code == 401,
            15,
            "the session to expire",
        )
        refused = client.log(facility="rink", action="iced")
        assert refused.status_code == 401
        assert client.http.get("/crew").status_code == 303
        assert short.get("/api/v1/facilities/rink/maintenance") == []


def test_passwd_and_remove_end_sessions_and_tokens_but_keep_entries(hub: HubProcess) -> None:
    add_crew(hub.config, "temp", "--facility", "carpets")
    client = CrewClient(hub, "10.0.5.1").login("temp")
    token = ruuhka_crew(hub.config, "token", "temp", "plow-gps")
    assert token.returncode == 0, token.stderr
    bearer = {"Authorization": "Bearer " + token.stdout.strip()}
    by_token = client.http.post(
        "/api/v1/crew/entries",
        content=json.dumps({"facility": "carpets", "action": "cleaned"}),
        headers=bearer,
    )
    assert by_token.status_code == 201, by_token.text
    assert by_token.json()["via"] == "token:plow-gps"

    changed = ruuhka_crew(hub.config, "passwd", "temp", password="another password")
    assert changed.returncode == 0, changed.stderr
    assert client.http.get("/api/v1/crew/me").status_code == 401
    assert CrewClient(hub, "10.0.5.2").login("temp", "another password").csrf

    assert ruuhka_crew(hub.config, "remove", "temp").returncode == 0
    gone = client.http.get("/api/v1/crew/me", headers=bearer)
    assert gone.status_code == 401
    assert any(e["id"] == by_token.json()["id"] for e in public_history(hub, "carpets"))


def test_the_crew_command_refuses_bad_input(hub: HubProcess) -> None:
    short = ruuhka_crew(hub.config, "add", "shorty", "--all", password="short")
    assert short.returncode == 1 and "at least 10" in short.stderr
    unknown = ruuhka_crew(hub.config, "add", "x", "--facility", "nowhere", password=PASSWORD)
    assert unknown.returncode != 0 and "no facility 'nowhere'" in unknown.stderr
    noscope = ruuhka_crew(hub.config, "add", "noscope", password=PASSWORD)
    assert noscope.returncode == 1 and "scope" in noscope.stderr
    twice = ruuhka_crew(hub.config, "add", "rinkcrew", "--all", password=PASSWORD)
    assert twice.returncode == 1 and "exists already" in twice.stderr
    badname = ruuhka_crew(hub.config, "add", "Bad Name", "--all", password=PASSWORD)
    assert badname.returncode == 1 and "bad crew name" in badname.stderr
    add_crew(hub.config, "scopey", "--facility", "pool")
    rescoped = ruuhka_crew(hub.config, "scope", "scopey", "--team", "north", "--facility", "rink")
    assert rescoped.returncode == 0, rescoped.stderr
    me = CrewClient(hub, "10.0.15.1").login("scopey").http.get("/api/v1/crew/me").json()
    assert me["facilities"] == ["carpets", "pool", "rink"]
    listed = ruuhka_crew(hub.config, "list")
    assert "rinkcrew\tfacility:rink" in listed.stdout
    assert "north\tteam:north" in listed.stdout


# --- CSRF and scope --------------------------------------------------------------


def test_csrf_is_required_for_cookie_sessions(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.6.1").login("rinkcrew")
    before = len(public_history(hub, "rink"))
    rejected_before = hub.metric("ruuhka_crew_csrf_rejected_total")
    assert client.log(csrf=None, facility="rink", action="brushed").status_code == 403
    assert client.log(csrf="forged", facility="rink", action="brushed").status_code == 403
    foreign = client.http.post(
        "/api/v1/crew/entries",
        content=json.dumps({"facility": "rink", "action": "brushed"}),
        headers={"X-CSRF-Token": client.csrf, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    cross_site = client.http.post(
        "/crew/log",
        data={"csrf": client.csrf, "facility": "rink", "action": "brushed"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403
    form_without = client.http.post("/crew/log", data={"facility": "rink", "action": "brushed"})
    assert form_without.status_code == 403
    assert len(public_history(hub, "rink")) == before
    assert hub.metric("ruuhka_crew_csrf_rejected_total") == rejected_before + 5

    # A login form posted without its own token (login CSRF) is refused too.
    login = CrewClient(hub, "10.0.6.2").http.post(
        "/crew/login", data={"name": "rinkcrew", "password": PASSWORD}
    )
    assert login.status_code == 403
    assert "ruuhka_crew=" not in login.headers.get("set-cookie", "")

    ok = client.log(facility="rink", action="brushed")
    assert ok.status_code == 201, ok.text
    # The plain form (no JavaScript) works with the page's token.
    form = client.http.post(
        "/crew/log?lang=en",
        data={"csrf": client.csrf, "facility": "rink", "action": "plowed", "ago": "30"},
    )
    assert form.status_code == 303 and "done=" in form.headers["location"]
    plowed = public_history(hub, "rink", "&action=plowed&limit=1")[0]
    age = now() - datetime.fromisoformat(plowed["performed_at"])
    assert timedelta(minutes=29) < age < timedelta(minutes=32)


def test_the_plain_form_takes_a_local_time_and_says_what_is_wrong(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.16.1").login("north")
    done = (now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    local = done.astimezone(ZoneInfo("Europe/Helsinki")).strftime("%Y-%m-%dT%H:%M")
    form = {"csrf": client.csrf, "facility": "pool", "action": "opened", "at": local}
    assert client.http.post("/crew/log?lang=en", data=form).status_code == 303
    logged = public_history(hub, "pool", "&action=opened&limit=1")[0]
    assert datetime.fromisoformat(logged["performed_at"]) == done
    future = (now() + timedelta(hours=2)).astimezone(ZoneInfo("Europe/Helsinki"))
    refused = client.http.post(
        "/crew/log?lang=en", data={**form, "at": future.strftime("%Y-%m-%dT%H:%M")}
    )
    assert refused.status_code == 422
    assert "in the future" in refused.text and 'role="alert"' in refused.text
    unknown = client.http.post("/crew/log?lang=en", data={**form, "action": "groomed"})
    assert unknown.status_code == 422 and "is not logged at a swimming_hall" in unknown.text


def test_out_of_range_input_is_refused_with_a_message(hub: HubProcess) -> None:
    """Numbers and dates a store cannot keep, and digits int() refuses: 4xx, never 500."""
    client = CrewClient(hub, "10.0.16.2").login("north")
    for done in ("%C2%B2", "9" * 30, "-1", "%EF%BC%91%EF%BC%92", "%D9%A3"):
        page = client.http.get(f"/crew?lang=en&done={done}")
        assert page.status_code == 200, (done, page.text[-300:])
        assert 'aria-live="polite"></p>' in page.text  # no "Saved." for a made-up id
    form = {"csrf": client.csrf, "facility": "pool", "action": "opened"}
    for ago in ("²", "٣", "9" * 30, "-5"):
        refused = client.http.post("/crew/log?lang=en", data={**form, "ago": ago})
        assert refused.status_code == 422, (ago, refused.text[-300:])
        assert 'role="alert"' in refused.text
    for at in ("0001-01-01T00:00", "9999-12-31T23:59"):
        refused = client.http.post("/crew/log?lang=en", data={**form, "at": at})
        assert refused.status_code == 422, (at, refused.text[-300:])
    for when in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        refused = client.log(facility="pool", action="opened", performed_at=when)
        assert refused.status_code == 422 and "outside the years" in refused.text, refused.text
        status, body = http_get(
            f"{hub.url}/api/v1/facilities/pool/maintenance?before={urllib.parse.quote(when)}"
        )
        assert status == 422 and "outside the years" in body, body
    assert client.correct(99999999999999999999, withdrawn=True).status_code == 422
    assert client.correct(2**63 - 1, withdrawn=True).status_code == 404


def test_a_logged_condition_is_pushed_to_live_pages(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.17.1").login("city")
    ws_url = hub.url.replace("http://", "ws://") + "/api/v1/live?lang=en"
    with ws_connect(ws_url, open_timeout=10) as ws:
        assert client.log(facility="carpets", action="out_of_order").status_code == 201
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # skip the states sent on connect
            pushed = json.loads(ws.recv(timeout=30))["facility"]
            if pushed["id"] == "carpets" and pushed["condition"] is not None:
                break
    assert pushed["condition"] == "out_of_order" and pushed["condition_quality"] == "unusable"


def test_a_crew_cannot_log_for_another_crews_facility(hub: HubProcess) -> None:
    rink = CrewClient(hub, "10.0.7.1").login("rinkcrew")
    before = public_history(hub, "pool")
    forbidden_before = hub.metric("ruuhka_crew_entries_total", result="forbidden")
    refused = rink.log(facility="pool", action="closed")
    assert refused.status_code == 403
    assert "does not look after 'pool'" in refused.json()["detail"]
    form = rink.http.post(
        "/crew/log", data={"csrf": rink.csrf, "facility": "pool", "action": "closed"}
    )
    assert form.status_code == 403
    assert public_history(hub, "pool") == before
    with crew_db(hub) as db:
        assert db.execute("SELECT COUNT(*) FROM entries WHERE facility = 'pool'").fetchone()[0] == (
            len(before)
        )
    assert hub.metric("ruuhka_crew_entries_total", result="forbidden") == forbidden_before + 2

    # A team crew may log for its team's facilities only; the city crew for any.
    north = CrewClient(hub, "10.0.7.2").login("north")
    assert north.log(facility="pool", action="opened").status_code == 201
    assert north.log(facility="rink", action="iced").status_code == 403
    page = north.http.get("/crew?lang=en").text
    assert 'id="f-pool"' in page and 'id="f-rink"' not in page
    assert CrewClient(hub, "10.0.7.3").login("city").log(
        facility="rink", action="opened"
    ).status_code == (201)
    # Nor can it correct an entry at a facility it does not look after.
    entry = public_history(hub, "rink")[0]
    assert north.correct(entry["id"], withdrawn=True).status_code == 403


# --- the log: time, vocabulary, idempotency, corrections ---------------------------


def test_the_time_of_the_work_is_checked(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.8.1").login("north")
    reasons = ("future", "too_old", "invalid")

    def refused() -> dict[str, float]:
        return {r: hub.metric("ruuhka_crew_entries_total", result=r) for r in reasons}

    before = refused()
    future = client.log(
        facility="carpets", action="cleaned", performed_at=iso(now() + timedelta(hours=1))
    )
    assert future.status_code == 422 and "future" in future.json()["detail"]
    old = client.log(
        facility="carpets", action="cleaned", performed_at=iso(now() - timedelta(hours=49))
    )
    assert old.status_code == 422 and "48 h" in old.json()["detail"]
    naive = client.log(facility="carpets", action="cleaned", performed_at="2026-11-23T06:30:00")
    assert naive.status_code == 422
    for far in ("0001-01-01T00:00:00+02:00", "9999-12-31T23:59:59-05:00"):
        assert client.log(facility="carpets", action="cleaned", performed_at=far).status_code == 422
    form = {"csrf": client.csrf, "facility": "carpets", "action": "cleaned"}
    for bad in ({"ago": "99999999999999"}, {"ago": "soon"}, {"at": "tomorrow"}):
        assert client.http.post("/crew/log", data={**form, **bad}).status_code == 422, bad
    # Each of the eight refusals counted once, by its reason.
    counted = {r: n - before[r] for r, n in refused().items()}
    assert sum(counted.values()) == 8 and min(counted.values()) >= 1, counted

    done = now() - timedelta(hours=47)
    kept = client.log(facility="carpets", action="out_of_order", performed_at=iso(done))
    assert kept.status_code == 201, kept.text
    body = kept.json()
    assert abs(datetime.fromisoformat(body["performed_at"]) - done) < timedelta(seconds=1)
    assert datetime.fromisoformat(body["received_at"]) - done > timedelta(hours=46)
    # A phone clock a minute ahead is accepted, and never dated after receipt.
    ahead = client.log(
        facility="carpets", action="cleaned", performed_at=iso(now() + timedelta(seconds=60))
    )
    assert ahead.status_code == 201
    assert ahead.json()["performed_at"] == ahead.json()["received_at"]


def test_the_vocabulary_is_per_kind_and_resending_stores_once(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.9.1").login("city")
    wrong_kind = client.log(facility="rink", action="groomed")
    assert wrong_kind.status_code == 422 and "iced" in wrong_kind.json()["detail"]
    assert client.log(facility="rink", action="notice").status_code == 422  # no text
    extra = client.log(facility="rink", action="iced", crew="someone")
    assert extra.status_code == 422
    for junk in (b"\x00", b"{", b"[]", "ä".encode("latin-1")):
        bad = client.http.post(
            "/api/v1/crew/entries", content=junk, headers={"X-CSRF-Token": client.csrf}
        )
        assert bad.status_code == 422, (junk, bad.text)
    first = client.log(facility="carpets", action="cleaned", client_id="phone-abc-0001")
    again = client.log(facility="carpets", action="cleaned", client_id="phone-abc-0001")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    notice = client.log(
        facility="pool",
        action="notice",
        notice={"fi": "Sauna suljettu", "en": "Sauna closed"},
        quality="satisfactory",
    )
    assert notice.status_code == 201
    assert hub.get("/api/v1/facilities/pool?lang=en")["notice"] == "Sauna closed"
    assert hub.get("/api/v1/facilities/pool?lang=sv")["notice"] == "Sauna suljettu"
    vocab = hub.get("/api/v1/maintenance/vocabulary?lang=fi")
    assert vocab["by_kind"]["ice_rink"][0] == "iced"
    assert vocab["actions"]["iced"] == {"id": "iced", "label": "Jäädytetty", "quality": "good"}
    assert vocab["condition_ttl_s"]["carpet_washing"] == 3


def test_corrections_keep_an_audit_trail(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.10.1").login("city")
    base = client.log(
        facility="audit-rink", action="brushed", performed_at=iso(now() - timedelta(hours=2))
    )
    assert base.status_code == 201
    latest = client.log(
        facility="audit-rink", action="iced", performed_at=iso(now() - timedelta(minutes=5))
    )
    entry = latest.json()
    assert hub.get("/api/v1/facilities/audit-rink")["condition"] == "iced"

    fixed_time = now() - timedelta(minutes=50)
    fixed = client.correct(entry["id"], performed_at=iso(fixed_time), reason="logged late")
    assert fixed.status_code == 200, fixed.text
    revisions = fixed.json()["revisions"]
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[1]["changed_by"] == "city" and revisions[1]["reason"] == "logged late"
    assert revisions[0]["performed_at"] == entry["performed_at"]
    public = next(e for e in public_history(hub, "audit-rink") if e["id"] == entry["id"])
    assert public["corrected"] is True
    assert abs(datetime.fromisoformat(public["performed_at"]) - fixed_time) < timedelta(seconds=1)

    assert client.correct(entry["id"]).status_code == 422  # changes nothing
    too_old = client.correct(entry["id"], performed_at=iso(now() - timedelta(hours=50)))
    assert too_old.status_code == 422

    withdrawn = client.correct(entry["id"], withdrawn=True, reason="wrong rink")
    assert withdrawn.status_code == 200 and withdrawn.json()["revision"] == 3
    assert entry["id"] not in [e["id"] for e in public_history(hub, "audit-rink")]
    # The condition falls back to the newest entry still standing.
    assert hub.get("/api/v1/facilities/audit-rink")["condition"] == "brushed"
    crew_view = client.http.get("/api/v1/crew/entries?facility=audit-rink&lang=en").json()
    mine = next(e for e in crew_view if e["id"] == entry["id"])
    assert mine["withdrawn"] is True and len(mine["revisions"]) == 3


# --- what the public sees -------------------------------------------------------


def test_public_condition_history_and_no_personal_data(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.11.1").login("rinkcrew")
    logged = client.log(facility="rink", action="iced")  # done now: the newest work here
    assert logged.status_code == 201
    done = datetime.fromisoformat(logged.json()["performed_at"])
    rink = hub.get("/api/v1/facilities/rink?lang=en")
    assert rink["condition"] == "iced" and rink["condition_state"] == "known"
    assert rink["condition_quality"] == "good"
    assert rink["condition_label"] == "Iced"
    assert datetime.fromisoformat(rink["condition_at"]) == done
    local = done.astimezone(ZoneInfo("Europe/Helsinki"))
    assert rink["condition_text"].endswith(local.strftime("%H:%M"))
    assert rink["condition_text"].startswith(("Iced today", "Iced yesterday"))
    assert hub.get("/api/v1/facilities/rink?lang=fi")["condition_text"].startswith("Jäädytetty")
    listed = {f["id"]: f for f in hub.get("/api/v1/facilities")}
    assert listed["rink"]["condition"] == "iced"

    # "When was the school field last iced?"
    last = public_history(hub, "rink", "&action=iced&limit=1")
    assert datetime.fromisoformat(last[0]["performed_at"]) == done
    text = json.dumps(hub.get("/api/v1/facilities/rink/maintenance"))
    for name in ("rinkcrew", "city", "north", "logged_by", "session", "token"):
        assert name not in text
    status, _ = client.http.get("/api/v1/facilities/nowhere/maintenance").status_code, None
    assert status == 404


def test_conditions_decay_to_unknown_in_the_api(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.12.1").login("north")
    # pool (swimming_hall) decays after 72 h; an entry 47 h old is still known.
    assert (
        client.log(
            facility="pool", action="closed", performed_at=iso(now() - timedelta(hours=47))
        ).status_code
        == 201
    )
    # carpets decay after 3 s in this configuration.
    cleaned = client.log(facility="carpets", action="back_in_order")
    assert cleaned.status_code == 201
    carpets = hub.get("/api/v1/facilities/carpets")
    assert carpets["condition_state"] == "known" and carpets["condition"] == "back_in_order"
    assert datetime.fromisoformat(carpets["condition_expires_at"]) - datetime.fromisoformat(
        carpets["condition_at"]
    ) == timedelta(seconds=3)
    decayed = wait_for(
        lambda: (f := hub.get("/api/v1/facilities/carpets"))["condition_state"] == "unknown" and f,
        15,
        "the carpets' condition to decay",
    )
    assert decayed["condition"] is None and decayed["condition_at"] is None
    assert decayed["condition_text"] is None
    # The history still knows.
    assert public_history(hub, "carpets")[0]["action"] == "back_in_order"


def test_old_work_is_unknown_at_once_and_newer_work_wins_by_its_time(hub: HubProcess) -> None:
    client = CrewClient(hub, "10.0.13.1").login("city")
    fresh = client.log(
        facility="old-rink", action="plowed", performed_at=iso(now() - timedelta(minutes=1))
    )
    assert fresh.status_code == 201
    # An entry that arrives late (queued offline) with an older time does not hide newer work.
    late = client.log(
        facility="old-rink", action="closed", performed_at=iso(now() - timedelta(hours=3))
    )
    assert late.status_code == 201
    assert hub.get("/api/v1/facilities/old-rink")["condition"] == "plowed"
    # Withdraw everything newer than 24 h: the rink's condition (ice: 24 h) is unknown.
    for entry in client.http.get("/api/v1/crew/entries?facility=old-rink&limit=500").json():
        if not entry["withdrawn"]:
            assert client.correct(entry["id"], withdrawn=True).status_code == 200
    old = client.log(
        facility="old-rink", action="iced", performed_at=iso(now() - timedelta(hours=25))
    )
    assert old.status_code == 201
    rink = hub.get("/api/v1/facilities/old-rink")
    assert rink["condition_state"] == "unknown" and rink["condition"] is None
    assert public_history(hub, "old-rink")[0]["action"] == "iced"


def test_the_crew_page_shows_devices_and_stale_data(hub: CrewHub) -> None:
    client = CrewClient(hub, "10.0.14.1").login("city")
    beat = {
        "seq": 1,
        "ts": iso(now()),
        "outbox_depth": 12,
        "disk_free_mb": 2048,
        "cpu_temp_c": 51.3,
    }
    mosquitto_pub(hub.broker, "ruuhka/v1/devices/crew-gate/heartbeat", json.dumps(beat))
    wait_for(
        lambda: "outbox 12" in client.http.get("/crew?lang=en").text,
        10,
        "the heartbeat on the page",
    )
    page = client.http.get("/crew?lang=en")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    for facility in ("pool", "rink", "carpets"):
        assert f'id="f-{facility}"' in html
    assert "Data gone stale" in html  # nothing has reported in this hub
    assert "crew-rink" in html and "never heard from" in html
    assert "disk free 2.0 GB" in html and "CPU 51 °C" in html and ">online<" in html
    assert "<script>" not in html and "style=" not in html  # CSP without 'unsafe-inline'
    overview = client.http.get("/api/v1/crew/facilities?lang=en").json()
    rink = next(f for f in overview if f["id"] == "rink")
    assert rink["devices"][0]["device"] == "crew-rink" and rink["devices"][0]["online"] is None
    assert rink["stale"] is True
    assert [a["id"] for a in rink["actions"]][:2] == ["iced", "brushed"]
