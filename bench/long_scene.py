"""People who stay still for long, through background mode, judged on the published JPEG.

DATASET holds ``images/*.jpg`` and ``person-masks/*.png`` (255 = person), as
``../shared/data/people-dev`` does. People are cut out with their masks and
composited (``edge.yard_scene.Stayer``) onto a people-free photograph of the set
at 960x540: one standing from the first frame for an hour, then, after the
background is learned, one who walks in and washes for 15 minutes, one who
crouches or sits (a cutout wider than tall) for 30 minutes and one who stands
for an hour. Scene time moves ``--step`` seconds per analysed frame; the
anonymiser runs with its shipped settings and the learned detectors.

Each published picture is decoded and compared with the frame it came from: a
person pixel that differs from the empty set by more than TOL is shown when the
published pixel is within TOL of it and was not painted (grey, a marker).
Printed: recall (hidden / all such person pixels), the worst frame, the
pictures published and the statuses. Goal: recall 1.0, worst frame 1.0.

Usage:
    .venv/bin/python bench/long_scene.py ../shared/data/people-dev [--step 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.anonymise import Anonymiser
from edge.camera_config import AnonymiserConfig, Mode
from edge.yard_scene import Stayer, compose

TOL = 30
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
    anonymiser = Anonymiser(AnonymiserConfig(mode=Mode.BACKGROUND))
    frames = int(until // step) + 1
    print(
        f"long scene: {frames} frames of {SCENE_W}x{SCENE_H}, {step:g} s apart "
        f"({until / 3600:.1f} h), {len(stayers)} people staying 15-60 min, seed {seed}"
    )
    hidden = total = published = 0
    worst = (1.0, 0.0)
    statuses: dict[str, int] = {}
    elapsed = 0.0
    for index in range(frames):
        t = index * step
        image, person = compose(background, stayers, t)
        started = time.perf_counter()
        outcome = anonymiser.process(image, at=t)
        elapsed += time.perf_counter() - started
        statuses[outcome.status.value] = statuses.get(outcome.status.value, 0) + 1
        if not outcome.ok:
            continue
        assert outcome.jpeg is not None and anonymiser.last_drawn is not None
        published += 1
        shown = cv2.imdecode(np.frombuffer(outcome.jpeg, np.uint8), cv2.IMREAD_COLOR)
        shown = cv2.resize(shown, (SCENE_W, SCENE_H), interpolation=cv2.INTER_LINEAR)
        close = np.abs(shown.astype(int) - image.astype(int)).max(axis=2) <= TOL
        distinct = np.abs(image.astype(int) - background.astype(int)).max(axis=2) > TOL
        people = person & distinct
        leaked = int((people & close & ~anonymiser.last_drawn).sum())
        hidden += int(people.sum()) - leaked
        total += int(people.sum())
        if people.any():
            worst = min(worst, (1 - leaked / people.sum(), t))
    recall = hidden / total if total else 1.0
    ok = recall == 1.0
    print(
        f"  background recall {recall:.5f}  worst frame {worst[0]:.4f}"
        + (f" at {worst[1] / MIN:.0f} min" if worst[0] < 1 else "")
        + f"  published {published}/{frames}  {1000 * elapsed / frames:.0f} ms/frame"
        f"  {'met' if ok else 'NOT met'}"
    )
    print(f"  statuses {statuses}")
    return ok


def main() -> int:
    """0 when no person pixel was published, 1 otherwise."""
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
