"""People who stay still for long, through background mode, judged on the published JPEG.

DATASET holds ``images/*.jpg`` and ``person-masks/*.png`` (255 = person), as
``../shared/data/people-dev`` does. People are cut out with their masks and
composited (``edge.yard_scene.Stayer``) onto a people-free photograph of the set
at 960x540: one standing from the first frame for an hour, then, after the
background is learned, one who walks in and washes for 15 minutes, one who
crouches or sits (a cutout wider than tall) for 30 minutes and one who stands
for an hour. Scene time moves ``--step`` seconds per analysed frame; the
anonymiser runs with its shipped settings and the learned detectors.

Every figure is computed as ``privacy_eval``'s scene computes it, from the
published JPEG: a person pixel is hidden unless the published pixel resembles
it, is closer to it than to the empty set and follows a checker put on the
people in a twin run; a published pixel showing someone who has left (a ghost)
is a leak. Printed: recall, utility (of the pictures published), the worst
frame and person, ghost pixels, the pictures not published and the statuses.
Goals as for the scene: recall >= 0.9995, worst frame >= 0.98, utility >= 0.8.

Usage:
    .venv/bin/python bench/long_scene.py ../shared/data/people-dev [--step 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import privacy_eval as pe

from edge.camera_config import AnonymiserConfig, Mode
from edge.yard_scene import Stayer, compose

SCENE_W, SCENE_H = 960, 540
MIN = 60.0


def material(dataset: Path) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """People-free photographs, and every sizeable person cut out with its mask."""
    empty, people = [], []
    for image_path in sorted((dataset / "images").glob("*.jpg")):
        mask_path = dataset / "person-masks" / (image_path.stem + ".png")
        if not mask_path.exists():
            continue
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        mask = (cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
        if not mask.any():
            empty.append(image)
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            if h >= 80 and area >= 1500:
                alpha = labels[y : y + h, x : x + w] == label
                people.append((image[y : y + h, x : x + w].copy(), alpha))
    if not empty or not people:
        raise SystemExit(f"{dataset}: needs people-free photographs and people with masks")
    return empty, people


def sized(cutout: tuple[np.ndarray, np.ndarray], height: int) -> tuple[np.ndarray, np.ndarray]:
    sprite, alpha = cutout
    width = max(1, round(sprite.shape[1] * height / sprite.shape[0]))
    return (
        cv2.resize(sprite, (width, height), interpolation=cv2.INTER_AREA),
        cv2.resize(alpha.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(
            bool
        ),
    )


def make_scene(dataset: Path, seed: int) -> tuple[np.ndarray, list[Stayer], float]:
    """The set, the people who stay, and how long the scene runs (scene seconds)."""
    empty, people = material(dataset)
    rng = np.random.default_rng(seed)
    background = empty[int(rng.integers(len(empty)))]
    background = cv2.resize(background, (SCENE_W, SCENE_H), interpolation=cv2.INTER_AREA)
    upright = [c for c in people if c[0].shape[0] > 1.3 * c[0].shape[1]]
    low = [c for c in people if c[0].shape[0] <= 1.3 * c[0].shape[1]] or upright

    def pick(pool: list, height: int) -> tuple[np.ndarray, np.ndarray]:
        return sized(pool[int(rng.integers(len(pool)))], height)

    learned = AnonymiserConfig().background_confirm_s
    later = learned + 10 * MIN
    stayers = []
    for pool, height, spot, arrive, stay, walks in (
        (upright, 220, (80, 260), 0.0, 60 * MIN, False),
        (upright, 160, (380, 300), later, 15 * MIN, True),
        (low, 110, (560, 380), later + 5 * MIN, 30 * MIN, True),
        (upright, 90, (760, 200), later + 10 * MIN, 60 * MIN, True),
    ):
        sprite, alpha = pick(pool, height)
        start = (SCENE_W + 10, spot[1]) if walks else None
        stayers.append(Stayer(sprite, alpha, spot, arrive, arrive + stay, start, walk_s=2 * MIN))
    return background, stayers, later + 75 * MIN


def run(dataset: Path, step: float, seed: int) -> bool:
    background, stayers, until = make_scene(dataset, seed)
    runs = pe.Runs((Mode.BACKGROUND,), AnonymiserConfig(mode=Mode.BACKGROUND))
    scorer = pe.SceneScorer(background, runs.main[Mode.BACKGROUND].config.jpeg_quality)
    result = pe.SceneResult()
    frames = int(until // step) + 1
    print(
        f"long scene: {frames} frames of {SCENE_W}x{SCENE_H}, {step:g} s apart "
        f"({until / 3600:.1f} h), {len(stayers)} people staying 15-60 min, seed {seed}"
    )
    for index in range(frames):
        runs.clock[0] = index * step
        image, person = compose(background, stayers, runs.clock[0])
        seen = {i: compose(background, [s], runs.clock[0])[1] for i, s in enumerate(stayers)}
        seen = {i: mask for i, mask in seen.items() if mask.any()}
        published = runs.publish(image, [pe.checkered(image, person)], fresh=False)
        outcome, twins, seconds = published[Mode.BACKGROUND]
        result.statuses[outcome.status.value] = result.statuses.get(outcome.status.value, 0) + 1
        result.seconds += seconds
        result.count += 1
        shown = pe.decode(outcome)
        if shown is not None:
            result.frames.append(scorer.score(image, seen, shown, pe.decode(twins[0])))
        scorer.remember(image, seen)
    row = pe.scene_row(Mode.BACKGROUND, result)
    row.variant = f"long scene, {step:g} s"
    pe.print_table([row])
    pe.print_misses([row])
    print(f"  statuses {result.statuses}")
    return row.met


def main() -> int:
    """0 when every goal is met, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="folder with images/, person-masks/")
    parser.add_argument("--step", type=float, default=20.0, help="scene seconds per frame")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.step <= 120:
        parser.error("--step must be between 1 and 120 seconds")
    return 0 if run(args.dataset, args.step, args.seed) else 1


if __name__ == "__main__":
    sys.exit(main())
