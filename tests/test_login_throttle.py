"""The crew login under attack: throttled before hashing, a few checks at a time,
and no way for a guesser to lock a crew out.

The policy itself is tested on the real crew database with explicit times; the
floods run against a real hub process with ``ruuhka crew`` accounts.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest

from hub.crew.accounts import Accounts, LoginResult
from hub.crew.checks import PasswordChecks
from hub.crew.db import CrewDB
from hub.crew.settings import CrewSettings
from hub.crew.throttle import Attempt, LoginThrottle, Refusal
from tests.conftest import http_get
from tests.crew_support import PASSWORD, CrewClient, CrewHub, crew_hub

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SETTINGS = CrewSettings(
    ip_max_failures=10, max_failures=3, first_delay_s=2, max_delay_s=60, failure_window_s=600
)


@pytest.fixture
def throttle(tmp_path: Path) -> Iterator[tuple[LoginThrottle, Accounts]]:
    db = CrewDB(tmp_path / "crew.db")
    accounts = Accounts(db, SETTINGS)
    accounts.add("carol", PASSWORD, ["*"], T0)
    try:
        yield LoginThrottle(db, SETTINGS), accounts
    finally:
        db.close()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def wrong(throttle: LoginThrottle, address: str, when: float, name: str = "carol") -> None:
    """A try that goes ahead and turns out wrong (its count simply stays)."""
    attempt = throttle.begin(name, address, None, at(when))
    assert isinstance(attempt, Attempt), attempt


def test_an_account_waits_longer_and_longer_but_is_never_locked(
    throttle: tuple[LoginThrottle, Accounts],
) -> None:
    limiter, _ = throttle
    for second in range(3):  # max_failures = 3 free tries
        wrong(limiter, f"198.51.100.{second}", second)
    # Then 2 s after the last failure, doubling: 2, 4, 8, ... up to 60.
    refused = limiter.begin("carol", "198.51.100.50", None, at(3))
    assert refused == Refusal(LoginResult.DELAYED, 1)
    last = 2.0
    for delay in (2, 4, 8, 16, 32, 60, 60):
        assert isinstance(
            limiter.begin("carol", "198.51.100.51", None, at(last + delay - 0.5)), Refusal
        )
        wrong(limiter, "198.51.100.51", last + delay)
        last += delay
    assert limiter.delay_s(100) == 60.0


def test_tries_in_progress_count_before_their_password_is_checked(
    throttle: tuple[LoginThrottle, Accounts],
) -> None:
    """Nothing is finished here: each try is counted the moment it is allowed."""
    limiter, _ = throttle
    begun = [limiter.begin("carol", f"203.0.113.{n}", None, at(0)) for n in range(50)]
    assert sum(isinstance(b, Attempt) for b in begun) == 3
    assert all(b.result is LoginResult.DELAYED for b in begun[3:] if isinstance(b, Refusal))


def test_one_address_has_a_limit_over_all_names(throttle: tuple[LoginThrottle, Accounts]) -> None:
    limiter, _ = throttle
    for n in range(10):  # ip_max_failures = 10, over any names
        wrong(limiter, "192.0.2.1", n, name=f"guess{n}")
    refused = limiter.begin("guess-again", "192.0.2.1", None, at(10))
    assert refused == Refusal(LoginResult.RATE_LIMITED, 590)  # until the oldest leaves the window
    assert isinstance(limiter.begin("carol", "192.0.2.2", None, at(10)), Attempt)
    assert isinstance(limiter.begin("guess-again", "192.0.2.1", None, at(600.5)), Attempt)


def test_a_refund_and_a_right_password_take_the_count_back(
    throttle: tuple[LoginThrottle, Accounts],
) -> None:
    limiter, accounts = throttle
    busy = limiter.begin("carol", "192.0.2.9", None, at(0))
    assert isinstance(busy, Attempt)
    limiter.refund(busy)  # never checked: does not count
    for n in range(2):
        wrong(limiter, "192.0.2.9", 1 + n)
    right = limiter.begin("carol", "192.0.2.9", None, at(3))
    assert isinstance(right, Attempt) and right.crew is not None
    assert accounts.verify(right.password_hash, PASSWORD) == (True, None)
    limiter.succeeded(right, None, at(3))
    for n in range(3):  # the failures are forgotten: three free tries again
        wrong(limiter, "192.0.2.10", 4 + n)


def test_a_known_browser_and_a_known_address_are_not_held_up_by_failures_elsewhere(
    throttle: tuple[LoginThrottle, Accounts],
) -> None:
    limiter, _ = throttle
    first = limiter.begin("carol", "198.51.100.7", None, at(0))
    assert isinstance(first, Attempt)
    device = limiter.succeeded(first, None, at(0))  # carol's phone, at home
    for n in range(40):  # a guesser elsewhere, as fast as it is let
        limiter.begin("carol", f"203.0.113.{n % 4}", None, at(10 + n))
    assert isinstance(limiter.begin("carol", "203.0.113.99", None, at(60)), Refusal)
    phone = limiter.begin("carol", "100.64.0.1", device, at(60))  # the phone on mobile data
    assert isinstance(phone, Attempt) and phone.known_device
    home = limiter.begin("carol", "198.51.100.7", None, at(60))  # a laptop at home
    assert isinstance(home, Attempt) and home.known and not home.known_device
    # A cookie made up by the guesser is nobody's device.
    forged = limiter.begin("carol", "203.0.113.50", "x" * 43, at(60))
    assert isinstance(forged, Refusal)


def test_a_known_browser_is_not_held_to_its_address_limit(
    throttle: tuple[LoginThrottle, Accounts],
) -> None:
    limiter, _ = throttle
    first = limiter.begin("carol", "100.64.0.9", None, at(0))
    assert isinstance(first, Attempt)
    device = limiter.succeeded(first, None, at(0))
    for n in range(10):  # someone else behind the same carrier-grade NAT
        wrong(limiter, "100.64.0.9", 1 + n, name=f"guess{n}")
    assert limiter.begin("carol", "100.64.0.9", None, at(20)) == Refusal(
        LoginResult.RATE_LIMITED, 581
    )
    assert isinstance(limiter.begin("carol", "100.64.0.9", device, at(20)), Attempt)


def test_a_new_password_forgets_the_wrong_ones(throttle: tuple[LoginThrottle, Accounts]) -> None:
    limiter, accounts = throttle
    for n in range(3):
        wrong(limiter, f"203.0.113.{n}", n)
    assert isinstance(limiter.begin("carol", "203.0.113.9", None, at(3)), Refusal)
    accounts.set_password("carol", "another long password", at(3))
    assert isinstance(limiter.begin("carol", "203.0.113.9", None, at(3)), Attempt)


# --- a few checks at a time ---------------------------------------------------------


def test_password_checks_run_a_few_at_a_time() -> None:
    checks = PasswordChecks(concurrent=2, queue=3, wait_s=5)
    running, peak = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def check() -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return True

    async def scenario() -> list[tuple[bool, bool | None]]:
        tasks = [asyncio.create_task(checks.run(False, check)) for _ in range(8)]
        await asyncio.sleep(0.1)
        release.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(scenario())
    checks.close()
    assert peak == 2
    assert results.count((True, True)) == 5  # two at once, three waited
    assert results.count((False, None)) == 3  # no room to wait: told at once


def test_known_logins_wait_in_a_line_that_goes_first() -> None:
    checks = PasswordChecks(concurrent=1, queue=3, wait_s=5)
    order: list[str] = []
    release = threading.Event()

    def check(label: str) -> str:
        release.wait(5)
        order.append(label)
        return label

    async def scenario() -> None:
        tasks = [asyncio.create_task(checks.run(False, partial(check, "first")))]
        await asyncio.sleep(0.05)
        tasks += [
            asyncio.create_task(checks.run(False, partial(check, f"other{n}"))) for n in range(3)
        ]
        await asyncio.sleep(0.05)
        tasks.append(asyncio.create_task(checks.run(True, partial(check, "known"))))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    checks.close()
    assert order == ["first", "known", "other0", "other1", "other2"]


def test_a_login_that_waits_too_long_is_told_to_come_back() -> None:
    checks = PasswordChecks(concurrent=1, queue=5, wait_s=0.2)
    gate = threading.Event()

    async def scenario() -> tuple[tuple[bool, object], tuple[bool, object], tuple[bool, object]]:
        slow = asyncio.create_task(checks.run(False, lambda: gate.wait(5)))
        await asyncio.sleep(0.05)
        late = await checks.run(False, lambda: "never")
        gate.set()
        done = await slow
        after = await checks.run(False, lambda: "after")  # the slot came back
        return late, done, after

    late, done, after = asyncio.run(scenario())
    checks.close()
    assert late == (False, None)
    assert done == (True, True)
    assert after == (True, "after")


# --- floods against a running hub ------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrewHub]:
    with crew_hub(tmp_path_factory.mktemp("throttle")) as running:
        yield running


def flood(hub: CrewHub, tries: list[tuple[str, str, str]]) -> list[tuple[int, int]]:
    """(address, name, password) tries, all at once; their statuses and Retry-After.
    The login form's token is a double submit, so a guesser makes up its own."""

    def one(http: httpx.Client, item: tuple[str, str, str]) -> tuple[int, int]:
        address, name, password = item
        response = http.post(
            "/crew/login?lang=en",
            data={"csrf": "made-up-token", "name": name, "password": password},
            headers={"X-Forwarded-For": address, "Cookie": "ruuhka_login_csrf=made-up-token"},
        )
        return response.status_code, int(response.headers.get("retry-after", 0))

    limits = httpx.Limits(max_connections=len(tries))
    with (
        httpx.Client(base_url=hub.url, timeout=60, limits=limits) as http,
        ThreadPoolExecutor(len(tries)) as pool,
    ):
        answers = list(pool.map(partial(one, http), tries))
    for status, retry_after in answers:
        assert status in (401, 429, 503), answers
        assert (retry_after >= 1) == (status != 401), answers
    return answers


def checked_until_limited(hub: CrewHub, addresses: Callable[[int], list[str]]) -> int:
    """Flood rounds until the address limit answers; the passwords checked on the way."""
    checked = 0
    for round_ in range(20):
        tries = [(a, f"r{round_}n{i}", "password1") for i, a in enumerate(addresses(round_))]
        answers = flood(hub, tries)
        if round_ == 0:  # one login of an address at a time: the rest are told to retry
            assert sum(status == 401 for status, _ in answers) < 6, answers
        checked += sum(status == 401 for status, _ in answers)
        if any(status == 429 and retry_after > 60 for status, retry_after in answers):
            break
    again = flood(hub, [(a, "once-more", "password1") for a in addresses(99)])
    assert all(status == 429 for status, _ in again), again
    return checked


def test_a_flood_from_one_address_checks_at_most_its_limit(hub: CrewHub) -> None:
    """ip_max_failures = 6: however many tries, at most six passwords are checked."""
    assert checked_until_limited(hub, lambda _: ["192.0.2.77"] * 10) == 6
    assert CrewClient(hub, "192.0.2.78").try_login("city", PASSWORD).status_code == 303


def test_an_ipv6_64_counts_as_one_address(hub: CrewHub) -> None:
    def spread(round_: int) -> list[str]:
        return [f"2001:db8:7:7:{round_:x}:{i:x}::1" for i in range(10)]

    assert checked_until_limited(hub, spread) == 6
    assert CrewClient(hub, "2001:db8:7:8::1").try_login("city", PASSWORD).status_code == 303


def test_guesses_at_one_account_from_many_addresses_stop_at_its_free_tries(hub: CrewHub) -> None:
    phone = CrewClient(hub, "198.51.100.200").login("north")
    statuses = Counter(
        s for s, _ in flood(hub, [(f"198.51.100.{i}", "north", "password1") for i in range(1, 101)])
    )
    # max_failures = 3, then the next try must wait 5 s (one more if the flood took that long).
    assert 3 <= statuses[401] <= 4, statuses
    assert set(statuses) <= {401, 429, 503}, statuses
    assert phone.try_login("north", PASSWORD).status_code == 303


def test_a_spray_over_many_names_and_addresses_is_told_to_come_back(hub: CrewHub) -> None:
    """No limit applies to any one of these tries; one is checked at a time, sixteen
    wait, and the rest get 503 at once. The public API answers throughout."""
    tries = [(f"203.0.113.{i}", f"spray{i}", "password1") for i in range(1, 81)]
    answers: list[int] = []
    stop = threading.Event()
    busy_before = hub.metric("ruuhka_crew_logins_total", result="busy")

    def public() -> None:
        while not stop.wait(0.2):  # within the API's rate limit
            answers.append(http_get(hub.url + "/api/v1/facilities")[0])

    watcher = threading.Thread(target=public)
    watcher.start()
    try:
        statuses = Counter(s for s, _ in flood(hub, tries))
    finally:
        stop.set()
        watcher.join()
    assert statuses[503] > 0, statuses
    assert set(statuses) <= {401, 503}, statuses
    assert answers and set(answers) == {200}
    busy = hub.metric("ruuhka_crew_logins_total", result="busy") - busy_before
    assert busy == statuses[503]
