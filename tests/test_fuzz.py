"""Hostile input, generated: the contract parser and the ingest path never fall over,
and a payload they reject changes nothing.

Every stream gets at least FUZZ_PAYLOADS generated payloads through the parser
and as many through the ingest path (a real Ingest on a real SQLite store,
driven without a broker). Each hypothesis example is a family of payloads: a
valid reading, the same reading with each field dropped and with each field
replaced by hostile values, cut short, with bytes flipped, with numbers JSON
does not allow, nested deeply or padded past the size limit, plus a reading
broken at random, arbitrary JSON and arbitrary bytes. Deriving the family from
one example keeps hypothesis' per-example cost off the ten thousand payloads.
The counts of what happened are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from hub.config import HubSettings
from hub.ingest import Ingest, Message
from hub.metrics import REJECT_REASONS, Metrics
from hub.store.sqlite import SQLiteStore
from ruuhka.broker import free_port, start_broker
from ruuhka.contract import (
    MAX_COUNT,
    PAYLOAD_MODELS,
    FacilityState,
    Stream,
    TopicError,
    encode,
    parse_payload,
    parse_topic,
)
from tests.conftest import HUB_CONFIG, HubProcess
from tests.crew_support import add_crew, ruuhka_crew

FUZZ_PAYLOADS = int(os.environ.get("RUUHKA_FUZZ_PAYLOADS", "10000"))
MAX_PAYLOAD_BYTES = 4096
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEVICES = {
    Stream.COUNT: "gate",
    Stream.RINK: "rink",
    Stream.SNAPSHOT: "cam",
    Stream.STATUS: "gate",
    Stream.HEARTBEAT: "rink",
}
# What replaces a field's value, one at a time: wrong types, out of range, too big.
HOSTILE_VALUES: list[Any] = [
    None,
    "",
    "5",
    True,
    -1,
    1.5,
    2**63,
    -(2**63) - 1,
    10**30,
    1e308,
    [],
    {"nested": {"deeper": [1]}},
    "x" * 300,
    "\u0000\ud7ff\U0001f600",
]
NONFINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e400"]
# A number field of each stream, to put what JSON does not allow in.
FLOAT_FIELDS = {
    Stream.COUNT: b"entries",
    Stream.RINK: b"air_temp_c",
    Stream.SNAPSHOT: b"people",
    Stream.STATUS: b"seq",
    Stream.HEARTBEAT: b"cpu_temp_c",
}

# Values ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
# The name the hub's configuration routes, mostly, or another (valid or not).
ROUTED = {Stream.COUNT: "main", Stream.RINK: "ice", Stream.SNAPSHOT: "yard"}
other_names = st.sampled_from(["main", "yard", "ice", "a.b_c-1", "", "ä", "x" * 65])
# Device clocks: near the hub's, far off, in other zones, without a zone, nonsense.


def _clock(offsets: st.SearchStrategy[int], zones: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda offset, zone: (
            (NOW + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%f") + zone
        ),
        offsets,
        st.sampled_from(zones),
    )


zoned = ["Z", "+02:00", "-11:30", "+00:00"]
times = (
    _clock(st.integers(-400, 400), zoned)
    | _clock(st.integers(-400, 400), zoned)
    | _clock(st.integers(-(10**9), 10**9), zoned)
    | _clock(st.integers(-400, 400), [""])  # no zone
    | st.sampled_from(["2026-13-01T00:00:00Z", "yesterday", "", "2026-11-23"])
)
seqs = st.integers(0, 2**63 - 1) | st.integers(0, 40) | st.integers(-5, 2**64)
small_ints = (
    st.integers(0, 500) | st.integers(0, 500) | st.integers(0, MAX_COUNT) | st.integers(-10, 2**70)
)
temperatures = st.floats(-80, 80) | st.integers(-80, 80)


def valid_fields(stream: Stream) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads that are (mostly) right for the stream, so that ingest gets past parsing."""
    base = {"seq": seqs, "ts": times}
    names = st.just(ROUTED.get(stream, "main")) | st.just(ROUTED.get(stream, "main")) | other_names
    optional: dict[str, st.SearchStrategy[Any]] = {
        "clock_synced": st.booleans(),
        "device": st.sampled_from([DEVICES[stream]] * 3 + ["someone-else", "BAD id"]),
    }
    if stream == Stream.COUNT:
        cumulative = st.fixed_dictionaries({"entries": small_ints, "exits": small_ints})
        kind = cumulative | st.fixed_dictionaries({"occupancy": small_ints})
        fields = st.fixed_dictionaries({**base, "counter": names}, optional=optional)
        return st.tuples(fields, kind).map(lambda pair: {**pair[0], **pair[1]})
    if stream == Stream.RINK:
        optional["air_temp_c"] = temperatures
        return st.fixed_dictionaries(
            {**base, "sensor": names, "ice_temp_c": temperatures}, optional=optional
        )
    if stream == Stream.SNAPSHOT:
        optional |= {
            "width": st.integers(1, 960) | st.integers(-1, 5000),
            "height": st.integers(1, 960) | st.integers(-1, 5000),
            "jpeg_b64": st.binary(max_size=48).map(lambda b: b.hex()),
            "anonymiser": st.text(max_size=10),
        }
        return st.fixed_dictionaries(
            {**base, "camera": names, "people": small_ints}, optional=optional
        )
    if stream == Stream.STATUS:
        return st.fixed_dictionaries(
            {**base, "state": st.sampled_from(["online", "offline", "maybe"])}, optional=optional
        )
    optional |= {
        "agent_version": st.text(max_size=10),
        "uptime_s": st.floats(-1, 1e9) | st.integers(-1, 2**70),
        "outbox_depth": small_ints,
        "dropped": small_ints,
        "disk_free_mb": st.floats(-1, 1e12),
        "cpu_temp_c": temperatures,
    }
    return st.fixed_dictionaries(base, optional=optional)


@st.composite
def broken(draw: st.DrawFn, stream: Stream) -> dict[str, Any]:
    """A valid-looking payload with one to three things wrong, chosen by hypothesis."""
    fields = draw(valid_fields(stream))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "add", "retype"]))
        if action == "add" or not fields:
            fields[draw(st.text(max_size=8))] = draw(json_values)
        elif action == "drop":
            fields.pop(draw(st.sampled_from(sorted(fields))))
        else:
            fields[draw(st.sampled_from(sorted(fields)))] = draw(json_values)
    return fields


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def family(
    good: dict[str, Any], bad: dict[str, Any], anything: Any, blob: bytes, cuts: list[int]
) -> list[bytes]:
    """One valid payload and everything that can go wrong with it."""
    text = dumps(good)
    out = [text, dumps(bad), dumps(anything), blob]
    for key in good:
        out.append(dumps({k: v for k, v in good.items() if k != key}))
        out += [dumps({**good, key: value}) for value in HOSTILE_VALUES]
    out.append(dumps({**good, "unexpected": 1}))
    out += [text[: cut % max(1, len(text))] for cut in cuts]  # cut short
    for cut in cuts:  # a byte flipped
        at = cut % len(text)
        out.append(text[:at] + bytes([(text[at] + 1 + cut) % 256]) + text[at + 1 :])
    stream_field = next((f for f in FLOAT_FIELDS.values() if f.decode() in good), b"seq")
    out += [text[:-1] + b', "' + stream_field + b'": ' + token + b"}" for token in NONFINITE]
    out.append(b"[" * 3000 + b"]" * 3000)  # deeper than any parser should recurse
    out.append(text[:-1] + b', "pad": "' + b"x" * (MAX_PAYLOAD_BYTES + cuts[0] % 5000) + b'"}')
    out += [text.decode("latin-1").encode("utf-16"), b"\xff\xfe" + text, text + b"\x00"]
    return out


Materials = tuple[dict[str, Any], dict[str, Any], Any, bytes, list[int]]


def materials(stream: Stream) -> st.SearchStrategy[Materials]:
    """What a family is made of (see family())."""
    return st.tuples(
        valid_fields(stream),
        broken(stream),
        json_values,
        st.binary(max_size=100),
        st.lists(st.integers(0, 10**6), min_size=4, max_size=4),
    )


def fuzz_settings(payloads_per_example: int) -> settings:
    return settings(
        max_examples=FUZZ_PAYLOADS // payloads_per_example + 1,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# Fields every valid payload of the stream has, so the smallest family's size is known.
REQUIRED_FIELDS = {
    Stream.COUNT: 4,
    Stream.RINK: 4,
    Stream.SNAPSHOT: 4,
    Stream.STATUS: 3,
    Stream.HEARTBEAT: 2,
}


def min_family(stream: Stream) -> int:
    return 4 + REQUIRED_FIELDS[stream] * (1 + len(HOSTILE_VALUES)) + 1 + 4 + 4 + 4 + 1 + 1 + 3


# The parser -----------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@pytest.mark.parametrize("stream", list(Stream))
def test_the_parser_accepts_or_refuses_cleanly(stream: Stream) -> None:
    outcomes: Counter[str] = Counter()

    @fuzz_settings(min_family(stream))
    @given(materials(stream))
    def run(made: Materials) -> None:
        for payload in family(*made):
            try:
                reading = parse_payload(stream, payload)
            except ValidationError:  # the one way to say no; anything else fails the test
                outcomes["refused"] += 1
                continue
            outcomes["accepted"] += 1
            assert isinstance(reading, PAYLOAD_MODELS[stream])
            again = parse_payload(stream, encode(reading))
            assert all(
                same(getattr(again, f), getattr(reading, f)) for f in type(reading).model_fields
            )

    run()
    print(f"\nparser {stream.value}: {sum(outcomes.values())} payloads, {dict(outcomes)}")
    assert sum(outcomes.values()) >= FUZZ_PAYLOADS
    assert outcomes["accepted"] > 0 and outcomes["refused"] > FUZZ_PAYLOADS // 2


def test_topics_parse_or_refuse_cleanly() -> None:
    seen: Counter[str] = Counter()
    parts = st.sampled_from(["ruuhka", "v1", "devices", "gate", "count", "", "+", "#", "Gate"])

    @settings(max_examples=1000, deadline=None, database=None)
    @given(
        st.text(max_size=80)
        | st.lists(parts | st.text(max_size=6), min_size=1, max_size=7).map("/".join)
        | st.tuples(st.text(max_size=70) | parts, st.sampled_from(list(Stream))).map(
            lambda t: f"ruuhka/v1/devices/{t[0]}/{t[1].value}"
        )
    )
    def run(topic: str) -> None:
        try:
            device, stream = parse_topic(topic)
        except TopicError:
            seen["refused"] += 1
            return
        seen["accepted"] += 1
        assert topic == f"ruuhka/v1/devices/{device}/{stream.value}"

    run()
    print(f"\ntopics: {dict(seen)}")
    assert seen["refused"] > 0 and seen["accepted"] > 0


# The ingest path -----------------------------------------------------------------


def hub_settings(db: Path) -> HubSettings:
    return HubSettings(
        store={"url": f"sqlite:///{db}"},
        ingest={"max_payload_bytes": MAX_PAYLOAD_BYTES, "max_image_payload_bytes": 3 * 4096},
        facilities=[
            {
                "id": "pool",
                "kind": "swimming_hall",
                "capacity": 100,
                "name": {"en": "Pool"},
                "opening_hours": {"mon": "06:00-21:00", "sun": "closed"},
                "sources": [{"device": "gate", "counter": "main"}],
            },
            {
                "id": "rink",
                "kind": "ice_rink",
                "name": {"en": "Rink"},
                "sources": [{"device": "rink"}, {"device": "cam", "camera": "yard"}],
            },
        ],
    )


def derived(ingest: Ingest) -> tuple[Any, ...]:
    """The hub's derived state in memory: what a reading may change besides the store."""
    return (
        [d.state.model_dump_json() for d in ingest.derivers.values()],
        json.dumps([d.tracker.to_json() for d in ingest.derivers.values()]),
        sorted(ingest._max_seq.items()),
    )


def kept(store: SQLiteStore) -> list[Any]:
    """Everything the store holds but the quarantine, where refused messages go."""
    tables = ("readings", "facility_state", "facility_series", "facility_checkpoints", "devices")
    return [store._db.execute(f"SELECT * FROM {table}").fetchall() for table in tables]


def quarantine_count(store: SQLiteStore, metrics: Metrics) -> float:
    (rows,) = store._db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    return rows + metrics.quarantine_skipped._value.get()


def counters(metrics: Metrics) -> dict[str, float]:
    values = {f"rejected:{r}": metrics.rejected.labels(r)._value.get() for r in REJECT_REASONS}
    values["duplicate"] = metrics.duplicates._value.get()
    values["accepted"] = sum(
        metrics.accepted.labels(s.value)._value.get() for s in Stream if s != Stream.STATUS
    )
    return values


TOPIC_KINDS = ["own"] * 12 + ["unknown", "other_stream", "bad"]


@pytest.mark.parametrize("stream", list(Stream))
def test_ingest_survives_and_rejected_payloads_change_nothing(
    stream: Stream, tmp_path: Path
) -> None:
    db = tmp_path / "hub.db"
    store = SQLiteStore(db)
    metrics = Metrics()
    published: list[FacilityState] = []
    ingest = Ingest(hub_settings(db), store, metrics, on_state=published.append)
    # No broker: a failing commit must surface here, not be retried for ever.
    ingest._stop.set()
    outcomes: Counter[str] = Counter()
    mids = iter(range(1, 10**9))
    seqs_in_order = iter(range(10**6, 10**9))
    device = DEVICES[stream]
    topics = {
        "own": f"ruuhka/v1/devices/{device}/{stream.value}",
        "unknown": f"ruuhka/v1/devices/stranger/{stream.value}",
        "other_stream": f"ruuhka/v1/devices/{device}/{'count' if stream == 'rink' else 'rink'}",
        "bad": f"ruuhka/v1/devices/{device}/{stream.value}/extra",
    }

    @fuzz_settings(min_family(stream))
    @given(
        materials(stream),
        st.lists(st.sampled_from(TOPIC_KINDS), min_size=8, max_size=8),
        st.integers(0, 4),
    )
    def run(made: Materials, kinds: list[str], order: int) -> None:
        good, *rest = made
        if order and isinstance(good.get("seq"), int):
            # Mostly in order, so that readings keep moving the derived state;
            # sometimes as generated: out of order, duplicate, out of range.
            good = {**good, "seq": next(seqs_in_order)}
        for number, payload in enumerate(family(good, *rest)):
            message = Message(topics[kinds[number % 8]], payload, next(mids), 1, NOW)
            rows, state, counted = kept(store), derived(ingest), counters(metrics)
            quarantined = quarantine_count(store, metrics)
            ingest._process([message])  # any unhandled error fails the test
            moved = counters(metrics)
            changed = [k for k in moved if moved[k] != counted[k]]
            assert len(changed) <= 1, changed
            outcome = changed[0] if changed else "status"
            outcomes[outcome] += 1
            if outcome.startswith("rejected") or outcome == "duplicate":
                assert kept(store) == rows, f"{outcome} wrote to the store"
                if outcome.startswith("rejected"):  # kept for operators, or counted as not
                    assert quarantine_count(store, metrics) == quarantined + 1, outcome
                assert derived(ingest) == state, f"{outcome} changed the derived state"
            elif outcome == "status":  # a valid status: only the device table moves
                assert isinstance(
                    parse_payload(Stream.STATUS, payload), PAYLOAD_MODELS[Stream.STATUS]
                )
                assert derived(ingest) == state
            if outcome in ("rejected:malformed_json", "rejected:invalid_payload"):
                with pytest.raises(ValidationError):
                    parse_payload(parse_topic(message.topic)[1], payload)
        # What is stored and what is derived in memory agree after every family.
        saved = store.load_states()
        for facility, deriver in ingest.derivers.items():
            if facility in saved:
                assert saved[facility].state == deriver.state
                assert saved[facility].tracker.to_json() == deriver.tracker.to_json()
        assert store.count_readings() == counters(metrics)["accepted"]
        for state in published:
            assert FacilityState.model_validate_json(encode(state)) == state
            assert state.occupancy is None or state.occupancy >= 0
        published.clear()

    try:
        run()
    finally:
        store.close()
    total = sum(outcomes.values())
    print(f"\ningest {stream.value}: {total} payloads, {dict(sorted(outcomes.items()))}")
    assert total >= FUZZ_PAYLOADS
    assert outcomes["accepted" if stream != Stream.STATUS else "status"] > 0
    assert sum(n for k, n in outcomes.items() if k.startswith("rejected")) > FUZZ_PAYLOADS // 2


def test_a_counter_that_keeps_restarting_at_huge_values_cannot_overflow(tmp_path: Path) -> None:
    """Each "restart" adds the whole count again; the sum must stay storable."""
    db = tmp_path / "hub.db"
    store = SQLiteStore(db)
    ingest = Ingest(hub_settings(db), store, Metrics(), on_state=lambda state: None)
    ingest._stop.set()
    ts = (NOW + timedelta(minutes=1)).isoformat()
    try:
        for seq in range(1, 2001):
            entries = MAX_COUNT - seq % 2  # every other reading goes "down": a reset
            body = {"seq": seq, "ts": ts, "counter": "main", "entries": entries, "exits": 0}
            topic = "ruuhka/v1/devices/gate/count"
            ingest._process([Message(topic, dumps(body), seq, 1, NOW)])
        pool = ingest.derivers["pool"].state
        assert pool.occupancy == MAX_COUNT
        assert "clamped" in pool.quality
        assert store.count_readings() == 2000
        assert store.load_states()["pool"].state == pool
    finally:
        store.close()


# The HTTP API, from its OpenAPI schema ----------------------------------------------

API_RESULTS: Counter[str] = Counter()  # by generation mode and status class
API_TOKEN: list[str] = []
API_BY_OPERATION: Counter[str] = Counter()  # by operation and status


@pytest.fixture(scope="module")
def api_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """The real hub process, with crews on, limits high enough not to answer 429, and
    a crew's API token in ``API_TOKEN`` so that the crew's operations are reached too."""
    tmp = tmp_path_factory.mktemp("api")
    port = free_port()
    config = tmp / "hub.toml"
    text = HUB_CONFIG.format(
        mqtt_url="{url}", db=tmp / "hub.db", port=port, client_id="schemathesis"
    )
    with start_broker(tmp / "broker", prefer="mosquitto") as broker:
        text = text.replace("{url}", broker.url).replace(
            "[ingest]", f'[crew]\ndb = "sqlite:///{tmp / "crew.db"}"\n\n[ingest]', 1
        )
        text = text.replace("[http]\n", "[http]\napi_rate_per_s = 100000\napi_burst = 100000\n")
        config.write_text(text, encoding="utf-8")
        add_crew(config, "fuzzer", "--all")
        made = ruuhka_crew(config, "token", "fuzzer", "schemathesis")
        assert made.returncode == 0, made.stderr
        API_TOKEN[:] = [made.stdout.strip()]
        hub = HubProcess(config, port, tmp / "hub.log").start()
        try:
            yield hub
        finally:
            hub.stop()
            cases = sum(n for k, n in API_RESULTS.items() if k.endswith("xx"))
            print(f"\nschemathesis: {cases} cases, {dict(API_RESULTS)}")
            print(f"by operation: {dict(sorted(API_BY_OPERATION.items()))}")


API_CASES_PER_OPERATION = 50
# Random facility ids mostly get 404; these reach the code behind them too.
FACILITY_IDS = ("pool", "rink", "carpets")
CASES_PER_FACILITY = 15


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    path_parameters: dict[str, str] | None,
    examples: int,
    session: requests.Session,
) -> str | None:
    """Run one operation's cases; the failure hypothesis settled on, if any."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(mode, path_parameters=path_parameters))
    def run(case: schemathesis.Case) -> None:
        response = case.call(session=session, timeout=10)
        API_RESULTS[f"{mode.value} {response.status_code // 100}xx"] += 1
        API_BY_OPERATION[f"{operation.label} {response.status_code}"] += 1
        case.validate_response(response, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:  # nothing in it can be made invalid: no parameters, no body
        assert mode == schemathesis.GenerationMode.NEGATIVE
        API_RESULTS["negative: nothing to break"] += 1
    except (Exception, FailureGroup) as exc:  # go on: one broken route must not hide another
        return f"{operation.label} ({mode.value}): {exc!r}"
    return None


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_the_api_never_answers_5xx(api_hub: HubProcess, mode: schemathesis.GenerationMode) -> None:
    """schemathesis cases for every operation in the hub's own OpenAPI schema:
    valid ones (positive) and ones that break the schema (negative)."""
    schema = schemathesis.openapi.from_url(api_hub.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    failures = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_TOKEN[0]}"
        for operation in operations:
            runs: list[tuple[dict[str, str] | None, int]] = [(None, API_CASES_PER_OPERATION)]
            if "{facility_id}" in operation.path:
                runs += [({"facility_id": f}, CASES_PER_FACILITY) for f in FACILITY_IDS]
            for path_parameters, examples in runs:
                failure = fuzz_operation(operation, mode, path_parameters, examples, session)
                if failure:
                    failures.append(failure)
    assert not failures, "\n\n".join(failures)


# Values at the edges, in every parameter of every operation: what schemathesis' own
# generation rarely hits. Dates at and past the ends of what the stores keep (and
# ones that cannot be put in UTC), integers past 64 bits, digits that are not ASCII.
EDGE_VALUES = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "1677-09-21T00:12:43.145224191Z",
    "2262-04-11T23:47:16.854775807Z",
    "1899-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    str(2**63 - 1),
    str(2**63),
    str(-(2**63) - 1),
    "9" * 30,
    "1e309",
    "NaN",
    "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
    "\u0663",  # Arabic-Indic three
    "\uff11\uff12",  # fullwidth one two
    "\U0001d7d7",  # mathematical bold nine
)


def edge_cases(operation: schemathesis.APIOperation) -> Iterator[schemathesis.Case]:
    """The operation with one parameter (or the body's time) at a time set to each value."""
    path = {p.name: "1" if p.name == "entry_id" else "pool" for p in operation.path_parameters}
    required = {p.name: "pool" for p in operation.query if p.is_required}  # ?facility=
    method = operation.method.upper()
    body: dict[str, Any] | None = {
        "POST": {"facility": "pool", "action": "opened"},
        "PATCH": {},
    }.get(method)
    for value in EDGE_VALUES:
        for parameter in operation.iter_parameters():
            if parameter.location.value == "path":
                yield make_case(operation, {**path, parameter.name: value}, None, body)
            elif parameter.location.value == "query":
                yield make_case(operation, path, {**required, parameter.name: value}, body)
        if body is not None:
            yield make_case(operation, path, required, {**body, "performed_at": value})


def make_case(
    operation: schemathesis.APIOperation,
    path: dict[str, str],
    query: dict[str, str] | None,
    body: dict[str, Any] | None,
) -> schemathesis.Case:
    if body is None:
        return operation.Case(path_parameters=path, query=query)
    return operation.Case(
        path_parameters=path, query=query, body=body, media_type="application/json"
    )


def test_edge_values_in_any_parameter_are_never_a_server_error(api_hub: HubProcess) -> None:
    schema = schemathesis.openapi.from_url(api_hub.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    answered: Counter[int] = Counter()
    failures = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_TOKEN[0]}"
        for operation in operations:
            for case in edge_cases(operation):
                response = case.call(session=session, timeout=10)
                answered[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(
                        f"{operation.label} {case.path_parameters} {case.query} {case.body}: "
                        f"{response.status_code} {response.text[:200]}"
                    )
    print(f"\nedge values: {sum(answered.values())} requests, {dict(answered)}")
    assert answered[400] and answered[422] and sum(answered.values()) > 400
    assert not failures, "\n".join(failures)
