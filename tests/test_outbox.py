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
from types import SimpleNamespace

import pytest

import edge.outbox as outbox_module
from edge.outbox import Outbox
from ruuhka.contract import (
    CountPayload,
    RinkPayload,
    SnapshotPayload,
    Stream,
    parse_payload,
    parse_topic,
)

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


def test_a_new_outbox_is_a_new_epoch_and_an_old_one_keeps_its_own(path: Path) -> None:
    first = Outbox(path, DEVICE)
    epoch = first.epoch
    first.put(Stream.COUNT, count(1))
    assert parse_payload(Stream.COUNT, first.after(-1, 1)[0].payload).epoch == epoch
    first.close()
    again = Outbox(path, DEVICE)
    assert again.epoch == epoch  # restarted: the same installation
    again.close()
    reimaged = Outbox(path.with_name("new.db"), DEVICE)  # a new SD card starts from seq 0
    assert reimaged.epoch != epoch and reimaged.put(Stream.COUNT, count(1)) == 0
    reimaged.close()


def test_seq_survives_reopening_after_allocate_and_delete(path: Path) -> None:
    first = Outbox(path, DEVICE)
    first.put(Stream.COUNT, count(0))
    first.put(Stream.COUNT, count(1))
    assert first.allocate_seq() == 2
    first.close()

    second = Outbox(path, DEVICE)
    assert second.allocate_seq() == 3
    # Even with everything published and deleted, seq does not go back.
    second.ack(seqs(second))
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
    box.ack([0, 2])
    assert seqs(box) == [1, 3, 4]
    assert box.depth() == 3
    box.ack([])
    assert box.depth() == 3
    box.ack([1, 3, 4])
    assert box.depth() == 0
    assert box.after(-1, 10) == []


def entries_of(box: Outbox) -> list[int]:
    out = []
    for item in box.after(-1, 100_000):
        reading = parse_payload(Stream.COUNT, item.payload)
        assert isinstance(reading, CountPayload) and reading.entries is not None
        out.append(reading.entries)
    return out


def test_full_outbox_thins_the_oldest_half_and_keeps_the_newest(path: Path) -> None:
    box = Outbox(path, DEVICE, max_rows=8)
    for i in range(8):
        box.put(Stream.COUNT, count(i))
    assert box.dropped() == 0
    box.put(Stream.COUNT, count(8))
    # 9 > 8: every other of the oldest half (0..3) goes; the newer half stays whole.
    assert entries_of(box) == [0, 2, 4, 5, 6, 7, 8]
    assert box.depth() == 7
    assert box.dropped() == 2

    for i in range(9, 40):
        box.put(Stream.COUNT, count(i))
        assert box.depth() <= 8
        assert entries_of(box)[-1] == i  # the newest is always there
    kept = entries_of(box)
    assert kept == sorted(kept)
    # The recent past is complete, the distant past sparse.
    assert kept[-4:] == [36, 37, 38, 39]
    assert kept[0] < 20
    assert box.dropped() == 40 - len(kept)
    box.close()

    # The dropped count is kept across restarts, and so is seq.
    again = Outbox(path, DEVICE, max_rows=8)
    assert again.dropped() == 40 - len(kept)
    assert again.put(Stream.COUNT, count(0)) == 40
    again.close()


def test_one_batch_larger_than_the_outbox_keeps_its_newest(path: Path) -> None:
    box = Outbox(path, DEVICE, max_rows=5)
    assert box.put_many([(Stream.COUNT, count(i)) for i in range(12)]) == list(range(12))
    assert box.depth() == 5
    assert entries_of(box)[-2:] == [10, 11]
    assert box.dropped() == 7
    tiny = Outbox(path.with_name("tiny.db"), DEVICE, max_rows=1)
    tiny.put_many([(Stream.COUNT, count(i)) for i in range(3)])
    assert entries_of(tiny) == [2]
    assert tiny.dropped() == 2
    box.close()
    tiny.close()


def test_commits_are_grouped_but_the_first_after_a_pause_is_immediate(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]  # the outbox's monotonic clock, moved by the test alone
    monkeypatch.setattr(outbox_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    box = Outbox(path, DEVICE, commit_interval_s=0.5, delete_delay_s=60)
    commits = []
    box.on_commit = lambda: commits.append(box.committed_seq())
    box.put(Stream.COUNT, count(0))
    assert commits == [0] and seqs(box) == [0]
    clock[0] += 0.4
    box.put(Stream.COUNT, count(1))
    box.put(Stream.COUNT, count(2))
    # Waiting in memory: counted, but not visible to the publisher yet.
    assert seqs(box) == [0] and box.depth() == 3
    assert box.flush_due_at() == 1000.5
    assert box.maybe_flush() == 0  # not due yet
    clock[0] = 1000.5
    assert box.maybe_flush() == 2
    assert commits == [0, 2] and seqs(box) == [0, 1, 2]
    before = box.commits
    box.ack([0, 1])
    # A deletion alone waits for the next commit (or delete_delay_s).
    assert box.commits == before and box.depth() == 1
    assert seqs(box) == [2]  # acknowledged readings are never handed out again
    box.close()
    reopened = Outbox(path, DEVICE)
    assert seqs(reopened) == [2]  # close() committed the deletions
    reopened.close()


def test_readings_in_memory_at_a_crash_never_reuse_a_published_seq(path: Path) -> None:
    box = Outbox(path, DEVICE, commit_interval_s=3600)
    box.put(Stream.COUNT, count(0))  # committed: the first after a pause
    box.put(Stream.COUNT, count(1))  # in memory only
    # Simulate the crash: the connection goes away without close().
    box._db.close()
    again = Outbox(path, DEVICE)
    assert seqs(again) == [0]
    assert again.put(Stream.COUNT, count(2)) == 1  # seq 1 was never published
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


def test_seq_survives_a_crash_after_everything_was_acknowledged(path: Path) -> None:
    box = Outbox(path, DEVICE, commit_interval_s=0, delete_delay_s=3600)
    box.put(Stream.COUNT, count(0))
    box.ack([0])
    box.put(Stream.COUNT, count(1))  # commits the deletion of 0 with the insertion of 1
    box.ack([1])
    box.flush()  # only a deletion: the outbox is empty now
    assert box.depth() == 0
    box._db.close()  # a crash: no close()
    again = Outbox(path, DEVICE)
    assert again.put(Stream.COUNT, count(2)) == 2
    again._db.close()
    third = Outbox(path, DEVICE)
    assert seqs(third) == [2]
    assert third.put(Stream.COUNT, count(3)) == 3
    third.close()


def test_pictures_beyond_their_byte_budget_drop_the_oldest_and_spare_readings(
    path: Path,
) -> None:
    def picture(n: int) -> dict[str, object]:
        jpeg = "/9j/" + "A" * 996  # what the contract takes for a JPEG, 1 kB
        return {"camera": "yard", "people": n, "width": 8, "height": 8, "jpeg_b64": jpeg}

    def held(box: Outbox) -> tuple[list[int], list[int]]:
        """People of the pictures and entries of the counts waiting, oldest first."""
        people, entries = [], []
        for item in box.after(-1, 100):
            stream = parse_topic(item.topic)[1]
            reading = parse_payload(stream, item.payload)
            if isinstance(reading, SnapshotPayload):
                people.append(reading.people)
            elif isinstance(reading, CountPayload):
                entries.append(reading.entries)
        return people, entries

    box = Outbox(path, DEVICE, max_picture_bytes=3500)
    for n in range(10):
        box.put(Stream.SNAPSHOT, picture(n))
        box.put(Stream.COUNT, count(n))
    # The newest three pictures fit in 3,500 bytes; counts are never dropped for them.
    assert held(box) == ([7, 8, 9], list(range(10)))
    assert box.dropped() == 7
    box.ack([item.seq for item in box.after(-1, 100)][-2:])  # picture 9 and count 9 sent
    box.flush()
    box.close()

    again = Outbox(path, DEVICE, max_picture_bytes=3500)  # sizes are read back at start
    again.put(Stream.SNAPSHOT, picture(10))
    again.put(Stream.SNAPSHOT, picture(11))
    assert held(again) == ([8, 10, 11], list(range(9)))
    assert again.dropped() == 8
    again.close()

    lone = Outbox(path.with_name("lone.db"), DEVICE, max_picture_bytes=10)
    lone.put(Stream.SNAPSHOT, picture(1))
    assert held(lone) == ([1], [])  # the newest picture stays, however large
    lone.close()
