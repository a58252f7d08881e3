"""Crowds and closer looks: many small people are hidden as one region.

The grouping is checked on boxes laid out here by hand; the pipeline test pastes
NASA's public-domain portrait of the astronaut Eileen Collins (shipped in
scikit-image's wheel as ``skimage.data.astronaut``), shrunk to 22 px, sixty times
into a block like a stand of spectators, runs the shipped detectors and checks
the JPEG the anonymiser publishes. At that size the detector alone misses some
of them; the crowd region is what hides them all.
"""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edge.anonymise import Anonymiser  # noqa: E402
from edge.camera_config import AnonymiserConfig, Mode  # noqa: E402
from edge.detectors import crowd_regions  # noqa: E402
from ruuhka.contract import CameraStatus  # noqa: E402

W, H = 640, 360


def people(xs: list[float], y: float, height: float = 30.0, score: float = 0.6) -> np.ndarray:
    """Boxes of people ``height`` tall and half as wide, their left sides at ``xs``."""
    return np.array([[x, y, x + height / 2, y + height, score] for x in xs], np.float32)


def covered(regions: list[np.ndarray], point: tuple[float, float]) -> bool:
    return any(cv2.pointPolygonTest(r.astype(np.float32), point, False) >= 0 for r in regions)


def test_people_close_together_become_one_region_that_covers_the_gaps() -> None:
    row = people([100, 125, 150, 175, 200], 150)  # 10 px between 15 px wide people
    regions = crowd_regions(row, W, H)
    assert len(regions) == 1
    assert covered(regions, (120.0, 165.0))  # between two people: a person missed there
    assert covered(regions, (95.0, 165.0))  # beside the row, within half a height
    assert not covered(regions, (60.0, 165.0))  # well away from it
    assert not covered(regions, (150.0, 120.0))  # above it, beyond half a height


def test_too_few_people_or_people_far_apart_make_no_crowd() -> None:
    assert crowd_regions(people([100, 125, 150], 150), W, H) == []
    assert crowd_regions(people([100, 125, 150, 175], 150), W, H, min_people=0) == []
    assert crowd_regions(people([20, 170, 320, 470], 150), W, H) == []  # 5 heights apart
    column = np.concatenate([people([100], y) for y in (20, 120, 220, 320)])
    assert crowd_regions(column, W, H) == []  # one above the other, far apart
    # Neighbours are at most half a height apart: 12 px gaps are, 22 px gaps are not.
    assert len(crowd_regions(people([100, 127, 154, 181], 150), W, H)) == 1
    assert crowd_regions(people([100, 137, 174, 211], 150), W, H) == []


def test_one_person_seen_many_times_is_one_person() -> None:
    """Tiles and closer looks report the same person again and again."""
    repeated = np.concatenate([people([100 + d, 125 + d, 150 + d], 150) for d in (0, 1, 2, 3)])
    assert crowd_regions(repeated, W, H) == []


def test_only_small_people_of_a_similar_size_form_a_crowd() -> None:
    tall = people([100, 160, 220, 280], 100, height=120)  # a third of the picture each
    assert crowd_regions(tall, W, H) == []
    assert len(crowd_regions(tall, W, H, max_height=0.4)) == 1
    # 20 and 50 px tall, 5 px apart: near and far people are not one crowd.
    mixed = np.concatenate([people([100, 150], 150, height=20), people([115, 165], 130, height=50)])
    assert crowd_regions(mixed, W, H) == []
    assert len(crowd_regions(mixed[2:], W, H, min_people=2)) == 1  # the two 50 px ones are


def test_two_groups_are_two_regions_and_a_lone_person_is_left_alone() -> None:
    boxes = np.concatenate(
        [people([50, 75, 100, 125], 150), people([400, 425, 450, 475], 150), people([260], 300)]
    )
    regions = crowd_regions(boxes, W, H)
    assert len(regions) == 2
    assert not covered(regions, (268.0, 315.0))


def test_a_crowd_near_the_picture_edge_reaches_the_edge() -> None:
    """A stand cut by the picture edge goes on beyond it: the region is pushed out."""
    near_top = crowd_regions(people([100, 125, 150, 175], 20), W, H)
    assert near_top and min(int(r[:, 0, 1].min()) for r in near_top) == 0
    near_left = crowd_regions(people([20, 45, 70, 95], 150), W, H)
    assert near_left and min(int(r[:, 0, 0].min()) for r in near_left) == 0
    near_right = crowd_regions(people([525, 550, 575, 600], 150), W, H)
    assert near_right and max(int(r[:, 0, 0].max()) for r in near_right) == W
    middle = crowd_regions(people([100, 125, 150, 175], 150), W, H)
    assert min(int(r[:, 0, 1].min()) for r in middle) > 0


def test_a_closer_look_takes_a_small_box_at_a_lower_score_than_a_large_one() -> None:
    """In a closer look a box the candidate's size counts from look_small_threshold;
    a large box there needs look_threshold."""
    from edge.detectors import PersonDetector, Tile, _View

    class Fixed(PersonDetector):
        def _scores_and_boxes(self, images: list[np.ndarray]) -> list:
            boxes = np.array([[0.4, 0.4, 0.6, 0.7], [0.0, 0.0, 0.9, 0.9]])  # 0.3 and 0.9 tall
            return [(np.array([0.2, 0.2]), boxes) for _ in images]

    detector = Fixed(look_threshold=0.45, look_small_threshold=0.15, look_small=0.35)
    frame = np.zeros((H, W, 3), np.uint8)
    look = _View(Tile(0, 0, 100, 100), detector.look_threshold, detector.look_small_threshold)
    found, weak = detector._detect_views(frame, [look])
    assert np.concatenate(found)[:, :4].tolist() == [[40, 40, 60, 70]]
    assert weak[:, :4].tolist() == [[0, 0, 90, 90]]
    plain = _View(Tile(0, 0, 100, 100), 0.3, 0.3)  # a tile: one threshold for every size
    assert np.concatenate(detector._detect_views(frame, [plain])[0]).size == 0


# -- the real detectors on a stand of small people -----------------------------

SIDE, ROWS, COLUMNS, LEFT, TOP = 22, 5, 12, 200, 60


def stand() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A textured yard with sixty 22 px portraits packed in rows, and their boxes."""
    skimage_data = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(7)
    noise = rng.integers(70, 170, (H // 8, W // 8, 3), dtype=np.uint8)
    frame = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    portrait = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    small = cv2.resize(portrait, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    boxes = []
    for row in range(ROWS):
        for column in range(COLUMNS):
            x = LEFT + column * SIDE + (row % 2) * SIDE // 2
            y = TOP + row * SIDE
            frame[y : y + SIDE, x : x + SIDE] = small
            boxes.append((x, y, x + SIDE, y + SIDE))
    return frame, boxes


def texture(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def published(frame: np.ndarray, **settings: object) -> tuple[np.ndarray, float]:
    anonymiser = Anonymiser(AnonymiserConfig(calibration_frames=0, mode=Mode.PIXELATE, **settings))
    outcome = anonymiser.process(frame)
    assert outcome.status is CameraStatus.OK and outcome.jpeg is not None, outcome
    image = cv2.imdecode(np.frombuffer(outcome.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == frame.shape and outcome.masked_fraction is not None
    return image, outcome.masked_fraction


def shown(frame: np.ndarray, out: np.ndarray, boxes: list) -> list[tuple[int, int, int, int]]:
    """The portraits whose detail survives in the published picture."""
    return [box for box in boxes if texture(out, box) > 0.05 * texture(frame, box)]


def test_a_stand_of_small_people_is_hidden_in_the_published_picture() -> None:
    frame, boxes = stand()
    out, masked = published(frame)
    assert shown(frame, out, boxes) == []
    assert masked < 0.35  # the crowd, not the whole picture
    yard = (20, 200, 180, 340)  # below and left of the stand: must stay visible
    assert texture(out, yard) > 0.5 * texture(frame, yard)


def test_without_the_crowd_region_the_detector_alone_leaves_people_visible() -> None:
    """What the test above relies on: at this size the boxes alone miss some."""
    frame, boxes = stand()
    out, _ = published(frame, crowd_min_people=0)
    assert len(shown(frame, out, boxes)) >= 3
