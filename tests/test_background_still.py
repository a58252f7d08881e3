"""Background mode: nobody becomes background, however long they stand still.

A person washing a carpet stands at a table for a quarter of an hour; another
crouches over a carpet; one is there from the first frame. The detectors miss
them for long stretches (a stand-in detector finds them only now and then; the
learned detectors never see the checkerboard people at all). Every picture is
checked where it counts: the published JPEG, decoded, against the person's own
pixels in the frame it was made from. Scene time moves 10-60 s per analysed
frame, as on a camera that analyses every few seconds but for hours.
"""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.anonymise import Anonymiser, Outcome  # noqa: E402
from edge.camera_config import AnonymiserConfig, Mode  # noqa: E402
from edge.yard_scene import Stayer, compose  # noqa: E402
from ruuhka.contract import CameraStatus  # noqa: E402
from tests.test_anonymise import W, person_pixels, yard  # noqa: E402

TOL = 40  # a published pixel this close to the person's own pixel shows the person
MIN = 60.0
HOUR = 3600.0


def checkerboard(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A magenta and green person-sized block: nothing in the yard looks like it."""
    ys, xs = np.mgrid[0:height, 0:width]
    board = ((xs // 4 + ys // 4) % 2).astype(bool)
    sprite = np.where(board[:, :, None], (255, 0, 255), (0, 255, 0)).astype(np.uint8)
    return sprite, np.ones((height, width), bool)


STANDING = checkerboard(20, 44)
CROUCHING = checkerboard(34, 22)  # wider than tall: bent over a carpet
SITTING = checkerboard(26, 30)


def person(
    shape: tuple[np.ndarray, np.ndarray],
    arrive_s: float,
    leave_s: float,
    walks_in: bool = True,
    spot: tuple[int, int] = (110, 70),
) -> Stayer:
    sprite, alpha = shape
    start = (W + 10, spot[1]) if walks_in else None
    return Stayer(sprite, alpha, spot, arrive_s, leave_s, start=start, walk_s=3 * MIN)


class Now:
    """A stand-in person detector that sees the scene's person only in the frames
    the test allows: it is told the truth for each frame and may ignore it."""

    def __init__(self, sees: object) -> None:
        self.sees = sees
        self.t = 0.0
        self.boxes = np.zeros((0, 5), np.float32)

    def detect(self, image: np.ndarray) -> np.ndarray:
        if image is not self.frame or not self.sees(self.t):  # type: ignore[operator]
            return np.zeros((0, 5), np.float32)
        return self.boxes

    def show(self, frame: np.ndarray, mask: np.ndarray, t: float) -> None:
        self.frame, self.t = frame, t
        ys, xs = np.nonzero(mask)
        self.boxes = (
            np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9]], np.float32)
            if len(ys)
            else np.zeros((0, 5), np.float32)
        )


def settings(**overrides: object) -> AnonymiserConfig:
    """The shipped background settings, with the learned detectors off (fast)."""
    values: dict[str, object] = {"person_detector": False, "face_detector": False}
    return AnonymiserConfig(**(values | overrides))


def shown_person(
    anonymiser: Anonymiser, outcome: Outcome, frame: np.ndarray, mask: np.ndarray, base: np.ndarray
) -> int:
    """Person pixels the published picture shows: close to what the camera saw
    there, where that differs from the empty yard and was not painted over (grey,
    a marker: a flat colour that may resemble a grey shirt carries nothing of it);
    and any pixel anywhere that has the checkerboard people's colours."""
    assert outcome.jpeg is not None and anonymiser.last_drawn is not None
    picture = cv2.imdecode(np.frombuffer(outcome.jpeg, np.uint8), cv2.IMREAD_COLOR)
    picture = cv2.resize(picture, (frame.shape[1], frame.shape[0]))
    close = np.abs(picture.astype(int) - frame.astype(int)).max(axis=2) <= TOL
    distinct = np.abs(frame.astype(int) - base.astype(int)).max(axis=2) > TOL
    return int((mask & distinct & close & ~anonymiser.last_drawn).sum()) + person_pixels(picture)


def run_scene(
    anonymiser: Anonymiser,
    people: list[Stayer],
    until_s: float,
    step_s: float,
    base: np.ndarray | None = None,
    detector: Now | None = None,
) -> tuple[list[tuple[float, Outcome]], int]:
    """Every frame through the anonymiser; returns the outcomes and the most
    person pixels any published picture showed."""
    base = yard() if base is None else base
    outcomes = []
    worst = 0
    t = 0.0
    while t <= until_s:
        frame, mask = compose(base, people, t)
        if detector is not None:
            detector.show(frame, mask, t)
        outcome = anonymiser.process(frame, at=t)
        outcomes.append((t, outcome))
        if outcome.ok and mask.any():
            worst = max(worst, shown_person(anonymiser, outcome, frame, mask, base))
        t += step_s
    return outcomes, worst


def published(outcomes: list[tuple[float, Outcome]]) -> list[float]:
    return [t for t, o in outcomes if o.ok]


@pytest.mark.parametrize("shape", [STANDING, CROUCHING, SITTING], ids=["stand", "crouch", "sit"])
def test_someone_still_from_the_first_frame_never_becomes_background(shape: tuple) -> None:
    """Never detected, never moving, for 65 minutes, then gone: the yard around them
    is published once confirmed, they are not, and nothing is published before."""
    anonymiser = Anonymiser(settings())
    someone = person(shape, 0.0, 65 * MIN, walks_in=False)
    outcomes, worst = run_scene(anonymiser, [someone], 2 * HOUR, 20.0)
    assert worst == 0
    first = published(outcomes)[0]
    assert first >= anonymiser.config.background_confirm_s
    assert all(o.status is CameraStatus.CALIBRATING for t, o in outcomes if t < first)
    assert published(outcomes)[-1] == outcomes[-1][0]  # and the yard stays published


@pytest.mark.parametrize("minutes", [15, 30, 60])
@pytest.mark.parametrize("shape", [STANDING, CROUCHING], ids=["stand", "crouch"])
def test_someone_who_walks_in_and_stays_is_never_published(minutes: int, shape: tuple) -> None:
    """Arrives after the background was learned, washes for 15-60 minutes, and the
    detector sees them only once in 20 minutes (and while walking)."""
    detector = Now(lambda t: int(t) % 1200 < 15 or not 85 * MIN <= t < (85 + minutes) * MIN)
    anonymiser = Anonymiser(settings(), persons=detector)
    someone = person(shape, 85 * MIN, (85 + minutes) * MIN)
    outcomes, worst = run_scene(
        anonymiser, [someone], (95 + minutes) * MIN, 15.0, detector=detector
    )
    assert worst == 0
    while_there = [t for t in published(outcomes) if 82 * MIN <= t <= (88 + minutes) * MIN]
    assert len(while_there) > 0.9 * (minutes + 6) * 4  # pictures all along, without them


def test_someone_still_for_longer_stays_out_while_the_detector_finds_them_hourly() -> None:
    """Beyond the hour: standing for three hours, seen once every 50 minutes;
    each sighting starts their confirmation time again."""
    detector = Now(lambda t: int(t) % 3000 < 20 or not 80 * MIN <= t < 260 * MIN)
    anonymiser = Anonymiser(settings(), persons=detector)
    someone = person(STANDING, 80 * MIN, 260 * MIN)
    outcomes, worst = run_scene(anonymiser, [someone], 265 * MIN, 20.0, detector=detector)
    assert worst == 0
    assert len(published(outcomes)) > 0.9 * len([t for t, _ in outcomes if t >= 75 * MIN])


def test_someone_who_walks_in_before_the_background_is_learned_is_never_published() -> None:
    """Walks in after 10 minutes and sits for an hour, never detected."""
    anonymiser = Anonymiser(settings())
    someone = person(SITTING, 10 * MIN, 70 * MIN)
    outcomes, worst = run_scene(anonymiser, [someone], 2.5 * HOUR, 30.0)
    assert worst == 0
    assert published(outcomes)  # the rest of the yard is published in the end


def test_a_person_learned_in_who_leaves_leaves_no_ghost() -> None:
    """With a short confirmation (set here, not shipped) a person still for longer
    is learned; when they go, their old patch is not published again."""
    anonymiser = Anonymiser(settings(background_confirm_s=10 * MIN))
    someone = person(STANDING, 0.0, 30 * MIN, walks_in=False)
    base = yard()
    outcomes, _ = run_scene(anonymiser, [someone], 50 * MIN, 20.0, base=base)
    region = (slice(70, 70 + 44), slice(110, 110 + 20))
    after = [o for t, o in outcomes if o.ok and t >= 30 * MIN]
    assert after
    for outcome in after:
        picture = cv2.imdecode(np.frombuffer(outcome.jpeg or b"", np.uint8), cv2.IMREAD_COLOR)
        assert person_pixels(picture[region]) == 0


def test_a_person_the_detector_finds_in_the_learned_background_is_not_published() -> None:
    """The detector misses them in every live frame but finds them in the learned
    background: that part is forgotten, never shown."""

    class OnlyInBackground:
        def __init__(self) -> None:
            self.live: np.ndarray | None = None
            self.checks = 0

        def detect(self, image: np.ndarray) -> np.ndarray:
            if image is self.live:
                return np.zeros((0, 5), np.float32)
            self.checks += 1
            ys, xs = np.nonzero(person_pixels_mask(image))
            if len(ys) == 0:
                return np.zeros((0, 5), np.float32)
            return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9]], np.float32)

    finder = OnlyInBackground()
    # Checked every quarter of an hour: what is learned in between waits, hidden.
    anonymiser = Anonymiser(
        settings(background_confirm_s=10 * MIN, background_check_s=15 * MIN), persons=finder
    )
    someone = person(CROUCHING, 0.0, HOUR, walks_in=False)
    worst = 0
    t = 0.0
    outcomes = []
    while t <= HOUR - 60:
        frame, mask = compose(yard(), [someone], t)
        finder.live = frame
        outcome = anonymiser.process(frame, at=t)
        outcomes.append((t, outcome))
        if outcome.ok:
            worst = max(worst, shown_person(anonymiser, outcome, frame, mask, yard()))
        t += 20.0
    assert worst == 0 and finder.checks >= 2
    assert len(published(outcomes)) > 100


def person_pixels_mask(image: np.ndarray) -> np.ndarray:
    b, g, r = (image[:, :, i].astype(int) for i in range(3))
    return ((r > 180) & (b > 180) & (g < 90)) | ((g > 180) & (r < 90) & (b < 90))


def test_until_the_background_is_confirmed_nothing_is_published() -> None:
    """An empty yard, shipped settings: calibrating (no picture, no count) until the
    confirmation time has passed in scene time, however many frames come."""
    anonymiser = Anonymiser(settings())
    confirm = anonymiser.config.background_confirm_s
    outcomes, _ = run_scene(anonymiser, [], confirm + 10 * MIN, 10.0)
    for t, outcome in outcomes:
        if t < confirm:
            assert outcome.status is CameraStatus.CALIBRATING and outcome.jpeg is None, t
            assert outcome.people is None
    assert outcomes[-1][1].ok


def test_a_light_change_starts_the_confirmation_again() -> None:
    anonymiser = Anonymiser(settings(background_confirm_s=10 * MIN))
    outcomes, _ = run_scene(anonymiser, [], 15 * MIN, 30.0)
    assert outcomes[-1][1].ok
    lamps = cv2.add(yard(), 70)
    statuses = [anonymiser.process(lamps, at=15 * MIN + 30 * i).status for i in range(1, 20)]
    assert statuses[0] is CameraStatus.LIGHT_CHANGE
    assert set(statuses[1:]) == {CameraStatus.CALIBRATING}  # 9.5 min: not yet again


def test_a_failing_check_of_the_background_publishes_nothing() -> None:
    class FailsOnBackground:
        def __init__(self) -> None:
            self.live: np.ndarray | None = None

        def detect(self, image: np.ndarray) -> np.ndarray:
            if image is not self.live:
                raise RuntimeError("model crashed on the background")
            return np.zeros((0, 5), np.float32)

    detector = FailsOnBackground()
    anonymiser = Anonymiser(settings(background_confirm_s=5 * MIN), persons=detector)
    for i in range(30):
        frame = yard()
        detector.live = frame
        outcome = anonymiser.process(frame, at=30.0 * i)
        assert outcome.jpeg is None and outcome.status in (
            CameraStatus.CALIBRATING,
            CameraStatus.ERROR,
        )
    assert outcome.status is CameraStatus.ERROR


# -- with the learned detectors -----------------------------------------------


def test_with_the_learned_detectors_a_person_they_never_find_is_never_published() -> None:
    """The shipped detectors and settings; the checkerboard people are nothing they
    know, so this is the worst case: missed in every frame, for an hour, still."""
    anonymiser = Anonymiser(AnonymiserConfig(mode=Mode.BACKGROUND))
    assert anonymiser.persons is not None and anonymiser.faces is not None
    people = [
        person(STANDING, 0.0, HOUR, walks_in=False, spot=(30, 60)),
        person(CROUCHING, 80 * MIN, 100 * MIN, spot=(150, 110)),
    ]
    outcomes, worst = run_scene(anonymiser, people, 105 * MIN, 60.0)
    assert worst == 0
    assert len(published(outcomes)) >= 25


def test_with_the_learned_detectors_a_real_person_standing_still_is_never_published() -> None:
    """A photographed person (NASA's public-domain portrait, shipped with
    scikit-image) stands still from the first frame for an hour."""
    skimage_data = pytest.importorskip("skimage.data")
    portrait = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    portrait = cv2.resize(portrait, (96, 96), interpolation=cv2.INTER_AREA)
    someone = Stayer(portrait, np.ones((96, 96), bool), (120, 40), 0.0, HOUR)
    anonymiser = Anonymiser(AnonymiserConfig(mode=Mode.BACKGROUND))
    outcomes, worst = run_scene(anonymiser, [someone], 80 * MIN, 60.0)
    assert worst == 0
    assert published(outcomes)


def test_the_measure_sees_a_person_learned_into_the_background() -> None:
    """Sanity of the measure itself: without the confirmation time, the same
    scene publishes the person (so the measure can see a leak)."""
    anonymiser = Anonymiser(settings(background_confirm_s=0.0))
    someone = person(STANDING, 0.0, HOUR, walks_in=False)
    _, worst = run_scene(anonymiser, [someone], 10 * MIN, 20.0)
    assert worst > 500
