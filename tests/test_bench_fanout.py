"""The fan-out benchmark's arithmetic: what the clients received, matched against what
was published, with a change that never came counted as infinitely late."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from hub.fanout import text_frame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import fanout
import wsfleet

T = 1_800_000_000.0  # the publisher's clock, in s


def us(at: float) -> int:
    return round(at * 1e6)


def iso(at: float) -> str:
    text = (wsfleet._EPOCH + wsfleet.timedelta(microseconds=us(at))).isoformat()
    return text.replace("+00:00", "Z")


def message(facility: str, at: float) -> bytes:
    body = {"facility": {"id": facility, "name": "x" * 200, "updated_at": iso(at), "age_s": 0}}
    return text_frame(json.dumps(body, separators=(",", ":")))  # as both servers write


def reader(stamps: wsfleet.Stamps, arrivals: list[tuple[str, float, float]]) -> wsfleet.Reader:
    """A client that received (facility, published, received) messages, in that order,
    fed through its frame parser in uneven pieces as a socket would hand them over."""
    client = wsfleet.Reader("h", "/", None, stamps)  # type: ignore[arg-type]
    client.upgraded = True
    stream = b"".join(message(f, at) for f, at, _ in arrivals)
    for start in range(0, len(stream), 97):
        client.data_received(stream[start : start + 97])
    assert len(client.times) == len(arrivals)
    for n, (_, _, received) in enumerate(arrivals):
        client.times[n] = received
    return client


def test_each_change_reached_each_client_in_time_late_coalesced_or_not_at_all(
    tmp_path: Path,
) -> None:
    changes = [("a", T - 5), ("a", T), ("b", T + 0.2), ("a", T + 0.5), ("a", T + 1.0)]
    changes.append(("a", T + 2.0))
    stamps = wsfleet.Stamps()
    first = reader(
        stamps,
        [
            ("a", T, T + 0.010),  # in time
            ("a", T + 1.0, T + 1.020),  # in time; T + 0.5 was superseded before it was sent
            ("b", T + 0.2, T + 1.7),  # late
            ("a", T - 5, T + 1.8),  # an older change (outside the window): not counted
        ],
    )
    second = reader(
        stamps,
        [
            ("a", T, T + 0.030),
            ("a", T, T + 0.040),  # the same change twice
            ("a", T + 0.7, T + 0.8),  # never published
        ],
    )
    (tmp_path / "changes.json").write_text(
        json.dumps({"changes": [(f, us(t)) for f, t in changes]})
    )
    # The window [T, T + 1.5) holds four changes.
    got = wsfleet.tally([first, second], stamps, tmp_path / "changes.json", T, T + 1.5)
    assert got["offered"] == 4 * 2
    assert (got["unknown"], got["duplicates"], got["closed"]) == (1, 1, 0)
    assert got["busiest"] == 2  # two changes of "a" reached the first client
    bins = wsfleet.BIN_S
    assert dict(got["own"]) == {
        math.ceil(0.010 / bins): 1,
        math.ceil(0.020 / bins): 1,
        math.ceil(1.5 / bins): 1,
        math.ceil(0.030 / bins): 1,
    }
    run = fanout.Run("hub", 2, 1.5, offered=got["offered"])
    run.own.update(dict(got["own"]))
    run.view.update(dict(got["view"]))
    assert run.within(1.0) == 3 and run.share(1.0) == 3 / 8
    assert run.coalesced == 1  # the first client's T + 0.5, brought up to date by T + 1.0
    assert run.share(1.0, view=True) == 4 / 8  # ... in 0.52 s
    assert run.missing == 3  # the second client never got b, a + 0.5 or a + 1.0
    assert run.percentile_ms(0.5) == 1500  # the 4th of 8: the late one
    assert run.percentile_ms(0.99) == math.inf  # what never came is in the percentiles
    assert not run.fits(1.0)


def test_a_step_is_held_by_the_medians_and_the_goals_decide_the_exit_status(
    capsys: object,
) -> None:
    def run(kind: str, clients: int, p99_s: float, share: float) -> fanout.Run:
        """1,000 changes a client: ``share`` of them within p99_s, the rest never."""
        done = round(1000 * share)
        out = fanout.Run(kind, clients, 10.0, offered=1000 * clients, cpu_s=1.0, rss_peak_mb=99)
        out.own[math.ceil(p99_s / wsfleet.BIN_S)] = done * clients
        out.view[math.ceil(p99_s / wsfleet.BIN_S)] = done * clients
        return out

    fast, slow, lossy = (0.05, 1.0), (0.2, 1.0), (0.05, 0.998)
    assert fanout.held([run("hub", 10, *fast), run("hub", 10, *slow), run("hub", 10, *fast)], 1)
    assert not fanout.held([run("hub", 10, *fast), run("hub", 10, *slow), run("hub", 10, *slow)], 1)
    assert not fanout.held([run("hub", 10, *lossy)], 1)
    # Coalescing: up to date, and never more than max_rate_hz updates of a facility a second.
    paced, hasty = run("hub", 10, *fast), run("hub", 10, *fast)
    paced.busiest, hasty.busiest = 20 * 10, 20 * 10 + 2
    assert fanout.coalescing_ok([paced], 1)
    assert not fanout.coalescing_ok([paced, hasty], 1)
    assert not fanout.coalescing_ok([run("hub", 10, *lossy)], 1)
    args = argparse.Namespace(
        bound=1.0,
        facilities=100,
        repeats=1,
        seconds=10.0,
        coalesce_clients=0,
        rss_clients=1000,
        fleet_cpus_used="1",
    )
    runs = {(k, n): [run(k, n, *fast)] for k in fanout.KINDS for n in (500, 1000)}
    runs[("baseline", 1000)] = [run("baseline", 1000, *slow)]
    memory = runs[("hub", 1000)]
    assert fanout.report(args, [500, 1000], runs, {"baseline": 500, "hub": 1000}, [], 1, memory)
    # The hub below 1,000 clients, below 0.7 of the baseline, or over its memory: not met.
    assert not fanout.report(args, [500, 1000], runs, {"baseline": 500, "hub": 500}, [], 1, memory)
    assert not fanout.report(
        args, [500, 1000], runs, {"baseline": 2000, "hub": 1000}, [], 1, memory
    )
    memory[0].rss_peak_mb = 201
    assert not fanout.report(args, [500, 1000], runs, {"baseline": 500, "hub": 1000}, [], 1, memory)
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "hub/baseline 2.00" in out and "NOT met" in out
