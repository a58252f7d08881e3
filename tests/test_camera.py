"""The camera source end to end: a trail camera's folder → anonymiser → outbox → MQTT →
hub → ``/api/v1/facilities/{id}/snapshot.jpg``, and nothing raw on any path."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.agent import Agent  # noqa: E402
from edge.anonymise import Anonymiser  # noqa: E402
from edge.camera_config import CameraConfig, Mode  # noqa: E402
from edge.config import EdgeSettings  # noqa: E402
from edge.sources.camera import CameraSource, FolderFrames  # noqa: E402
from hub.snapshots import Picture, SnapshotStore, decode_jpeg  # noqa: E402
from ruuhka.contract import CameraStatus, SnapshotPayload, Stream, parse_payload  # noqa: E402
from ruuhka.settings import ConfigError, load_settings  # noqa: E402
from tests.conftest import HubProcess, wait_for  # noqa: E402
from tests.test_anonymise import paste_person, person_pixels, walking, yard  # noqa: E402
from tests.web_support import picture_kept  # noqa: E402

FAST = {"person_detector": False, "face_detector": False, "calibration_frames": 3, "min_seen": 2}


def camera_config(folder: Path, **extra: object) -> CameraConfig:
    values: dict[str, object] = {
        "camera": "yard",
        "folder": folder,
        "interval_s": 0.3,
        "analyse_every_s": 0.05,
        "anonymiser": FAST,
    }
    return CameraConfig(**(values | extra))


def drop(folder: Path, frames: list[np.ndarray], start: int = 0) -> None:
    """Write frames as a trail camera would, old enough to be picked up at once."""
    for index, frame in enumerate(frames, start):
        path = folder / f"IMG_{index:04d}.JPG"
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        path.write_bytes(data.tobytes())
        past = time.time() - 10 + index * 0.01
        os.utime(path, (past, past))


def now() -> datetime:
    return datetime.now(UTC)


def as_payload(fields: dict[str, object]) -> SnapshotPayload:
    """As the hub sees it: the JSON the outbox stores, validated by the contract."""
    body = {"seq": 1, "ts": "2026-03-01T12:00:00Z", **fields}
    payload = parse_payload(Stream.SNAPSHOT, json.dumps(body).encode())
    assert isinstance(payload, SnapshotPayload)
    return payload


def test_config_needs_exactly_one_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CameraConfig(camera="yard")
    with pytest.raises(ValueError, match="exactly one"):
        CameraConfig(camera="yard", url=0, folder=tmp_path)
    settings = EdgeSettings(
        device_id="cam", state_dir=tmp_path, sources=[{"type": "camera", "url": "0"}]
    )
    assert isinstance(settings.sources[0], CameraConfig)
    assert settings.sources[0].anonymiser.mode is Mode.BACKGROUND  # the default
    assert settings.sources[0].interval_s == 60


@pytest.mark.parametrize(
    ("section", "line", "named"),
    [
        ("[sources.anonymiser]", "zooms = [0.5]", "sources[0].camera.anonymiser.zooms[0]"),
        ("[sources.anonymiser]", 'zooms = "big"', "sources[0].camera.anonymiser.zooms:"),
        ("[sources.anonymiser]", "candidate_threshold = 1.5", "candidate_threshold"),
        ("[sources.anonymiser]", "max_candidates = -1", "max_candidates"),
        ("[sources.anonymiser]", "zoom = [2.0]", "anonymiser.zoom"),
        ("[outbox]", "max_picture_bytes = 0", "outbox.max_picture_bytes"),
    ],
)
def test_bad_detector_and_picture_settings_stop_the_agent_with_the_key_named(
    tmp_path: Path, section: str, line: str, named: str
) -> None:
    config = tmp_path / "edge.toml"
    camera = '[[sources]]\ntype = "camera"\nurl = 0\n'
    outbox = f"{section}\n{line}\n" if section == "[outbox]" else ""
    anonymiser = f"{section}\n{line}\n" if section != "[outbox]" else ""
    config.write_text(
        f'device_id = "cam"\nstate_dir = "{tmp_path}"\n{outbox}{camera}{anonymiser}',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings(EdgeSettings, config)


def test_folder_frames_are_read_oldest_first_and_deleted(tmp_path: Path) -> None:
    frames = [yard(1), yard(2)]
    drop(tmp_path, frames)
    (tmp_path / "notes.txt").write_text("not a picture")
    reader = FolderFrames(tmp_path)
    first = reader.grab()
    assert first is not None and first.shape == frames[0].shape
    assert np.abs(first.astype(int) - frames[0].astype(int)).mean() < 3
    assert reader.grab() is not None
    assert reader.grab() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_only_anonymised_pictures_become_readings(tmp_path: Path) -> None:
    source = CameraSource(camera_config(tmp_path, anonymiser=FAST | {"mode": "fill"}))
    try:
        assert source.read(now()) == []
        frames = walking(8)
        drop(tmp_path, frames)
        wait_for(lambda: source.analysed >= 8, 30, "eight frames analysed")
        readings = source.read(now())
        assert len(readings) == 1
        stream, fields = readings[0]
        payload = as_payload(fields)
        assert stream is Stream.SNAPSHOT and payload.status is CameraStatus.OK
        assert payload.people == 0 and payload.anonymiser == "fill"
        assert payload.jpeg_b64 is not None
        jpeg = base64.b64decode(payload.jpeg_b64)
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (payload.height, payload.width, 3)
        assert person_pixels(picture) == 0 and person_pixels(frames[-1]) > 500
        assert source.read(now()) == []  # the same picture is not sent twice
        assert list(tmp_path.iterdir()) == []  # no raw picture stays on disk
    finally:
        source.close()


def test_a_failing_camera_sends_its_reason_and_no_picture(tmp_path: Path) -> None:
    source = CameraSource(camera_config(tmp_path))
    try:
        drop(tmp_path, [yard()])
        wait_for(lambda: source.analysed >= 1, 30, "a frame analysed")
        (_, fields), *_ = source.read(now())
        assert fields == {"camera": "yard", "status": "calibrating", "anonymiser": "background"}
        drop(tmp_path, [(yard() // 10).astype(np.uint8)], start=1)
        wait_for(lambda: source.analysed >= 2, 30, "a dark frame analysed")
        (_, fields), *_ = source.read(now())
        assert fields["status"] == "dark" and "jpeg_b64" not in fields
        assert as_payload(fields).people is None
    finally:
        source.close()


class Hanging:
    """A frame source whose grab raises, then a model that never returns in time."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def grab(self) -> np.ndarray | None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("camera unplugged")
        return paste_person(yard(), 30, 30)

    def close(self) -> None:
        self.release.set()


def test_a_hanging_anonymiser_is_reported_as_timeout(tmp_path: Path) -> None:
    frames = Hanging()

    class Stuck:
        def detect(self, image: np.ndarray) -> np.ndarray:
            frames.release.wait(30)
            return np.zeros((0, 5), np.float32)

    config = camera_config(tmp_path, stale_after_s=0.5, anonymiser=FAST | {"timeout_s": 0.3})
    anonymiser = Anonymiser(config.anonymiser, persons=Stuck())
    source = CameraSource(config, frames=frames, anonymiser=anonymiser)
    try:
        wait_for(lambda: frames.calls >= 2, 10, "the second grab")
        readings = wait_for(lambda: source.read(now()), 10, "a timeout reading")
        assert readings[0][1] == {"camera": "yard", "status": "timeout", "anonymiser": "background"}
    finally:
        source.close()


def test_no_frames_at_all_is_reported_as_no_frame(tmp_path: Path) -> None:
    source = CameraSource(camera_config(tmp_path, stale_after_s=0.2))
    try:
        readings = wait_for(lambda: source.read(now()), 10, "a no_frame reading")
        assert readings[0][1]["status"] == "no_frame"
    finally:
        source.close()


def test_snapshot_store_keeps_only_the_latest_within_retention(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "s.db"), retention_h=1)
    jpeg = base64.b64decode(base64.b64encode(b"\xff\xd8\xff\xe0" + b"x" * 10 + b"\xff\xd9"))
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store.save([Picture("carpets", "cam/yard", t0, jpeg, 8, 8, 1)], now=t0)
    store.save([Picture("carpets", "cam/yard", t0.replace(minute=1), jpeg, 8, 8, 2)], now=t0)
    # An older picture arriving late does not replace the newer one.
    store.save([Picture("carpets", "cam/yard", t0.replace(second=30), jpeg, 8, 8, 3)], now=t0)
    latest = store.latest("carpets", now=t0)
    assert latest is not None and latest.people == 2 and store.count() == 1
    assert store.latest("carpets", now=t0.replace(hour=14)) is None
    assert decode_jpeg(base64.b64encode(jpeg).decode()) == jpeg
    with pytest.raises(ValueError):
        decode_jpeg(base64.b64encode(b"GIF89a").decode())
    store.close()


def test_contract_refuses_a_picture_without_an_ok() -> None:
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0 jpeg \xff\xd9").decode()
    gif = base64.b64encode(b"GIF89a..").decode()
    picture = {"jpeg_b64": jpeg, "width": 8, "height": 8}
    for fields, message in (
        ({"status": "dark", **picture}, "no picture"),
        ({"status": "ok"}, "needs people"),
        ({"people": 1, **picture, "jpeg_b64": gif}, "not a JPEG"),
        ({"people": 1, **picture, "width": 1280}, "less than or equal to 960"),
    ):
        with pytest.raises(ValueError, match=message):
            as_payload({"camera": "yard", **fields})


def test_trail_camera_to_public_snapshot_url(tmp_path: Path, hub: HubProcess, broker) -> None:
    folder = tmp_path / "ftp"
    folder.mkdir()
    settings = EdgeSettings(
        device_id="test-cam",
        state_dir=tmp_path / "edge",
        heartbeat_s=3600,
        clock_check="floor",
        mqtt={"url": broker.url},
        reconnect={"min_s": 0.1, "max_s": 0.5},
        outbox={"commit_interval_s": 0.05},
    )
    config = camera_config(folder, anonymiser=FAST | {"mode": "pixelate"})
    source = CameraSource(config)
    agent = Agent(settings, [source])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        frames = walking(8)
        drop(folder, frames)
        facility = wait_for(
            lambda: (f := hub.facility("carpets"))["snapshot_at"] is not None and f,
            60,
            "the picture at the hub",
        )
        assert facility["people"] == 0 and facility["camera_status"] == "ok"
        wait_for(lambda: picture_kept(hub), 10, "the picture checked and kept")
        url = hub.url + "/api/v1/facilities/carpets/snapshot.jpg"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            headers = response.headers
        assert headers["Content-Type"] == "image/jpeg"
        assert "max-age" in headers["Cache-Control"] and headers["ETag"]
        assert headers["X-Snapshot-At"].startswith(facility["snapshot_at"][:19])
        picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape[1] <= 960
        assert person_pixels(picture) == 0

        def not_modified() -> bool:
            """A 304 for the ETag just served (the camera may send a newer one between)."""
            with urllib.request.urlopen(url, timeout=10) as response:
                etag = response.headers["ETag"]
            request = urllib.request.Request(url, headers={"If-None-Match": etag})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except urllib.error.HTTPError as exc:
                return exc.code == 304
            return False

        wait_for(not_modified, 20, "a 304 for an unchanged picture")
        head = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert response.headers["ETag"] == headers["ETag"] and response.read() == b""
            assert response.headers["Content-Type"] == "image/jpeg"
        # Night falls: the camera says why, the count becomes unknown, the picture stays.
        drop(folder, [(yard() // 10).astype(np.uint8)], start=100)
        dark = wait_for(
            lambda: (f := hub.facility("carpets"))["camera_status"] == "dark" and f,
            30,
            "the dark status at the hub",
        )
        assert dark["people"] is None and dark["snapshot_at"] == facility["snapshot_at"]
    finally:
        agent.stop()
        thread.join(20)
    for path in ("/api/v1/facilities/pool/snapshot.jpg", "/api/v1/facilities/nope/snapshot.jpg"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(hub.url + path, timeout=5)
        assert missing.value.code == 404


def test_outbox_holds_only_anonymised_payloads(tmp_path: Path) -> None:
    """Everything the agent stores for sending is a valid snapshot: status, or a JPEG."""
    folder = tmp_path / "ftp"
    folder.mkdir()
    settings = EdgeSettings(
        device_id="test-cam",
        state_dir=tmp_path / "edge",
        heartbeat_s=3600,
        clock_check="floor",
        mqtt={"url": "mqtt://127.0.0.1:9"},
        reconnect={"min_s": 0.1, "max_s": 0.5},
        outbox={"commit_interval_s": 0.05},
    )
    source = CameraSource(camera_config(folder, anonymiser=FAST | {"mode": "fill"}))
    agent = Agent(settings, [source])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    outbox = settings.state_dir / "test-cam.outbox.db"

    def stored() -> list[SnapshotPayload]:
        """The snapshots in the outbox, read while the agent keeps writing it."""
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT topic, payload FROM outbox ORDER BY seq").fetchall()
        found = [parse_payload(Stream.SNAPSHOT, p) for t, p in rows if t.endswith("/snapshot")]
        return [p for p in found if isinstance(p, SnapshotPayload)]

    try:
        # Calibration, then a person walking: the agent stores a picture of them.
        drop(folder, walking(6))
        wait_for(lambda: any(p.jpeg_b64 for p in stored()), 30, "a picture in the outbox")
        # Night falls: a status without a picture.
        drop(folder, [(yard() // 10).astype(np.uint8)], start=6)
        wait_for(
            lambda: any(p.status is CameraStatus.DARK for p in stored()),
            30,
            "the dark status in the outbox",
        )
    finally:
        agent.stop()
        thread.join(20)
    pictures = 0
    for payload in stored():
        if payload.jpeg_b64 is not None:
            jpeg = base64.b64decode(payload.jpeg_b64)
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert picture is not None and person_pixels(picture) == 0
            pictures += 1
        else:
            assert payload.status is not CameraStatus.OK
    assert pictures >= 1


def test_edge_check_describes_the_camera(tmp_path: Path) -> None:
    from edge.check import _probe

    config = camera_config(
        tmp_path, anonymiser=FAST | {"privacy_polygons": [[(0, 0), (1, 0), (1, 1)]]}
    )
    shown = _probe(config)
    assert f"folder {tmp_path}" in shown and "mode background" in shown
    assert "foreground, privacy polygons" in shown and "person detector" not in shown
