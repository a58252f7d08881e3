"""Privacy recall and utility of the camera anonymiser, measured on what it publishes.

DATASET holds ``images/*.jpg`` and ``person-masks/*.png`` (255 = person), and
optionally ``person-boxes/*.txt`` (YOLO boxes, class 0 = person, to tell the
people of a picture apart), as ``../shared/data/people-dev`` does.

Every figure comes from the JPEG that :meth:`Anonymiser.process` returns,
decoded, never from the anonymiser's own idea of what it hid. The ground truth
is brought to the published picture's size. A pixel of the published picture
*shows* what the camera saw there when both hold:

- it resembles it: the median, over a 5x5 window, of the largest channel
  difference to the camera's pixel, itself resized and JPEG-encoded at the
  published size and quality, is at most TOL (JPEG noise alone exceeds TOL at
  3 % of the pixels of a photograph; the window and the encoded reference keep
  it from passing for hiding);
- it follows it: the same input is published again with a checker added (CELL
  pixel checks, +-PROBE or as much as the pixel has room for without clipping,
  so a region's mean hardly moves; the detectors' boxes of the first run are
  replayed, so every run hides the same regions), and the published pixel moves
  by at least half the checker there. A flat fill or a pixelated block that
  happens to have the colour of the person under it (6-9 % of the hidden person
  pixels of people-dev) does not follow the person, so it does not show them; a
  pixel left unmasked does. A pixel within MIN_AMPLITUDE of black or white goes
  with the pixels around it that carry a checker.

Stills (default): each photograph alone (no motion, no hold, no calibration),
in ``pixelate`` and ``fill`` mode, one checker on the people and one on the
rest (so that a hidden person pixel blurred with the background next to it is
not taken to show the person). Recall = person pixels not shown / person
pixels; utility = non-person pixels shown /
non-person pixels. A picture the anonymiser refuses to publish hides everyone
and keeps nothing. Per person (the person mask inside each person box, people
of at least MIN_PERSON_PX published pixels): the worst person. Per image: those
below 0.5 and 0.9 recall, the worst. Goals: recall >= 0.995, utility >= 0.75,
no image below 0.5, at most 2 below 0.9.

Scene (``--scene``): a fixed-camera sequence made from the same material.
People are cut out with their masks and composited onto a people-free
photograph of the set (960x540), walking and standing still, 30 px to full
height, several at once; one frame every 2 s of scene time. In ``background``
mode the scene follows a warm-up of the empty yard (a frame every
WARM_UP_STEP_S until background_confirm_s has passed), so that it measures a
camera that has been running; the warm-up's statuses are printed. Person pixels that
look like the true background (within TOL) are left out. A person pixel is
hidden unless the published pixel shows it (above, the checker on the people
only) and is closer to it than to the true background. A ghost is a leak too:
where nobody is now, a published pixel that shows an earlier person's pixel
there (that pixel differing from the true background by more than TOL; the
published picture resembling that earlier frame there as it would have been
published, over the same window as above; the pixel closer to the person's than
to the background, both as published, and following their checker, a pixel too
near black or white for one going with the person's pixels around it) counts as
a person pixel not hidden, charged to that person and frame. Pixelate mode keeps no learned
picture, so its ghosts are the criterion's own false alarms.
Utility: non-person pixels that resemble the frame. Goals: recall >= 0.9995,
worst frame >= 0.98, utility >= 0.8.

Variants of the stills, to avoid reading too much into one set: ``--flip``
(mirrored), ``--scale F`` (the people smaller or larger), ``--light F`` (winter
light: gamma 1/F, then contrast (1 + F) / 2 about the mean), ``--jpeg-quality
Q`` (the camera's own compression: the input re-encoded at Q), ``--half 1|2``
(half of the set, by a hash of the file name). ``--all-variants`` runs every
one and the scene, and prints them side by side. Time: milliseconds of
``process()`` per frame, scaled by pixel count to a 1280x720 frame.
``--set NAME=VALUE`` measures an anonymiser setting other than the shipped one
(the value as JSON). Exit status 1 when a goal is missed.

Usage:
    .venv/bin/python bench/privacy_eval.py ../shared/data/people-dev [--flip] [--scale 0.75]
        [--light 0.5] [--jpeg-quality 40] [--half 1]
    .venv/bin/python bench/privacy_eval.py ../shared/data/people-dev --scene [--frames 150]
    .venv/bin/python bench/privacy_eval.py ../shared/data/people-dev --all-variants
    .venv/bin/python bench/privacy_eval.py ../shared/data/people-dev --set 'tile_sides=[320]'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.anonymise import Anonymiser, Detector, FailClosed, Outcome
from edge.camera_config import AnonymiserConfig, Mode
from ruuhka.contract import CameraStatus

TOL = 30
PROBE = 48
MIN_AMPLITUDE = 16
CELL = 8
WINDOW = 5
MIN_PERSON_PX = 64
FRAME_720P = 1280 * 720
ACTORS = 10
SCENE_W, SCENE_H = 960, 540
STILL_MODES = (Mode.PIXELATE, Mode.FILL)
SCENE_MODES = (Mode.BACKGROUND, Mode.PIXELATE)
WARM_UP_STEP_S = 300.0
WARM_UP_MARGIN_S = 600.0


# -- the data set -------------------------------------------------------------


def half_of(name: str) -> int:
    """1 or 2: a split of the set that does not depend on its order."""
    return 1 + hashlib.sha256(name.encode()).digest()[0] % 2


def pairs(dataset: Path, half: int | None = None) -> list[tuple[Path, Path]]:
    out = []
    for image in sorted((dataset / "images").glob("*.jpg")):
        mask = dataset / "person-masks" / (image.stem + ".png")
        if mask.exists() and (half is None or half_of(image.name) == half):
            out.append((image, mask))
    if not out:
        raise SystemExit(f"{dataset}: no images/*.jpg with person-masks/*.png")
    return out


def people_in(person: np.ndarray, boxes_file: Path) -> list[np.ndarray]:
    """One mask per person: the person mask inside each person box, or, without
    boxes, its connected parts."""
    height, width = person.shape
    found = []
    if boxes_file.exists():
        for line in boxes_file.read_text().splitlines():
            fields = line.split()
            if len(fields) != 5 or fields[0] != "0":
                continue
            cx, cy, w, h = (float(v) for v in fields[1:])
            x0, x1 = round((cx - w / 2) * width), round((cx + w / 2) * width)
            y0, y1 = round((cy - h / 2) * height), round((cy + h / 2) * height)
            one = np.zeros_like(person)
            one[max(0, y0) : y1, max(0, x0) : x1] = person[max(0, y0) : y1, max(0, x0) : x1]
            if one.any():
                found.append(one)
        return found
    count, labels = cv2.connectedComponents(person.astype(np.uint8))
    return [labels == label for label in range(1, count)]


# -- variants -------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """The same photographs changed in one way: other pixels, the same people."""

    name: str = "people-dev"
    flip: bool = False
    scale: float = 1.0
    light: float = 1.0
    jpeg_quality: int | None = None
    half: int | None = None

    def describe(self) -> str:
        return (
            ", mirrored" * self.flip
            + f", scaled {self.scale:g}x" * (self.scale != 1.0)
            + f", winter light {self.light:g}" * (self.light != 1.0)
            + (f", input JPEG quality {self.jpeg_quality}" if self.jpeg_quality else "")
            + (f", half {self.half}" if self.half else "")
        )

    def geometry(self, mask: np.ndarray) -> np.ndarray:
        if self.scale != 1.0:
            mask = cv2.resize(
                mask.astype(np.uint8),
                None,
                fx=self.scale,
                fy=self.scale,
                interpolation=cv2.INTER_NEAREST,
            ).astype(bool)
        return cv2.flip(mask.astype(np.uint8), 1).astype(bool) if self.flip else mask

    def picture(self, image: np.ndarray) -> np.ndarray:
        if self.scale != 1.0:
            interpolation = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_CUBIC
            image = cv2.resize(
                image, None, fx=self.scale, fy=self.scale, interpolation=interpolation
            )
        if self.flip:
            image = cv2.flip(image, 1)
        if self.light != 1.0:
            image = darker(image, self.light)
        if self.jpeg_quality:
            image = cv2.imdecode(encode(image, self.jpeg_quality), cv2.IMREAD_COLOR)
        return image


def darker(image: np.ndarray, factor: float) -> np.ndarray:
    """Low winter light: darker mid-tones (gamma 1/factor) and less contrast."""
    dim = 255.0 * (image.astype(np.float32) / 255.0) ** (1.0 / factor)
    mean = float(dim.mean())
    flat = mean + (1.0 + factor) / 2.0 * (dim - mean)
    return np.clip(flat, 0, 255).round().astype(np.uint8)


# -- what a published picture shows --------------------------------------------


def encode(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data


def decode(outcome: Outcome) -> np.ndarray | None:
    """The published picture, or None when nothing was published."""
    if not outcome.ok:
        return None
    assert outcome.jpeg is not None
    return cv2.imdecode(np.frombuffer(outcome.jpeg, np.uint8), cv2.IMREAD_COLOR)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The largest channel difference, per pixel."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)


def at_size(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == shape:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def mask_at_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A published pixel belongs to the mask when at least half of it does."""
    if mask.shape == shape:
        return mask
    return at_size(mask.astype(np.float32), shape) >= 0.5


def as_published(image: np.ndarray, shape: tuple[int, int], quality: int) -> np.ndarray:
    """The camera's picture as it would look published untouched: resized and encoded."""
    return cv2.imdecode(encode(at_size(image, shape), quality), cv2.IMREAD_COLOR)


def windowed(difference: np.ndarray) -> np.ndarray:
    return cv2.medianBlur(np.minimum(difference, 255).astype(np.uint8), WINDOW)


def resembles(published: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return windowed(distance(published, reference)) <= TOL


def amplitude(image: np.ndarray) -> np.ndarray:
    """How far each pixel can move both ways without clipping, at most PROBE."""
    values = image.astype(np.int16)
    room = np.minimum(values, 255 - values).min(axis=-1)
    return np.minimum(room, PROBE)


def follows(image: np.ndarray, published: np.ndarray, probed: np.ndarray | None) -> np.ndarray:
    """Where the published picture moved by at least half the checker added there.
    A pixel too near black or white to carry a checker goes with the pixels around
    it that do (a 9x9 window); with none of those, or when the checkered run
    published nothing, resemblance alone decides."""
    if probed is None:
        return np.ones(published.shape[:2], bool)
    room = amplitude(at_size(image, published.shape[:2]))
    ratio = 100 * distance(published, probed) // np.maximum(room, 1)
    carries = room >= MIN_AMPLITUDE
    return with_neighbours(carries, (windowed(ratio) >= 50) & carries)


def with_neighbours(
    carries: np.ndarray, moved: np.ndarray, border: int = cv2.BORDER_REFLECT_101
) -> np.ndarray:
    """``moved`` where a pixel carries a checker; elsewhere whether at least half of
    the pixels around it (9x9) that carry one moved, and true with none of those."""
    around = cv2.boxFilter(
        carries.astype(np.float32), -1, (9, 9), normalize=False, borderType=border
    )
    share = cv2.boxFilter(moved.astype(np.float32), -1, (9, 9), normalize=False, borderType=border)
    return np.where(carries, moved, (around == 0) | (share >= 0.5 * around))


def along_checker(
    published: np.ndarray, probed: np.ndarray, weight: np.ndarray, origin: tuple[int, int]
) -> np.ndarray:
    """Where the checkered run's picture moved in the checker's pattern, judged over
    the pixels ``weight`` marks (part of the picture, its corner at ``origin``).

    Where nobody is now, the checker was on the input only in earlier frames, so
    a published pixel there follows a person only if it carries their checker.
    The two runs can also differ there because their masks did (the checker
    changed what looked like the background): that moves a whole region one way.
    Over two checker periods (4 CELL square, 16 cells, so that a region's own
    texture seldom lines up with the checks by chance) the change times the
    checker's sign averages to the change itself for the first and to about
    nothing for the second; the pixel follows when it keeps at least half. Only
    the earlier person's own pixels count: theirs was the checker, and JPEG
    ringing in the background around would outweigh a small person's."""
    rows, cols = np.indices(published.shape[:2])
    rows, cols = rows + origin[0], cols + origin[1]
    sign = np.where((rows // CELL + cols // CELL) % 2 == 0, 1.0, -1.0).astype(np.float32)
    change = probed.astype(np.float32).mean(axis=2) - published.astype(np.float32).mean(axis=2)
    change *= weight
    window = (4 * CELL, 4 * CELL)
    signed = cv2.boxFilter(sign * change, -1, window, borderType=cv2.BORDER_CONSTANT)
    size = cv2.boxFilter(np.abs(change), -1, window, borderType=cv2.BORDER_CONSTANT)
    return signed >= 0.5 * np.maximum(size, 1e-6)


def checkered(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The image with CELL-pixel checks of +-amplitude at ``where``: symmetric and
    never clipped, so that the mean of a region hardly moves."""
    rows, cols = np.indices(image.shape[:2])
    sign = np.where((rows // CELL + cols // CELL) % 2 == 0, 1, -1)
    step = np.where(where, sign * amplitude(image), 0)[..., None]
    return (image.astype(np.int16) + step).astype(np.uint8)


# -- detectors run once, replayed for the other runs ---------------------------


class Recorder:
    """The real detector, keeping its latest answer and the time it took."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.last: np.ndarray | None = None
        self.seconds = 0.0

    def detect(self, image: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        self.last = self.detector.detect(image)
        self.seconds += time.perf_counter() - started
        return self.last.copy()


class Replay:
    """The recorder's latest answer: the other runs hide the regions the first found."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def detect(self, image: np.ndarray) -> np.ndarray:
        if self.recorder.last is None:
            raise FailClosed(CameraStatus.ERROR, "the measured run stopped before its detectors")
        return self.recorder.last.copy()


@dataclass
class Runs:
    """Per mode, the anonymiser that is measured and its twin that publishes the
    checkered input; only the first mode runs the detectors."""

    modes: tuple[Mode, ...]
    base: AnonymiserConfig = field(default_factory=AnonymiserConfig)
    probes: int = 1
    clock: list[float] = field(default_factory=lambda: [0.0])

    def __post_init__(self) -> None:
        self.main: dict[Mode, Anonymiser] = {}
        self.twins: dict[Mode, list[Anonymiser]] = {}
        self.recorders: list[Recorder] = []
        self.detector_seconds = 0.0
        for mode in self.modes:
            config = self.base.model_copy(update={"mode": mode})
            if not self.main:
                first = Anonymiser(config, clock=self.now)
                if first.persons is not None:
                    first.persons = self._record(first.persons)
                if first.faces is not None:
                    first.faces = self._record(first.faces)
                self.main[mode] = first
            else:
                self.main[mode] = self.replaying(config, first)
            self.twins[mode] = [self.replaying(config, first) for _ in range(self.probes)]

    def now(self) -> float:
        return self.clock[0]

    def _record(self, detector: Detector) -> Recorder:
        recorder = Recorder(detector)
        self.recorders.append(recorder)
        return recorder

    def replaying(self, config: AnonymiserConfig, first: Anonymiser) -> Anonymiser:
        """An anonymiser whose detectors answer as the first one's did."""
        lookup = {id(r): Replay(r) for r in self.recorders}
        persons = lookup.get(id(first.persons))
        faces = lookup.get(id(first.faces))
        return Anonymiser(config, persons=persons, faces=faces, clock=self.now)

    def publish(
        self, image: np.ndarray, probes: list[np.ndarray], fresh: bool
    ) -> dict[Mode, tuple[Outcome, list[Outcome], float]]:
        """Each mode's outcome, its twins' (one per checkered input), and the seconds
        the mode's own frame took (detectors included, whichever run called them)."""
        for recorder in self.recorders:
            recorder.last = None
        out = {}
        for mode in self.modes:
            before = sum(r.seconds for r in self.recorders)
            if fresh:
                self.main[mode].reset()
                for twin in self.twins[mode]:
                    twin.reset()
            started = time.perf_counter()
            outcome = self.main[mode].process(image)
            seconds = time.perf_counter() - started
            if mode is not self.modes[0]:
                seconds += self.detector_seconds
            else:
                self.detector_seconds = sum(r.seconds for r in self.recorders) - before
            twins = [t.process(p) for t, p in zip(self.twins[mode], probes, strict=True)]
            out[mode] = (outcome, twins, seconds)
        return out


# -- stills -------------------------------------------------------------------


@dataclass
class StillScore:
    name: str
    hidden: int
    person: int
    kept: int
    free: int
    people: list[tuple[int, int]]
    published: bool
    seconds: float
    pixels: int

    @property
    def recall(self) -> float | None:
        return self.hidden / self.person if self.person else None


def score_still(
    name: str,
    image: np.ndarray,
    person: np.ndarray,
    people: list[np.ndarray],
    published: np.ndarray | None,
    probed: tuple[np.ndarray | None, np.ndarray | None],
    quality: int,
) -> StillScore:
    """What one published photograph hides of its people and keeps of the rest."""
    if published is None:
        sizes = [(int(p.sum()), int(p.sum())) for p in people]
        total = int(person.sum())
        return StillScore(name, total, total, 0, int((~person).sum()), sizes, False, 0.0, 0)
    shape = published.shape[:2]
    person = mask_at_size(person, shape)
    alike = resembles(published, as_published(image, shape, quality))
    # The person's checker tells whether the person shows, the rest's whether the rest does.
    shown = alike & follows(image, published, probed[0])
    kept = alike & follows(image, published, probed[1])
    sizes = []
    for one in people:
        one = mask_at_size(one, shape)
        sizes.append((int((one & ~shown).sum()), int(one.sum())))
    return StillScore(
        name,
        hidden=int((person & ~shown).sum()),
        person=int(person.sum()),
        kept=int((~person & kept).sum()),
        free=int((~person).sum()),
        people=sizes,
        published=True,
        seconds=0.0,
        pixels=0,
    )


def stills(
    dataset: Path,
    variant: Variant,
    modes: tuple[Mode, ...] = STILL_MODES,
    limit: int = 0,
    base: AnonymiserConfig | None = None,
) -> dict[Mode, list[StillScore]]:
    """Each photograph alone through the whole path: no calibration, no history."""
    single = (base or AnonymiserConfig()).model_copy(update={"calibration_frames": 0})
    runs = Runs(modes, single, probes=2)
    scores: dict[Mode, list[StillScore]] = {mode: [] for mode in modes}
    items = pairs(dataset, variant.half)
    for image_path, mask_path in items[: limit or None]:
        original = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        person = variant.geometry(original)
        boxes = dataset / "person-boxes" / (image_path.stem + ".txt")
        people = [variant.geometry(p) for p in people_in(original, boxes)]
        image = variant.picture(cv2.imread(str(image_path), cv2.IMREAD_COLOR))
        probes = [checkered(image, person), checkered(image, ~person)]
        published = runs.publish(image, probes, fresh=True)
        for mode, (outcome, twins, seconds) in published.items():
            quality = runs.main[mode].config.jpeg_quality
            score = score_still(
                image_path.name,
                image,
                person,
                people,
                decode(outcome),
                (decode(twins[0]), decode(twins[1])),
                quality,
            )
            score.seconds, score.pixels = seconds, image.shape[0] * image.shape[1]
            scores[mode].append(score)
    return scores


@dataclass
class Row:
    """One line of the table: a variant in one mode."""

    variant: str
    mode: str
    recall: float
    utility: float
    below_half: list[str]
    below_09: list[str]
    worst_person: str
    worst: str
    unpublished: int
    ms_720p: float
    goals: list[tuple[str, bool]]

    @property
    def met(self) -> bool:
        return all(ok for _, ok in self.goals)


def still_row(variant: str, mode: Mode, scores: list[StillScore]) -> Row:
    hidden = sum(s.hidden for s in scores)
    person = sum(s.person for s in scores)
    recall = hidden / person if person else 1.0
    free = sum(s.free for s in scores)
    utility = sum(s.kept for s in scores) / free if free else 0.0
    with_people = [(s.recall, s.name) for s in scores if s.recall is not None]
    below_half = [n for r, n in sorted(with_people) if r < 0.5]
    below_09 = [n for r, n in sorted(with_people) if r < 0.9]
    persons = [(h / t, s.name, t) for s in scores for h, t in s.people if t >= MIN_PERSON_PX]
    worst_person = "-"
    if persons:
        r, name, size = min(persons)
        worst_person = f"{r:.3f} ({name}, {size} px)"
    worst = "-"
    if with_people:
        r, name = min(with_people)
        worst = f"{r:.3f} ({name})"
    timed = [s for s in scores if s.pixels]
    ms = 1000 * sum(s.seconds * FRAME_720P / s.pixels for s in timed) / max(1, len(timed))
    goals = [
        ("recall >= 0.995", recall >= 0.995),
        ("utility >= 0.75", utility >= 0.75),
        ("no image below 0.5", not below_half),
        ("<= 2 images below 0.9", len(below_09) <= 2),
    ]
    unpublished = sum(not s.published for s in scores)
    return Row(
        variant, mode.value, recall, utility, below_half, below_09, worst_person, worst,
        unpublished, ms, goals,
    )  # fmt: skip


# -- scene ---------------------------------------------------------------------


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


def composite(
    background: np.ndarray, actors: list[Actor], frame: int
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The frame and, per actor in it, the pixels where that actor is seen."""
    image = background.copy()
    seen: dict[int, np.ndarray] = {}
    for index, actor in enumerate(actors):
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
        mine = np.zeros(background.shape[:2], bool)
        mine[y0:y1, x0:x1] = a
        for other in seen.values():
            other &= ~mine
        seen[index] = mine
    return image, {i: m for i, m in seen.items() if m.any()}


@dataclass
class FrameScore:
    hidden: int
    person: int
    ghost: int
    kept: int
    free: int
    by_actor: dict[int, tuple[int, int]]

    @property
    def recall(self) -> float | None:
        exposed = self.person + self.ghost
        return self.hidden / exposed if exposed else None


@dataclass
class Trace:
    """One actor's pixels in one frame that differ from the true background (flat
    indices), as they would look published, and the part of the picture around them."""

    actor: int
    where: np.ndarray
    colours: np.ndarray
    room: np.ndarray
    rows: slice
    cols: slice
    local: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(
        cls,
        actor: int,
        where: np.ndarray,
        colours: np.ndarray,
        room: np.ndarray,
        shape: tuple[int, int],
    ) -> Trace:
        r, c = np.unravel_index(where, shape)
        half = WINDOW // 2
        rows = slice(max(0, int(r.min()) - half), min(shape[0], int(r.max()) + half + 1))
        cols = slice(max(0, int(c.min()) - half), min(shape[1], int(c.max()) + half + 1))
        return cls(actor, where, colours, room, rows, cols, (r - rows.start, c - cols.start))

    def resemblance(self, published: np.ndarray, scorer: SceneScorer) -> np.ndarray:
        """At each of the pixels, the windowed difference of the published picture to
        that frame as it would have been published (the actor on the background), as
        :func:`resembles` judges: one pixel that happens to match is no person."""
        reference = scorer.background_look[self.rows, self.cols].copy()
        reference[self.local] = self.colours
        return windowed(distance(published[self.rows, self.cols], reference))[self.local]

    def moved(self, published: np.ndarray, probed: np.ndarray) -> np.ndarray:
        """At each of the pixels, how far the checkered run moved it, where that is
        in the checker's pattern over the person's pixels (else 0)."""
        here, there = published[self.rows, self.cols], probed[self.rows, self.cols]
        mine = np.zeros(here.shape[:2], np.float32)
        mine[self.local] = 1.0
        along = along_checker(here, there, mine, (self.rows.start, self.cols.start))
        return (distance(here, there) * along)[self.local]

    def follows(self, moved: np.ndarray) -> np.ndarray:
        """Whether each pixel moved by half the person's checker. A pixel too near
        black or white to have carried one goes with the actor's pixels around it
        that did (a 9x9 window), as :func:`follows` decides for the people in view:
        paint that happens to be white (a marker's outline) where someone in white
        stood does not follow the rest of them."""
        carries = self.room >= MIN_AMPLITUDE
        moved_enough = carries & (2 * moved >= self.room)
        if carries.all():
            return moved_enough
        shape = (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)
        grids = np.zeros((2, *shape), bool)
        grids[0][self.local], grids[1][self.local] = carries, moved_enough
        return with_neighbours(grids[0], grids[1], cv2.BORDER_CONSTANT)[self.local]


class SceneScorer:
    """Scores published frames of one scene, remembering where everyone has been
    so that a person left behind in the published background counts as a leak."""

    def __init__(self, background: np.ndarray, quality: int) -> None:
        self.background = background
        self.quality = quality
        self.background_look = as_published(background, background.shape[:2], quality)
        self.history: list[Trace] = []
        self._known: set[bytes] = set()

    def remember(self, image: np.ndarray, seen: dict[int, np.ndarray]) -> None:
        """Each actor's pixels in this frame that differ from the true background, as
        they would look published (so that JPEG noise does not hide a ghost)."""
        distinct = distance(image, self.background) > TOL
        looks = as_published(image, image.shape[:2], self.quality).reshape(-1, 3)
        room = amplitude(image).reshape(-1)
        for actor, mask in seen.items():
            where = np.flatnonzero(mask & distinct)
            colours = looks[where]
            key = hashlib.sha256(where.tobytes() + colours.tobytes()).digest()
            if where.size and key not in self._known:
                self._known.add(key)
                self.history.append(Trace.of(actor, where, colours, room[where], mask.shape))

    def score(
        self,
        image: np.ndarray,
        seen: dict[int, np.ndarray],
        published: np.ndarray,
        probed: np.ndarray | None,
    ) -> FrameScore:
        shape = published.shape[:2]
        frame = at_size(image, shape)
        background = at_size(self.background, shape)
        distinct = distance(frame, background) > TOL
        moved = follows(image, published, probed)
        to_frame, to_background = distance(published, frame), distance(published, background)
        shows = (
            resembles(published, as_published(image, shape, self.quality))
            & (to_frame < to_background)
            & moved
        )
        person = np.zeros(shape, bool)
        by_actor: dict[int, tuple[int, int]] = {}
        for actor, mask in seen.items():
            mine = mask_at_size(mask, shape) & distinct
            person |= mask_at_size(mask, shape)
            by_actor[actor] = (int((mine & ~shows).sum()), int(mine.sum()))
        counted = person & distinct
        ghosts = self._ghosts(published, person, probed)
        for actor, count in ghosts.items():
            hidden, total = by_actor.get(actor, (0, 0))
            by_actor[actor] = (hidden, total + count)
        return FrameScore(
            hidden=int((counted & ~shows).sum()),
            person=int(counted.sum()),
            ghost=sum(ghosts.values()),
            kept=int(
                (~person & resembles(published, as_published(image, shape, self.quality))).sum()
            ),
            free=int((~person).sum()),
            by_actor=by_actor,
        )

    def _ghosts(
        self, published: np.ndarray, person: np.ndarray, probed: np.ndarray | None
    ) -> dict[int, int]:
        """Pixels where nobody is now that show someone who was there before, per actor
        (each pixel once); following means moving by half that person's checker, in
        the checker's own pattern (see :func:`along_checker`)."""
        if published.shape[:2] != self.background.shape[:2]:
            raise ValueError("the scene is published at its own size")
        flat = published.reshape(-1, 3)
        free = (~person).reshape(-1)
        back = self.background_look.reshape(-1, 3)
        taken = np.zeros(free.size, bool)
        out: dict[int, int] = {}
        for trace in self.history:
            where, colours = trace.where, trace.colours
            shown = flat[where]
            leak = free[where] & ~taken[where] & (trace.resemblance(published, self) <= TOL)
            leak &= distance(shown, colours) < distance(shown, back[where])
            if probed is not None and leak.any():
                leak &= trace.follows(trace.moved(published, probed))
            if leak.any():
                taken[where[leak]] = True
                out[trace.actor] = out.get(trace.actor, 0) + int(leak.sum())
        return out


@dataclass
class SceneResult:
    frames: list[FrameScore] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    count: int = 0
    warm_up: dict[str, int] = field(default_factory=dict)


def scene(
    dataset: Path,
    frames: int,
    seed: int,
    modes: tuple[Mode, ...] = SCENE_MODES,
    base: AnonymiserConfig | None = None,
) -> dict[Mode, SceneResult]:
    background, actors = make_scene(dataset, frames, seed)
    runs = Runs(modes, base or AnonymiserConfig())
    results = {mode: SceneResult() for mode in modes}
    scorers = {m: SceneScorer(background, runs.main[m].config.jpeg_quality) for m in modes}
    warm_up(runs, background, results)
    for index in range(frames):
        runs.clock[0] += 2.0
        image, seen = composite(background, actors, index)
        person = np.zeros(image.shape[:2], bool)
        for mask in seen.values():
            person |= mask
        published = runs.publish(image, [checkered(image, person)], fresh=False)
        for mode, (outcome, twins, seconds) in published.items():
            result = results[mode]
            result.statuses[outcome.status.value] = result.statuses.get(outcome.status.value, 0) + 1
            result.seconds += seconds
            result.count += 1
            shown = decode(outcome)
            if shown is not None:
                result.frames.append(scorers[mode].score(image, seen, shown, decode(twins[0])))
            scorers[mode].remember(image, seen)
    return results


def warm_up(runs: Runs, background: np.ndarray, results: dict[Mode, SceneResult]) -> None:
    """The empty yard until background mode has confirmed it, a frame every
    WARM_UP_STEP_S of scene time: the scene measures a camera that has been running,
    not one just switched on (which publishes nothing, see the long scene)."""
    if Mode.BACKGROUND not in runs.modes:
        return
    until = runs.main[Mode.BACKGROUND].config.background_confirm_s + WARM_UP_MARGIN_S
    while runs.clock[0] < until:
        runs.clock[0] += WARM_UP_STEP_S
        for mode, (outcome, _, _) in runs.publish(background, [background], fresh=False).items():
            seen = results[mode].warm_up
            seen[outcome.status.value] = seen.get(outcome.status.value, 0) + 1


def scene_row(mode: Mode, result: SceneResult) -> Row:
    frames = result.frames
    hidden = sum(f.hidden for f in frames)
    exposed = sum(f.person + f.ghost for f in frames)
    recall = hidden / exposed if exposed else 1.0
    free = sum(f.free for f in frames)
    utility = sum(f.kept for f in frames) / free if free else 0.0
    per_frame = [(f.recall, i) for i, f in enumerate(frames) if f.recall is not None]
    worst_frame = min(per_frame)[0] if per_frame else 1.0
    actors: dict[int, list[int]] = {}
    for f in frames:
        for actor, (h, t) in f.by_actor.items():
            actors.setdefault(actor, [0, 0])
            actors[actor][0] += h
            actors[actor][1] += t
    persons = [(h / t, a, t) for a, (h, t) in actors.items() if t]
    worst_person = "-"
    if persons:
        r, actor, size = min(persons)
        worst_person = f"{r:.4f} (person {actor}, {size} px)"
    ghosts = sum(f.ghost for f in frames)
    published = len(frames)
    ms = 1000 * result.seconds / max(1, result.count) * FRAME_720P / (SCENE_W * SCENE_H)
    goals = [
        ("recall >= 0.9995", recall >= 0.9995),
        ("worst frame >= 0.98", worst_frame >= 0.98),
        ("utility >= 0.8", utility >= 0.8),
    ]
    return Row(
        "scene", mode.value, recall, utility,
        [str(i) for r, i in per_frame if r < 0.5], [str(i) for r, i in per_frame if r < 0.9],
        worst_person, f"{worst_frame:.3f} (ghost px {ghosts})", result.count - published, ms, goals,
    )  # fmt: skip


# -- output --------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'variant':24s} {'mode':10s} {'recall':>7s} {'utility':>7s} {'<0.5':>4s} {'<0.9':>4s} "
        f"{'worst person':34s} {'worst image/frame':30s} {'unpub':>5s} {'ms/720p':>7s}  goals"
    )
    print(header)
    for r in rows:
        print(
            f"{r.variant:24s} {r.mode:10s} {r.recall:7.4f} {r.utility:7.4f} "
            f"{len(r.below_half):4d} {len(r.below_09):4d} {r.worst_person:34s} {r.worst:30s} "
            f"{r.unpublished:5d} {r.ms_720p:7.0f}  {'met' if r.met else 'NOT met'}"
        )


def print_misses(rows: list[Row]) -> None:
    for r in rows:
        missed = [goal for goal, ok in r.goals if not ok]
        if missed:
            print(f"  {r.variant} {r.mode}: missed {'; '.join(missed)}")
        if r.below_half and r.variant != "scene":
            print(f"  {r.variant} {r.mode}: below 0.5: {', '.join(r.below_half)}")


def still_rows(
    dataset: Path, variant: Variant, limit: int, base: AnonymiserConfig | None = None
) -> list[Row]:
    scores = stills(dataset, variant, limit=limit, base=base)
    count = len(next(iter(scores.values())))
    with_people = sum(s.person > 0 for s in next(iter(scores.values())))
    print(f"stills: {count} images, {with_people} with people{variant.describe()}")
    return [still_row(variant.name, mode, s) for mode, s in scores.items()]


def all_variants(
    dataset: Path, frames: int, seed: int, limit: int, base: AnonymiserConfig | None = None
) -> list[Row]:
    """Every variant of the stills (the halves cut from the plain run) and the scene."""
    rows: list[Row] = []
    plain = stills(dataset, Variant(), limit=limit, base=base)
    for mode, scores in plain.items():
        rows.append(still_row("people-dev", mode, scores))
    for half in (1, 2):
        for mode, scores in plain.items():
            mine = [s for s in scores if half_of(s.name) == half]
            rows.append(still_row(f"--half {half}", mode, mine))
    for name, variant in (
        ("--flip", Variant(flip=True)),
        ("--scale 0.75", Variant(scale=0.75)),
        ("--scale 0.5", Variant(scale=0.5)),
        ("--light 0.5", Variant(light=0.5)),
        ("--jpeg-quality 40", Variant(jpeg_quality=40)),
    ):
        for mode, scores in stills(dataset, variant, limit=limit, base=base).items():
            rows.append(still_row(name, mode, scores))
    for mode, result in scene(dataset, frames, seed, base=base).items():
        rows.append(scene_row(mode, result))
    return rows


def setting(text: str) -> tuple[str, object]:
    """NAME=VALUE, the value as JSON (a bare word is taken as a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("give NAME=VALUE, e.g. tile_sides=[320]")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> int:
    """0 when every goal of the evaluation run is met, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, nargs="?", help="folder with images/, person-masks/")
    parser.add_argument("--dataset", dest="dataset_option", type=Path, help="the same, by name")
    parser.add_argument("--scene", action="store_true", help="a fixed-camera sequence")
    parser.add_argument("--all-variants", action="store_true", help="every variant and the scene")
    parser.add_argument("--flip", action="store_true", help="stills: mirror every photograph")
    parser.add_argument("--scale", type=float, default=1.0, help="stills: scale every photograph")
    parser.add_argument("--light", type=float, default=1.0, help="stills: winter light, 0.2-1")
    parser.add_argument("--jpeg-quality", type=int, help="stills: re-encode the input first")
    parser.add_argument("--half", type=int, choices=(1, 2), help="stills: one half of the set")
    parser.add_argument("--limit", type=int, default=0, help="stills: the first N images only")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--modes", default="background,pixelate", help="for --scene: background,pixelate,fill"
    )
    parser.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an anonymiser setting other than the shipped one, e.g. tile_sides=[320]",
    )
    args = parser.parse_args()
    try:
        base = AnonymiserConfig.model_validate(dict(args.set))
    except ValidationError as error:
        parser.error(f"--set: {error}")
    if (args.scene or args.all_variants) and base.max_width < SCENE_W:
        parser.error(f"--set: the scene is scored at its own size, max_width >= {SCENE_W}")
    args.dataset = args.dataset_option or args.dataset
    if args.dataset is None:
        parser.error("give the dataset folder (DIR or --dataset DIR)")
    if not 0.1 <= args.scale <= 4:
        parser.error("--scale must be between 0.1 and 4")
    if not 0.2 <= args.light <= 1:
        parser.error("--light must be between 0.2 and 1")
    if args.jpeg_quality is not None and not 5 <= args.jpeg_quality <= 100:
        parser.error("--jpeg-quality must be between 5 and 100")
    if args.all_variants:
        rows = all_variants(args.dataset, args.frames, args.seed, args.limit, base)
    elif args.scene:
        modes = tuple(Mode(m) for m in args.modes.split(","))
        print(
            f"scene: {args.frames} frames of {SCENE_W}x{SCENE_H}, {ACTORS} people "
            f"(30-{SCENE_H} px tall), seed {args.seed}"
        )
        results = scene(args.dataset, args.frames, args.seed, modes, base)
        rows = [scene_row(mode, result) for mode, result in results.items()]
        for mode, result in results.items():
            print(f"  {mode.value} statuses {result.statuses}, warm-up {result.warm_up}")
    else:
        variant = Variant(
            "people-dev", args.flip, args.scale, args.light, args.jpeg_quality, args.half
        )
        rows = still_rows(args.dataset, variant, args.limit, base)
    print_table(rows)
    print_misses(rows)
    met = all(r.met for r in rows)
    print(f"goals: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
