"""The hub keeps a camera picture only if it decodes, whole, as a JPEG of the size the
message declares; anything else is refused with its reason, off the ingest thread."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from hub.snapshots import Picture, PictureRejected, SnapshotStore, verify_jpeg
from ruuhka.broker import Broker
from tests.conftest import HubProcess, mosquitto_pub, wait_for

CAMERA = "ruuhka/v1/devices/test-cam/snapshot"
HTML = b"\xff\xd8\xff<html><script>document.cookie</script></html>\xff\xd9"


def jpeg(width: int, height: int, shade: int = 120) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (shade, shade, shade)).save(out, "JPEG")
    return out.getvalue()


def claiming(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with a header (its start-of-frame) that claims another size."""
    sof = data.index(b"\xff\xc0")
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return data[: sof + 5] + size + data[sof + 9 :]


def reason(data: bytes, width: int, height: int) -> str:
    with pytest.raises(PictureRejected) as refused:
        verify_jpeg(data, width, height)
    return refused.value.reason


def test_only_a_whole_jpeg_of_the_declared_size_passes() -> None:
    good = jpeg(64, 32)
    verify_jpeg(good, 64, 32)
    assert reason(HTML, 64, 32) == "not_a_jpeg"
    assert reason(good, 32, 64) == "wrong_size"
    assert reason(good[: len(good) // 2] + b"\xff\xd9", 64, 32) == "not_a_jpeg"  # cut short
    png = io.BytesIO()
    Image.new("RGB", (64, 32)).save(png, "PNG")
    assert reason(png.getvalue(), 64, 32) == "not_a_jpeg"
    assert reason(jpeg(8, 8), 960, 4097) == "too_many_pixels"
    # Decompression bombs: a few hundred bytes that claim 81 million pixels (243 MB
    # decoded) or 3.6 billion are refused by their header, before any pixel is decoded.
    assert reason(claiming(jpeg(16, 16), 9000, 9000), 960, 540) == "wrong_size"
    assert reason(claiming(jpeg(16, 16), 60000, 60000), 960, 540) == "too_many_pixels"
    assert reason(claiming(jpeg(16, 16), 60000, 60000), 60000, 60000) == "too_many_pixels"


def test_pictures_are_checked_on_the_store_s_own_thread(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "pictures.db"))
    refused: list[tuple[str, str]] = []
    checked_on: list[str] = []
    store.on_rejected = lambda picture, why: refused.append((picture.source, why.reason))
    store.listeners.append(lambda _: checked_on.append(threading.current_thread().name))
    t0 = datetime.now(UTC)
    try:
        store.offer(
            [
                Picture("carpets", "cam/yard", t0, HTML, 64, 32, 1),
                Picture("carpets", "cam/yard", t0 + timedelta(seconds=1), jpeg(64, 32), 64, 32, 2),
                Picture("carpets", "cam/yard", t0 + timedelta(seconds=2), jpeg(64, 32), 32, 32, 3),
            ]
        )
        wait_for(lambda: len(refused) == 2, 10, "both bad pictures refused")
        latest = store.latest("carpets")
        assert latest is not None and latest.people == 2 and store.count() == 1
        assert refused == [("cam/yard", "not_a_jpeg"), ("cam/yard", "wrong_size")]
        assert checked_on == ["pictures"]
    finally:
        store.close()


def message(seq: int, data: bytes, width: int, height: int) -> str:
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"seq": seq, "ts": ts, "camera": "yard", "people": 1, "width": width,
                       "height": height, "jpeg_b64": base64.b64encode(data).decode()})  # fmt: skip


def snapshot(hub: HubProcess) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(hub.url + "/api/v1/facilities/carpets/snapshot.jpg") as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_the_hub_serves_no_picture_that_is_not_one(hub: HubProcess, broker: Broker) -> None:
    mosquitto_pub(broker, CAMERA, message(1, HTML, 320, 180))
    wait_for(lambda: hub.metric("ruuhka_readings_rejected_total", reason="bad_image") == 1, 20,
             "the disguised HTML refused")  # fmt: skip
    assert snapshot(hub)[0] == 404
    assert hub.facility("carpets")["people"] == 1  # the count and metadata are kept
    good = jpeg(320, 180)
    mosquitto_pub(broker, CAMERA, message(2, good, 320, 180))
    wait_for(lambda: snapshot(hub) == (200, good), 20, "the real picture served")
    bomb = claiming(jpeg(16, 16, shade=30), 9000, 9000)
    mosquitto_pub(broker, CAMERA, message(3, bomb, 960, 540))
    mosquitto_pub(broker, CAMERA, message(4, jpeg(320, 180, shade=200), 640, 360))
    wait_for(lambda: hub.metric("ruuhka_readings_rejected_total", reason="bad_image") == 3, 20,
             "the bomb and the wrong size refused")  # fmt: skip
    assert snapshot(hub) == (200, good)
    assert "bad_image: not_a_jpeg" in hub.log.read_text(encoding="utf-8")  # says why
