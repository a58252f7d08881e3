"""The anonymiser: no person pixel in what it publishes, and nothing at all when in doubt.

Frames are synthetic (made here): a smooth textured yard and "people" pasted in
as high-contrast magenta/green checkerboards, a colour and texture the yard never
has, so any published trace of them is measurable. The learned detectors are
tested on their own (they find no person in a checkerboard); the pipeline tests
switch them off to stay fast, so the foreground, hold, polygon and fail-closed
logic is what they prove.
"""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.anonymise import Anonymiser, FailClosed, Outcome, _encode, count_people  # noqa: E402
from edge.camera_config import AnonymiserConfig, Mode  # noqa: E402
from ruuhka.contract import CameraStatus  # noqa: E402

W, H = 240, 160
PERSON = (20, 44)  # width, height in pixels


class Clock:
    """A monotonic clock the test moves: one frame every two seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def yard(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(70, 170, (H // 8, W // 8, 3), dtype=np.uint8)
    base = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    base[:, :, 1] = base[:, :, 0]  # a grey-ish yard: no magenta, no saturated green
    base[:, :, 2] = base[:, :, 0]
    return base


def paste_person(frame: np.ndarray, x: int, y: int) -> np.ndarray:
    """A checkerboard of magenta and green, ``PERSON`` pixels, top-left at (x, y)."""
    w, h = PERSON
    out = frame.copy()
    ys, xs = np.mgrid[0:h, 0:w]
    board = ((xs // 4 + ys // 4) % 2).astype(bool)
    patch = np.where(board[:, :, None], (255, 0, 255), (0, 255, 0)).astype(np.uint8)
    out[y : y + h, x : x + w] = patch
    return out


def person_pixels(image: np.ndarray) -> int:
    """Pixels that look like the pasted person (saturated magenta or green)."""
    b, g, r = (image[:, :, i].astype(int) for i in range(3))
    magenta = (r > 180) & (b > 180) & (g < 90)
    green = (g > 180) & (r < 90) & (b < 90)
    return int((magenta | green).sum())


def decode(outcome: Outcome) -> np.ndarray:
    assert outcome.jpeg is not None
    image = cv2.imdecode(np.frombuffer(outcome.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.resize(image, (W, H), interpolation=cv2.INTER_LINEAR)


def config(**overrides: object) -> AnonymiserConfig:
    values: dict[str, object] = {
        "person_detector": False,
        "face_detector": False,
        "calibration_frames": 4,
        "min_seen": 2,
        "background_confirm_s": 6,
    }
    return AnonymiserConfig(**(values | overrides))


def run(anonymiser: Anonymiser, clock: Clock, frames: list[np.ndarray]) -> list[Outcome]:
    outcomes = []
    for frame in frames:
        clock.now += 2.0
        outcomes.append(anonymiser.process(frame))
    return outcomes


def walking(count: int, start: int = 10, step: int = 12, y: int = 60) -> list[np.ndarray]:
    base = yard()
    return [paste_person(base, start + step * i, y) for i in range(count)]


def assert_no_picture(outcome: Outcome, status: CameraStatus) -> None:
    assert outcome.status is status, outcome
    assert outcome.jpeg is None and outcome.people is None and not outcome.ok


@pytest.mark.parametrize("mode", list(Mode))
def test_a_walking_person_never_reaches_the_picture(mode: Mode) -> None:
    clock = Clock()
    anonymiser = Anonymiser(config(mode=mode), clock=clock)
    frames = walking(14)
    outcomes = run(anonymiser, clock, frames)
    assert [o.status for o in outcomes[:4]] == [CameraStatus.CALIBRATING] * 4
    assert all(o.jpeg is None for o in outcomes[:4])
    published = [o for o in outcomes if o.ok]
    assert len(published) == 10
    assert person_pixels(frames[-1]) > 500  # the raw frame shows the person
    for outcome in outcomes[4:]:
        picture = decode(outcome)
        assert person_pixels(picture) == 0, mode
        assert outcome.width == W and outcome.height == H
    # Away from the person the yard is still there (utility).
    picture = decode(published[-1])
    right = (slice(0, H), slice(W - 60, W))
    assert np.abs(picture[right].astype(int) - frames[-1][right].astype(int)).mean() < 12


def test_fill_and_pixelate_leave_no_texture_where_the_person_is() -> None:
    for mode in (Mode.FILL, Mode.PIXELATE):
        clock = Clock()
        anonymiser = Anonymiser(config(mode=mode), clock=clock)
        frames = walking(8)
        outcome = run(anonymiser, clock, frames)[-1]
        x, y = 10 + 12 * 7, 60
        region = (slice(y, y + PERSON[1]), slice(x, x + PERSON[0]))
        raw = frames[-1][region].astype(float)
        shown = decode(outcome)[region].astype(float)
        assert raw.std() > 80
        assert shown.std() < 25, mode  # one flat block (blurred at its seams), not a pattern
        if mode is Mode.FILL:
            assert np.abs(shown - 128).mean() < 10


def test_background_mode_publishes_the_learned_yard_not_the_live_frame() -> None:
    clock = Clock()
    anonymiser = Anonymiser(config(mode=Mode.BACKGROUND), clock=clock)
    frames = walking(12)
    picture = decode(run(anonymiser, clock, frames)[-1])
    assert np.abs(picture.astype(int) - yard().astype(int)).mean() < 8


def test_a_person_standing_still_in_a_privacy_polygon_stays_hidden() -> None:
    clock = Clock()
    polygon = [(0.5, 0.2), (0.8, 0.2), (0.8, 0.8), (0.5, 0.8)]
    anonymiser = Anonymiser(
        config(mode=Mode.PIXELATE, foreground=False, privacy_polygons=[polygon]), clock=clock
    )
    still = paste_person(yard(), 140, 50)
    outcomes = run(anonymiser, clock, [still] * 6)
    assert outcomes[-1].ok
    assert person_pixels(decode(outcomes[-1])) == 0


def test_a_person_who_stops_is_held_for_hold_s() -> None:
    clock = Clock()
    anonymiser = Anonymiser(config(mode=Mode.PIXELATE, hold_s=30, hold_frames=0), clock=clock)
    frames = walking(8)
    stopped = frames[-1]
    outcomes = run(anonymiser, clock, [*frames, stopped, stopped, stopped])
    assert person_pixels(decode(outcomes[-1])) == 0


def test_darkness_fails_closed() -> None:
    clock = Clock()
    anonymiser = Anonymiser(config(), clock=clock)
    run(anonymiser, clock, walking(6))
    dark = (yard() // 8).astype(np.uint8)
    outcome = run(anonymiser, clock, [dark])[0]
    assert_no_picture(outcome, CameraStatus.DARK)


def test_an_ir_switch_fails_closed_and_learns_again() -> None:
    clock = Clock()
    anonymiser = Anonymiser(config(mode=Mode.PIXELATE), clock=clock)
    coloured = yard()
    coloured[:, :, 1] = (coloured[:, :, 1] * 0.3).astype(np.uint8)  # a green-poor, colourful yard
    outcomes = run(anonymiser, clock, [coloured] * 6)
    assert outcomes[-1].ok
    infrared = cv2.cvtColor(cv2.cvtColor(coloured, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    infrared = cv2.add(infrared, 60)  # IR lamps: grey and brighter
    after = run(anonymiser, clock, [infrared] * 3)
    assert_no_picture(after[0], CameraStatus.LIGHT_CHANGE)
    for outcome in after[1:]:
        assert_no_picture(outcome, CameraStatus.CALIBRATING)


def test_an_implausible_mask_fails_closed() -> None:
    clock = Clock()
    everything = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.95), (0.0, 0.95)]
    anonymiser = Anonymiser(config(privacy_polygons=[everything]), clock=clock)
    outcomes = run(anonymiser, clock, [yard()] * 6)
    assert_no_picture(outcomes[-1], CameraStatus.IMPLAUSIBLE_MASK)


def test_a_missing_or_malformed_frame_fails_closed() -> None:
    anonymiser = Anonymiser(config())
    assert_no_picture(anonymiser.process(None), CameraStatus.NO_FRAME)
    assert_no_picture(anonymiser.process(np.zeros((10, 10, 4), np.uint8)), CameraStatus.ERROR)
    assert_no_picture(anonymiser.process(np.zeros((10, 10, 3), np.float32)), CameraStatus.ERROR)


class Exploding:
    def detect(self, image: np.ndarray) -> np.ndarray:
        raise RuntimeError("model crashed")


STAGES = [
    "persons",
    "faces",
    "foreground",
    "light",
    "background",
    "check",
    "canvas",
    "hide",
    "encode",
]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("mode", [Mode.BACKGROUND, Mode.PIXELATE])
def test_an_exception_at_any_stage_publishes_nothing(
    stage: str, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    anonymiser = Anonymiser(config(mode=mode), clock=clock)
    frames = walking(8)
    assert run(anonymiser, clock, frames[:6])[-1].ok

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"injected failure in {stage}")

    if stage == "persons":
        anonymiser.persons = Exploding()
    elif stage == "faces":
        anonymiser.faces = Exploding()
    elif stage == "foreground":
        monkeypatch.setattr(anonymiser, "_foreground", boom)
    elif stage == "light":
        monkeypatch.setattr(anonymiser, "_check_light", boom)
    elif stage == "background":
        monkeypatch.setattr(anonymiser, "_learn_background", boom)
    elif stage == "check":
        monkeypatch.setattr(anonymiser, "_check_background", boom)
    elif stage == "canvas":
        monkeypatch.setattr(anonymiser, "_background_canvas", boom)
    elif stage == "hide":
        monkeypatch.setattr("edge.anonymise._hide", boom)
    else:
        monkeypatch.setattr("edge.anonymise.cv2.imencode", lambda *a, **k: (False, None))
    outcome = run(anonymiser, clock, frames[6:7])[0]
    expected_ok = (stage in ("background", "check", "canvas") and mode is Mode.PIXELATE) or (
        stage == "hide" and mode is Mode.BACKGROUND
    )
    if expected_ok:  # that stage is not on this mode's path
        assert outcome.ok and person_pixels(decode(outcome)) == 0
    else:
        assert_no_picture(outcome, CameraStatus.ERROR)


def test_a_slow_frame_is_a_timeout_and_publishes_nothing() -> None:
    clock = Clock()

    class Slow:
        def detect(self, image: np.ndarray) -> np.ndarray:
            clock.now += 31.0
            return np.zeros((0, 5), np.float32)

    anonymiser = Anonymiser(config(mode=Mode.FILL, timeout_s=30), clock=clock)
    assert run(anonymiser, clock, walking(6))[-1].ok
    anonymiser.persons = Slow()
    assert_no_picture(anonymiser.process(walking(7)[-1]), CameraStatus.TIMEOUT)


def test_output_is_downscaled_and_carries_no_metadata() -> None:
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    jpeg, width, height = _encode(canvas, 960, 75)
    assert (width, height) == (960, 540)
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert b"Exif" not in jpeg and b"\xff\xe1" not in jpeg  # no APP1 (EXIF, XMP) segment
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (540, 960, 3)


def test_people_are_counted_once_however_many_boxes_overlap() -> None:
    boxes = np.array(
        [
            [10, 10, 50, 110, 0.9],
            [12, 12, 52, 112, 0.8],  # the same person again (a tile)
            [100, 10, 140, 110, 0.7],
            [200, 10, 240, 110, 0.2],  # too weak to count (still hidden)
        ],
        np.float32,
    )
    assert len(count_people(boxes, 0.5)) == 2


def test_spots_in_use_follow_the_counted_peoples_feet() -> None:
    class TwoPeople:
        def detect(self, image: np.ndarray) -> np.ndarray:
            return np.array([[20, 20, 50, 100, 0.9], [150, 30, 180, 110, 0.9]], np.float32)

    spots = [
        {"name": "left", "polygon": [(0.0, 0.5), (0.4, 0.5), (0.4, 1.0), (0.0, 1.0)]},
        {"name": "right", "polygon": [(0.9, 0.0), (1.0, 0.0), (1.0, 0.2)]},
    ]
    clock = Clock()
    anonymiser = Anonymiser(config(mode=Mode.BACKGROUND, spots=spots), TwoPeople(), clock=clock)
    outcome = run(anonymiser, clock, [yard()] * 6)[-1]
    assert outcome.ok and outcome.people == 2 and outcome.spots_in_use == 1
    # Markers, not people, are drawn where the two were counted.
    assert person_pixels(decode(outcome)) == 0


def test_fail_closed_is_an_exception_with_a_status() -> None:
    error = FailClosed(CameraStatus.DARK, "too dark")
    assert error.status is CameraStatus.DARK and "dark" in str(error)


# -- the learned detectors, on their own --------------------------------------


def test_person_graph_loads_without_tensorflow_and_has_all_ssd_anchors() -> None:
    from edge.detectors import PersonDetector, ssd_anchors, tile_grid

    anchors = ssd_anchors()
    assert anchors.shape == (1917, 4)  # SSD300: 19²·3 + (10²+5²+3²+2²+1²)·6
    detector = PersonDetector(tile_sides=(96,))
    scores = detector._scores_and_boxes([yard()])[0][0]
    assert scores.shape == (1917,)  # the pruned graph's outputs line up with the anchors
    boxes = detector.detect(paste_person(yard(), 50, 50))
    assert boxes.ndim == 2 and boxes.shape[1] == 5
    assert len(tile_grid(W, H, 96, 0.25)) == 6
    assert tile_grid(W, H, 400, 0.25) == []


def test_closer_looks_are_centred_enlarged_and_bounded() -> None:
    from edge.detectors import closer_looks

    weak = np.array(
        [
            [100, 60, 110, 80, 0.2],  # small: 20 px tall
            [101, 61, 111, 81, 0.15],  # the same one again: suppressed
            [10, 10, 20, 30, 0.12],
            [0, 0, 200, 150, 0.2],  # too big to enlarge
        ],
        np.float32,
    )
    looks = closer_looks(weak, W, H, (2.0, 4.0), limit=16)
    assert len(looks) == 4  # two candidates, two zooms each; the big one gets none
    for look in looks:
        assert look.x >= 0 and look.x + look.w <= W and look.y >= 0 and look.y + look.h <= H
    big = max(looks, key=lambda t: t.w)
    assert big.w == 80 and big.x <= 100 and big.x + big.w >= 110  # 4x, around the box
    assert len(closer_looks(weak, W, H, (2.0, 4.0), limit=1)) == 2  # the strongest only
    assert closer_looks(weak, W, H, (), limit=16) == []


def test_a_weak_small_candidate_is_confirmed_by_a_closer_look() -> None:
    """A stand-in scorer that, like the real one, sees a small thing weakly and
    the same thing enlarged strongly: only the closer look reports it."""
    from edge.detectors import PersonDetector

    class SizeSensitive(PersonDetector):
        def _scores_and_boxes(self, images: list[np.ndarray]) -> list:
            out = []
            for crop in images:
                ys, xs = np.nonzero(crop[:, :, 0] > 250)
                if len(ys) == 0:
                    out.append((np.zeros(1), np.zeros((1, 4))))
                    continue
                h, w = crop.shape[:2]
                box = np.array(
                    [[xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]]
                )
                out.append((np.array([0.9 if (ys.max() - ys.min()) > h / 5 else 0.15]), box))
            return out

    frame = np.full((H, W, 3), 100, np.uint8)
    frame[70:90, 150:158] = 255  # 20 px tall in a 160 px picture
    found = SizeSensitive(threshold=0.3, tile_sides=(), zooms=(3.0,)).detect(frame)
    assert len(found) >= 1 and found[:, 4].max() == pytest.approx(0.9)
    x0, y0, x1, y1 = found[found[:, 4].argmax(), :4]
    assert (x0, y0, x1, y1) == pytest.approx((150, 70, 158, 90), abs=1)
    assert len(SizeSensitive(threshold=0.3, tile_sides=(), zooms=()).detect(frame)) == 0


def test_face_detector_runs_at_any_input_size() -> None:
    """One network reused across input sizes: onnxruntime with symbolic dimensions."""
    from edge.detectors import FaceDetector

    detector = FaceDetector()
    for size in ((H, W), (96, 128), (H, W)):
        frame = cv2.resize(yard(), (size[1], size[0]))
        boxes = detector.detect(frame)
        assert boxes.shape[1] == 5
        assert len(boxes) == 0  # no face in a textured yard
