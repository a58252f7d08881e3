"""The edge outbox: readings on disk before they are published, seq never repeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.outbox import Outbox
from ruuhka.contract import CountPayload, RinkPayload, Stream, parse_payload, parse_topic

DEVICE = "test-gate"


def count(entries: int) -> dict[str, object]:
    return {"counter": "main", "entries": entries, "exits": 0}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


@pytest.fixture
def box(path: Path) -> Iterator[Outbox]:
    outbox = Outbox(path, DEVICE)
    yield outbox
    outbox.close()


def seqs(outbox: Outbox, cursor: int = -1, limit: int = 10_000) -> list[int]:
    return [p.seq for p in outbox.after(cursor, limit)]


def test_seq_starts_at_zero_and_grows(box: Outbox) -> None:
    assert box.put(Stream.COUNT, count(1)) == 0
    assert box.put(Stream.COUNT, count(2)) == 1
    assert box.put_many([(Stream.COUNT, count(3)), (Stream.COUNT, count(4))]) == [2, 3]
    assert box.allocate_seq() == 4
    assert box.put(Stream.COUNT, count(5)) == 5
    assert box.depth() == 5  # the allocated seq stored nothing
    assert seqs(box) == [0, 1, 2, 3, 5]


def test_seq_survives_reopening(path: Path) -> None:
    first = Outbox(path, DEVICE)
    assert [first.put(Stream.COUNT, count(i)) for i in range(3)] == [0, 1, 2]
    first.close()

    second = Outbox(path, DEVICE)
    assert second.put(Stream.COUNT, count(3)) == 3
    assert second.depth() == 4
    second.close()


def test_seq_survives_reopening_after_allocate_and_delete(path: Path) -> None:
    first = Outbox(path, DEVICE)
    first.put(Stream.COUNT, count(0))
    first.put(Stream.COUNT, count(1))
    assert first.allocate_seq() == 2
    first.close()

    second = Outbox(path, DEVICE)
    assert second.allocate_seq() == 3
    # Even with everything published and deleted, seq does not go back.
    second.delete(seqs(second))
    assert second.depth() == 0
    second.close()

    third = Outbox(path, DEVICE)
    assert third.put(Stream.COUNT, count(2)) == 4
    third.close()


def test_payloads_follow_the_contract(box: Outbox) -> None:
    stamp = datetime(2024, 1, 15, 10, 30, 5, 250000, tzinfo=UTC)
    box.put(Stream.COUNT, {"counter": "main", "entries": 12, "exits": 3}, ts=stamp)
    box.put(Stream.RINK, {"sensor": "ice", "ice_temp_c": -4.5, "air_temp_c": 3.0}, ts=stamp)
    box.put(Stream.COUNT, {"counter": "tickets", "occupancy": 40}, clock_synced=False)

    pending = box.after(-1, 10)
    assert len(pending) == 3
    parsed = []
    for item in pending:
        device, stream = parse_topic(item.topic)
        assert device == DEVICE
        assert isinstance(item.payload, bytes)
        reading = parse_payload(stream, item.payload)
        assert reading.seq == item.seq
        parsed.append(reading)

    first, second, third = parsed
    assert isinstance(first, CountPayload)
    assert (first.counter, first.entries, first.exits) == ("main", 12, 3)
    assert first.ts == stamp
    assert first.clock_synced is True
    assert isinstance(second, RinkPayload)
    assert second.ice_temp_c == -4.5
    assert isinstance(third, CountPayload)
    assert third.occupancy == 40
    assert third.clock_synced is False
    assert third.ts.utcoffset() is not None


def test_after_returns_oldest_first_from_the_cursor(box: Outbox) -> None:
    for i in range(10):
        box.put(Stream.COUNT, count(i))
    assert seqs(box, -1, 3) == [0, 1, 2]
    assert seqs(box, 2, 3) == [3, 4, 5]
    assert seqs(box, 7, 100) == [8, 9]
    assert seqs(box, 9, 100) == []
    assert [p.topic for p in box.after(-1, 1)] == [f"ruuhka/v1/devices/{DEVICE}/count"]


def test_delete_removes_only_the_given_seqs(box: Outbox) -> None:
    for i in range(5):
        box.put(Stream.COUNT, count(i))
    box.delete([0, 2])
    assert seqs(box) == [1, 3, 4]
    assert box.depth() == 3
    box.delete([])
    assert box.depth() == 3
    box.delete([1, 3, 4])
    assert box.depth() == 0
    assert box.after(-1, 10) == []


def test_full_outbox_drops_the_oldest(path: Path) -> None:
    box = Outbox(path, DEVICE, max_rows=5)
    for i in range(8):
        box.put(Stream.COUNT, count(i))
    assert box.depth() == 5
    assert seqs(box) == [3, 4, 5, 6, 7]
    assert box.dropped() == 3
    # The newest reading is really the newest one written.
    newest = parse_payload(Stream.COUNT, box.after(6, 1)[0].payload)
    assert isinstance(newest, CountPayload)
    assert newest.entries == 7

    # One batch larger than the limit keeps the newest of the batch.
    assert box.put_many([(Stream.COUNT, count(100 + i)) for i in range(7)]) == list(range(8, 15))
    assert seqs(box) == [10, 11, 12, 13, 14]
    assert box.dropped() == 3 + 7
    box.close()

    # The dropped count is kept across restarts.
    again = Outbox(path, DEVICE, max_rows=5)
    assert again.dropped() == 10
    assert again.put(Stream.COUNT, count(0)) == 15
    again.close()


def test_not_full_drops_nothing(path: Path) -> None:
    box = Outbox(path, DEVICE, max_rows=5)
    for i in range(5):
        box.put(Stream.COUNT, count(i))
    assert box.depth() == 5
    assert box.dropped() == 0
    box.close()


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from edge.outbox import Outbox
    from ruuhka.contract import Stream
    box = Outbox(Path(sys.argv[1]), "test-gate")
    for i in range(100):
        box.put(Stream.COUNT, {"counter": "main", "entries": i, "exits": 0})
    print("done", flush=True)
    os.kill(os.getpid(), 9)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_readings_survive_sigkill_right_after_put(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.stdout.strip() == "done", result.stderr
    assert result.returncode == -signal.SIGKILL, result.stderr

    box = Outbox(path, DEVICE)
    try:
        pending = box.after(-1, 1000)
        assert [p.seq for p in pending] == list(range(100))
        entries = []
        for item in pending:
            reading = parse_payload(Stream.COUNT, item.payload)
            assert isinstance(reading, CountPayload)
            entries.append(reading.entries)
        assert entries == list(range(100))
        assert box.put(Stream.COUNT, count(100)) == 100
    finally:
        box.close()
