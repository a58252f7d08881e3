"""The privacy evaluation scores what the anonymiser publishes, not what it meant to hide.

Everything runs through the real :class:`Anonymiser` on small synthetic pictures,
with the learned detectors off so that what is hidden is set by privacy polygons
(stills) or by nothing at all (a scene whose background learns everyone).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import privacy_eval as pe

from edge.camera_config import AnonymiserConfig, Mode

W, H = 256, 192
BLIND = {"person_detector": False, "face_detector": False, "calibration_frames": 0}


def textured(seed: int, low: int = 30, high: int = 225) -> np.ndarray:
    """A picture with detail at every scale, like a photograph."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(low, high, (H // 8, W // 8, 3), dtype=np.uint8)
    fine = rng.integers(-25, 25, (H, W, 3))
    big = np.kron(coarse, np.ones((8, 8, 1), np.uint8)).astype(int)
    return np.clip(big + fine, 0, 255).astype(np.uint8)


def person_mask() -> np.ndarray:
    person = np.zeros((H, W), bool)
    person[40:170, 100:150] = True
    return person


def publish_still(
    image: np.ndarray, person: np.ndarray, mode: Mode, **config: object
) -> pe.StillScore:
    """One photograph through Runs (the measured run and its checkered twin), scored."""
    runs = pe.Runs((mode,), AnonymiserConfig(**(BLIND | config)), probes=2)
    probes = [pe.checkered(image, person), pe.checkered(image, ~person)]
    outcome, twins, _ = runs.publish(image, probes, True)[mode]
    assert outcome.ok, outcome.detail
    quality = runs.main[mode].config.jpeg_quality
    probed = (pe.decode(twins[0]), pe.decode(twins[1]))
    return pe.score_still("x.jpg", image, person, [person], pe.decode(outcome), probed, quality)


# Privacy polygons as fractions: the whole person box, and its left half.
WHOLE = [(100 / W, 40 / H), (150 / W, 40 / H), (150 / W, 170 / H), (100 / W, 170 / H)]
LEFT = [(100 / W, 40 / H), (125 / W, 40 / H), (125 / W, 170 / H), (100 / W, 170 / H)]


@pytest.mark.parametrize("mode", [Mode.PIXELATE, Mode.FILL])
def test_a_person_the_published_picture_shows_is_not_hidden(mode: Mode) -> None:
    shown = publish_still(textured(1), person_mask(), mode)
    assert shown.recall is not None and shown.recall < 0.02
    assert shown.kept / shown.free > 0.97


@pytest.mark.parametrize("mode", [Mode.PIXELATE, Mode.FILL])
def test_a_person_under_a_polygon_is_hidden_and_the_rest_kept(mode: Mode) -> None:
    hidden = publish_still(textured(1), person_mask(), mode, privacy_polygons=[WHOLE])
    assert hidden.recall is not None and hidden.recall > 0.98
    assert hidden.kept / hidden.free > 0.95


def test_half_a_person_shown_scores_about_half() -> None:
    half = publish_still(textured(1), person_mask(), Mode.FILL, privacy_polygons=[LEFT])
    assert half.recall is not None and 0.4 < half.recall < 0.6


@pytest.mark.parametrize("mode", [Mode.PIXELATE, Mode.FILL])
def test_a_hidden_person_in_the_colour_of_the_fill_still_counts_as_hidden(mode: Mode) -> None:
    # Pixelate paints a region its mean, fill paints it grey: a person already of
    # that flat colour resembles the published pixels, but does not follow them.
    image = textured(2)
    person = person_mask()
    region = np.zeros((H, W), bool)
    region[40:171, 100:151] = True
    image[person] = 128
    image[region & ~person] = 128
    hidden = publish_still(image, person, mode, privacy_polygons=[WHOLE])
    assert hidden.recall is not None and hidden.recall > 0.98


@pytest.mark.parametrize("mode", [Mode.PIXELATE, Mode.FILL])
def test_a_dark_person_is_judged_like_a_bright_one(mode: Mode) -> None:
    # Near black the checker has little room; it must neither push a pixelated
    # block's mean (hidden) nor miss a person left as they are (shown).
    image = textured(1, 10, 70)
    person = person_mask()
    hidden = publish_still(image, person, mode, privacy_polygons=[WHOLE])
    shown = publish_still(image, person, mode)
    assert hidden.recall is not None and hidden.recall > 0.98
    assert shown.recall is not None and shown.recall < 0.05


def test_the_ground_truth_follows_a_smaller_published_picture() -> None:
    shown = publish_still(textured(1), person_mask(), Mode.FILL, max_width=128)
    hidden = publish_still(
        textured(1), person_mask(), Mode.FILL, max_width=128, privacy_polygons=[WHOLE]
    )
    assert shown.person == hidden.person == (130 // 2) * (50 // 2)
    assert shown.recall is not None and shown.recall < 0.05
    assert hidden.recall is not None and hidden.recall > 0.95


def test_a_picture_not_published_hides_everyone_and_keeps_nothing() -> None:
    dark = textured(1, 0, 20)
    runs = pe.Runs((Mode.FILL,), AnonymiserConfig(**BLIND))
    outcome, twins, _ = runs.publish(dark, [dark], True)[Mode.FILL]
    assert not outcome.ok and pe.decode(outcome) is None
    probed = (pe.decode(twins[0]), None)
    score = pe.score_still(
        "x.jpg", dark, person_mask(), [person_mask()], pe.decode(outcome), probed, 75
    )
    assert score.recall == 1.0 and score.kept == 0 and not score.published


def scores_for(recalls: list[float], worst_person: float = 1.0) -> list[pe.StillScore]:
    out = []
    for index, recall in enumerate(recalls):
        people = [(round(100 * recall), 100), (round(100 * worst_person), 100)]
        out.append(
            pe.StillScore(f"{index}.jpg", round(1000 * recall), 1000, 900, 1000, people, True, 0, 1)
        )
    return out


def test_the_stills_goals_count_images_below_half_and_below_nine_tenths() -> None:
    assert pe.still_row("v", Mode.FILL, scores_for([1.0] * 200 + [0.85] * 2)).met
    three = pe.still_row("v", Mode.FILL, scores_for([1.0] * 200 + [0.85] * 3))
    assert [goal for goal, ok in three.goals if not ok] == ["<= 2 images below 0.9"]
    one = pe.still_row("v", Mode.FILL, scores_for([1.0] * 500 + [0.4]))
    assert [goal for goal, ok in one.goals if not ok] == ["no image below 0.5"]


def test_the_worst_person_is_reported_even_when_the_totals_look_fine() -> None:
    row = pe.still_row("v", Mode.FILL, scores_for([1.0] * 10, worst_person=0.2))
    assert row.worst_person.startswith("0.200")
    assert row.recall == 1.0


def test_the_halves_split_the_set_by_name_and_cover_it(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "person-masks").mkdir()
    for index in range(12):
        (tmp_path / "images" / f"{index:03d}.jpg").write_bytes(b"")
        (tmp_path / "person-masks" / f"{index:03d}.png").write_bytes(b"")
    everything = pe.pairs(tmp_path)
    first, second = pe.pairs(tmp_path, 1), pe.pairs(tmp_path, 2)
    assert sorted(first + second) == everything and first and second
    assert not set(first) & set(second)
    assert first == pe.pairs(tmp_path, 1)


def test_each_person_box_is_a_person(tmp_path: Path) -> None:
    person = np.zeros((100, 200), bool)
    person[10:90, 20:60] = True
    person[10:90, 120:180] = True
    boxes = tmp_path / "x.txt"
    boxes.write_text("0 0.2 0.5 0.2 0.8\n5 0.75 0.5 0.1 0.2\n0 0.75 0.5 0.3 0.8\n")
    people = pe.people_in(person, boxes)
    assert [int(p.sum()) for p in people] == [40 * 80, 60 * 80]
    assert len(pe.people_in(person, tmp_path / "none.txt")) == 2


# -- the scene: a person the background learned, who then leaves ----------------

SCENE = {
    "person_detector": False,
    "face_detector": False,
    "foreground": False,
    "calibration_frames": 2,
    "min_seen": 1,
    "max_width": 256,
}


def run_scene(
    mode: Mode, stay: int, frames: int, actor: np.ndarray | None = None, **config: object
) -> list[tuple[int, pe.FrameScore]]:
    """A person stands still for ``stay`` frames and then leaves; every published
    frame is scored."""
    background = textured(3)
    person = person_mask()
    actor = textured(4, 0, 60) if actor is None else actor
    runs = pe.Runs((mode,), AnonymiserConfig(**(SCENE | config)))
    scorer = pe.SceneScorer(background, 75)
    out = []
    for index in range(frames):
        runs.clock[0] += 2.0
        image = background.copy()
        seen = {}
        if index < stay:
            image[person] = actor[person]
            seen = {0: person}
        where = person if seen else np.zeros((H, W), bool)
        outcome, twins, _ = runs.publish(image, [pe.checkered(image, where)], False)[mode]
        shown = pe.decode(outcome)
        if shown is not None:
            out.append((index, scorer.score(image, seen, shown, pe.decode(twins[0]))))
        scorer.remember(image, seen)
    return out


def stood_there(
    clothes: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, pe.SceneScorer]:
    """The frame with someone in ``clothes`` at ``mask`` (the person mask unless
    given), and a scorer of the textured scene that remembers them there."""
    mask = person_mask() if mask is None else mask
    there = textured(3)
    there[mask] = clothes[mask]
    scorer = pe.SceneScorer(textured(3), 75)
    scorer.remember(there, {0: mask})
    return there, scorer


def gone(scorer: pe.SceneScorer, published: np.ndarray, probed: np.ndarray | None) -> pe.FrameScore:
    """Nobody in the frame; the published picture (and its twin's) as given."""
    return scorer.score(textured(3), {}, published, probed)


def learned_ghost(clothes: np.ndarray, mask: np.ndarray | None = None) -> pe.FrameScore:
    """They left, and both runs publish what they learned of them: the person,
    and in the twin run the person with their checker."""
    mask = person_mask() if mask is None else mask
    there, scorer = stood_there(clothes, mask)
    learned = pe.as_published(there, (H, W), 75)
    return gone(scorer, learned, pe.as_published(pe.checkered(there, mask), (H, W), 75))


def ghost_left_behind() -> pe.FrameScore:
    """A published background that learned a person shows them after they have gone
    (what background mode did before it confirmed what it learns)."""
    there, scorer = stood_there(textured(4, 0, 60))
    return gone(scorer, pe.as_published(there, (H, W), 75), None)


def test_a_ghost_in_the_published_background_is_a_leak() -> None:
    left = ghost_left_behind()
    assert left.person == 0
    distinct = person_mask() & (pe.distance(textured(4, 0, 60), textured(3)) > pe.TOL)
    assert left.ghost > 0.8 * distinct.sum()
    assert left.recall is not None and left.recall < 0.1
    assert left.by_actor[0][1] == left.ghost


def test_a_ghost_that_carries_the_persons_checker_in_the_twin_run_is_a_leak() -> None:
    assert learned_ghost(textured(4, 0, 60)).ghost > 0.6 * person_mask().sum()


def test_grey_paint_where_the_twin_run_shows_the_background_is_no_ghost() -> None:
    # Someone in grey clothes left; one run still paints the spot grey, its twin
    # (whose checker changed what looked like the background) shows the background.
    there, scorer = stood_there(np.full((H, W, 3), 128, np.uint8))
    painted = pe.as_published(there, (H, W), 75)
    score = gone(scorer, painted, pe.as_published(textured(3), (H, W), 75))
    assert score.ghost < 0.05 * person_mask().sum()


def test_the_true_background_is_no_ghost() -> None:
    _, scorer = stood_there(textured(4, 0, 60))
    truth = gone(scorer, pe.as_published(textured(3), (H, W), 75), None)
    assert truth.ghost < 0.01 * person_mask().sum()


def test_scattered_pixels_that_match_an_earlier_person_are_no_ghost() -> None:
    # JPEG noise lets a pixel here and there of the background match someone who
    # stood there; one pixel in 16 of their spot is no person seen.
    there, scorer = stood_there(textured(4, 0, 60))
    learned = pe.as_published(there, (H, W), 75)
    speckled = pe.as_published(textured(3), (H, W), 75)
    speckled[::4, ::4] = learned[::4, ::4]
    assert gone(scorer, speckled, None).ghost < 0.01 * person_mask().sum()


def white_at(columns: slice) -> np.ndarray:
    """Clothes of middle tones, white in ``columns``."""
    clothes = textured(4, 60, 190)
    clothes[:, columns] = 252
    return clothes


def test_white_paint_where_someone_in_white_stood_is_no_ghost() -> None:
    # They left; a marker's white outline now runs along their white right edge.
    # White carries no checker, but the rest of them did, and it does not follow.
    _, scorer = stood_there(white_at(slice(148, 150)))
    painted = textured(3)
    painted[40:170, 148:150] = 252
    painted = pe.as_published(painted, (H, W), 75)
    assert gone(scorer, painted, painted.copy()).ghost < 0.2 * 2 * 130


def test_a_ghost_in_white_that_follows_like_the_rest_of_them_is_a_leak() -> None:
    assert learned_ghost(white_at(slice(140, 150))).ghost > 0.8 * person_mask().sum()


def test_someone_the_background_learned_is_no_ghost_when_they_go() -> None:
    # Nothing claims them (no detectors, no foreground), so standing for longer than
    # background_confirm_s they are learned; once they go, the live picture
    # contradicts what was learned there, and that part is hidden, not shown.
    scores = run_scene(Mode.BACKGROUND, 8, 12, background_confirm_s=5.0)
    assert [i for i, _ in scores if i >= 8] == [8, 9, 10, 11]
    assert all(score.ghost == 0 for i, score in scores if i >= 8)


@pytest.mark.parametrize("clothes", [(210, 255), (0, 45)], ids=["white", "black"])
def test_the_ghost_of_a_small_person_in_white_or_black_is_a_leak(
    clothes: tuple[int, int],
) -> None:
    # 30 px tall, legs 2 px wide: the checker they carried is weak and patchy, and
    # the background around them must not outweigh it.
    import cv2

    small = np.zeros((H, W), np.uint8)
    cv2.circle(small, (120, 43), 3, 1, -1)
    cv2.rectangle(small, (117, 47), (123, 57), 1, -1)
    cv2.line(small, (118, 58), (116, 70), 1, 2)
    cv2.line(small, (122, 58), (124, 70), 1, 2)
    mask = small.astype(bool)
    there = textured(3)
    there[mask] = textured(4, *clothes)[mask]
    distinct = mask & (pe.distance(there, textured(3)) > pe.TOL)
    assert learned_ghost(textured(4, *clothes), mask).ghost > 0.8 * distinct.sum()


def test_a_person_in_the_colour_of_the_scene_fill_counts_as_hidden() -> None:
    grey = np.full((H, W, 3), 128, np.uint8)
    scores = dict(run_scene(Mode.FILL, 6, 8, actor=grey, privacy_polygons=[WHOLE]))
    assert all(scores[i].recall is not None and scores[i].recall > 0.98 for i in range(2, 6))
    # After they leave, the grey polygon looks like them but shows nobody: no ghost.
    assert scores[6].ghost == scores[7].ghost == 0


def test_a_published_true_background_hides_a_person_faintly_unlike_it() -> None:
    background = np.full((H, W, 3), 90, np.uint8)
    background[:, ::2] = 100
    image = background.copy()
    image[person_mask()] += 32
    scorer = pe.SceneScorer(background, 75)
    shown = pe.as_published(background, (H, W), 75)
    score = scorer.score(image, {0: person_mask()}, shown, None)
    assert score.recall is not None and score.recall > 0.95


def test_the_scene_row_takes_the_ghosts_into_recall_and_worst_frame() -> None:
    # Only frames after the person left: nobody to hide, and still a leak.
    result = pe.SceneResult(frames=[ghost_left_behind(), ghost_left_behind()], count=2)
    row = pe.scene_row(Mode.BACKGROUND, result)
    assert row.recall < 0.1
    assert row.worst.startswith("0.0")
    assert not row.met


def test_the_background_scene_starts_once_the_empty_yard_is_confirmed(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "images").mkdir()
    (tmp_path / "person-masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "0.jpg"), textured(3))
    cv2.imwrite(str(tmp_path / "person-masks" / "0.png"), np.zeros((H, W), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "1.jpg"), textured(4))
    person = np.zeros((H, W), np.uint8)
    person[20:180, 60:130] = 255
    cv2.imwrite(str(tmp_path / "person-masks" / "1.png"), person)
    results = pe.scene(tmp_path, 4, 1, (Mode.BACKGROUND,), AnonymiserConfig(**BLIND))
    result = results[Mode.BACKGROUND]
    # Nothing is published until the yard has been empty for background_confirm_s...
    assert result.warm_up.get("calibrating", 0) >= 4200 // pe.WARM_UP_STEP_S
    assert result.warm_up.get("ok", 0) >= 1
    # ...and the scene's own frames are measured on a camera that publishes.
    assert result.statuses == {"ok": 4} and len(result.frames) == 4
