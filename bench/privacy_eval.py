"""Privacy recall and utility of the camera anonymiser, on photographs with person masks.

DATASET holds ``images/*.jpg`` and ``person-masks/*.png`` (255 = person), as
``../shared/data/people-dev`` does.

Stills (default): every photograph goes through the signals a single picture
has (person detector on the whole picture and on tiles, face detector, each
box widened by the margin). Privacy recall = hidden person pixels / all person
pixels; utility = untouched non-person pixels / all non-person pixels. In
``pixelate`` and ``fill`` mode a pixel is hidden exactly when it is masked, so
both modes have the same figures; ``background`` mode needs a fixed camera and
is measured with ``--scene``. Also printed: images with people whose own recall
is below 0.5, the worst image, and ms per image.
Goals: recall >= 0.98, utility >= 0.75, at most 2 images below 0.5.

Scene (``--scene``): a fixed-camera sequence made from the same material.
People are cut out with their masks and composited onto a people-free
photograph of the set (960x540), walking and standing still, 30 px to full
height, several at once; one frame every ``analyse_every_s`` (2 s) of scene
time. Each published frame is compared with the frame it came from: a person
pixel is hidden when it was replaced (pixelate, fill) or drawn (background
mode's markers) or the published pixel differs from it by more than TOL (a
person pixel that already looks like the background is left out), a
non-person pixel is kept when it differs by at most TOL. Goals: recall >=
0.999, utility >= 0.8.

``--flip`` and ``--scale F`` run the stills on mirrored or scaled copies: the
same people in other pixels, a check against reading too much into one set.

Usage:
    .venv/bin/python bench/privacy_eval.py ../shared/data/people-dev [--flip] [--scale 0.75]
    .venv/bin/python bench/privacy_eval.py ../shared/data/people-dev --scene [--frames 150]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.anonymise import Anonymiser
from edge.camera_config import AnonymiserConfig, Mode

TOL = 30
ACTORS = 10
SCENE_W, SCENE_H = 960, 540


def pairs(dataset: Path) -> list[tuple[Path, Path]]:
    out = []
    for image in sorted((dataset / "images").glob("*.jpg")):
        mask = dataset / "person-masks" / (image.stem + ".png")
        if mask.exists():
            out.append((image, mask))
    if not out:
        raise SystemExit(f"{dataset}: no images/*.jpg with person-masks/*.png")
    return out


def variant(image: np.ndarray, person: np.ndarray, flip: bool, scale: float) -> tuple:
    """The same photograph mirrored and/or scaled, for a check that the figures
    do not hang on the exact pixels of the set."""
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
        person = cv2.resize(
            person.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    if flip:
        image, person = cv2.flip(image, 1), cv2.flip(person.astype(np.uint8), 1).astype(bool)
    return image, person


def stills(dataset: Path, flip: bool = False, scale: float = 1.0) -> bool:
    anonymiser = Anonymiser(AnonymiserConfig(mode=Mode.PIXELATE))
    hidden = total = kept = free = 0
    low: list[tuple[float, str]] = []
    per_image: list[tuple[float, str]] = []
    elapsed = 0.0
    items = pairs(dataset)
    for image_path, mask_path in items:
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        person = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        image, person = variant(image, person, flip, scale)
        started = time.perf_counter()
        mask = anonymiser.still_mask(image)
        elapsed += time.perf_counter() - started
        hidden += int((mask & person).sum())
        total += int(person.sum())
        kept += int((~mask & ~person).sum())
        free += int((~person).sum())
        if person.any():
            recall = float((mask & person).sum() / person.sum())
            per_image.append((recall, image_path.name))
            if recall < 0.5:
                low.append((recall, image_path.name))
    recall, utility = hidden / total, kept / free
    worst = min(per_image) if per_image else (1.0, "-")
    changed = ", mirrored" * flip + f", scaled {scale:g}x" * (scale != 1.0)
    print(f"stills: {len(items)} images, {len(per_image)} with people{changed}")
    for mode in (Mode.PIXELATE, Mode.FILL):
        print(f"  {mode.value:9s} recall {recall:.4f}  utility {utility:.4f}")
    print(f"  images below 0.5 recall: {len(low)}  {', '.join(n for _, n in sorted(low))}")
    print(f"  worst image: {worst[1]} ({worst[0]:.3f})")
    print(f"  {1000 * elapsed / len(items):.0f} ms per image (detectors, CPU)")
    ok = recall >= 0.98 and utility >= 0.75 and len(low) <= 2
    print(f"  goals recall >= 0.98, utility >= 0.75, <= 2 below 0.5: {'met' if ok else 'NOT met'}")
    return ok


@dataclass
class Cutout:
    rgb: np.ndarray
    alpha: np.ndarray


@dataclass
class Actor:
    cutout: Cutout
    height: int
    start: tuple[float, float]
    velocity: tuple[float, float]
    enter: int
    leave: int
    stop_from: int
    stop_to: int

    def place(self, frame: int) -> tuple[int, int] | None:
        if not self.enter <= frame < self.leave:
            return None
        moving = min(frame, self.stop_from) - self.enter + max(0, frame - self.stop_to)
        return (
            round(self.start[0] + self.velocity[0] * moving),
            round(self.start[1] + self.velocity[1] * moving),
        )


def cutouts(items: list[tuple[Path, Path]]) -> list[Cutout]:
    found = []
    for image_path, mask_path in items:
        person = (cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(person)
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            if h >= 80 and area >= 1500 and h > w:
                alpha = (labels[y : y + h, x : x + w] == label).astype(np.uint8)
                found.append(Cutout(image[y : y + h, x : x + w].copy(), alpha))
    return found


def make_scene(dataset: Path, frames: int, seed: int) -> tuple[np.ndarray, list[Actor]]:
    items = pairs(dataset)
    empty = [i for i, m in items if not (cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) > 127).any()]
    rng = np.random.default_rng(seed)
    background = cv2.imread(str(empty[int(rng.integers(len(empty)))]), cv2.IMREAD_COLOR)
    background = cv2.resize(background, (SCENE_W, SCENE_H), interpolation=cv2.INTER_AREA)
    people = cutouts(items)
    actors = []
    heights = np.geomspace(30, SCENE_H, 10).round().astype(int)
    for index in range(ACTORS):
        cutout = people[int(rng.integers(len(people)))]
        height = int(heights[index % len(heights)])
        enter = int(rng.integers(0, max(1, frames - 20)))
        stay = int(rng.integers(15, 60))
        stop_from = enter + int(rng.integers(3, 15))
        speed = max(2.0, height / 12)
        direction = 1 if rng.random() < 0.5 else -1
        x0 = float(rng.integers(0, SCENE_W - 20))
        y0 = float(rng.integers(0, max(1, SCENE_H - height)))
        actors.append(
            Actor(
                cutout,
                height,
                (x0, y0),
                (direction * speed, float(rng.normal(0, 1))),
                enter,
                enter + stay,
                stop_from,
                stop_from + int(rng.integers(5, 25)),
            )
        )
    return background, actors


def composite(background: np.ndarray, actors: list[Actor], frame: int) -> tuple:
    image = background.copy()
    person = np.zeros(background.shape[:2], bool)
    for actor in actors:
        where = actor.place(frame)
        if where is None:
            continue
        c = actor.cutout
        h = actor.height
        w = max(1, round(c.rgb.shape[1] * h / c.rgb.shape[0]))
        rgb = cv2.resize(c.rgb, (w, h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(c.alpha, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        x, y = where
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(SCENE_W, x + w), min(SCENE_H, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        image[y0:y1, x0:x1][a] = rgb[y0 - y : y1 - y, x0 - x : x1 - x][a]
        person[y0:y1, x0:x1] |= a
    return image, person


def scene(dataset: Path, frames: int, seed: int, modes: list[Mode]) -> bool:
    background, actors = make_scene(dataset, frames, seed)
    print(
        f"scene: {frames} frames of {SCENE_W}x{SCENE_H}, {len(actors)} people "
        f"(30-{SCENE_H} px tall), seed {seed}"
    )
    every_met = True
    for mode in modes:
        clock = [0.0]
        anonymiser = Anonymiser(AnonymiserConfig(mode=mode), clock=lambda c=clock: c[0])
        hidden = total = kept = free = published = 0
        frame_recalls = []
        elapsed = 0.0
        statuses: dict[str, int] = {}
        for index in range(frames):
            clock[0] += 2.0
            image, person = composite(background, actors, index)
            started = time.perf_counter()
            outcome = anonymiser.process(image)
            elapsed += time.perf_counter() - started
            statuses[outcome.status.value] = statuses.get(outcome.status.value, 0) + 1
            if not outcome.ok:
                continue
            assert outcome.jpeg is not None
            published += 1
            shown = cv2.imdecode(np.frombuffer(outcome.jpeg, np.uint8), cv2.IMREAD_COLOR)
            diff = np.abs(shown.astype(int) - image.astype(int)).max(axis=2)
            distinct = np.abs(image.astype(int) - background.astype(int)).max(axis=2) > TOL
            people = person & distinct
            # Replaced or drawn pixels carry nothing of the frame, even where a flat
            # colour happens to resemble it (a white shirt under a marker's outline).
            drawn = anonymiser.last_drawn if mode is Mode.BACKGROUND else anonymiser.last_mask
            assert drawn is not None
            frame_hidden = int((people & ((diff > TOL) | drawn)).sum())
            hidden += frame_hidden
            total += int(people.sum())
            if people.any():
                frame_recalls.append(frame_hidden / people.sum())
            kept += int((~person & (diff <= TOL)).sum())
            free += int((~person).sum())
        recall = hidden / total if total else 1.0
        utility = kept / free if free else 0.0
        worst = min(frame_recalls) if frame_recalls else 1.0
        ok = recall >= 0.999 and utility >= 0.8
        print(
            f"  {mode.value:10s} recall {recall:.4f}  utility {utility:.4f}  worst frame "
            f"{worst:.3f}  published {published}/{frames}  {1000 * elapsed / frames:.0f} ms/frame"
            f"  {'met' if ok else 'NOT met'}"
        )
        print(f"             statuses {statuses}")
        every_met = every_met and ok
    return every_met


def main() -> int:
    """0 when every goal of the evaluation run is met, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, nargs="?", help="folder with images/, person-masks/")
    parser.add_argument("--dataset", dest="dataset_option", type=Path, help="the same, by name")
    parser.add_argument("--scene", action="store_true", help="a fixed-camera sequence")
    parser.add_argument("--flip", action="store_true", help="stills: mirror every photograph")
    parser.add_argument("--scale", type=float, default=1.0, help="stills: scale every photograph")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--modes", default="background,pixelate", help="for --scene: background,pixelate,fill"
    )
    args = parser.parse_args()
    args.dataset = args.dataset_option or args.dataset
    if args.dataset is None:
        parser.error("give the dataset folder (DIR or --dataset DIR)")
    if args.scene:
        met = scene(args.dataset, args.frames, args.seed, [Mode(m) for m in args.modes.split(",")])
    else:
        if not 0.1 <= args.scale <= 4:
            parser.error("--scale must be between 0.1 and 4")
        met = stills(args.dataset, args.flip, args.scale)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
