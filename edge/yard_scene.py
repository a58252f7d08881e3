"""A carpet-washing yard drawn at run time, for the demo camera.

Washing tables stand where the spots of ``deploy/edge/carpet-washing-camera.toml``
are; people-like figures arrive, walk to a free table, wash (and so keep
moving), wait by the fence when every table is taken, and leave. The scene
knows where every figure is: :meth:`YardScene.truth` gives their boxes, which
the demo's simulated person signal hands to the real anonymiser (a drawing is
not a person, so the person detector's opinion of it shows nothing).

The frames are raw camera frames as far as the pipeline is concerned: they go
through the anonymiser like any other and are never published themselves.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from edge.sources import Readings
from edge.sources.camera import CameraSource

WIDTH, HEIGHT = 640, 360
FIGURE_H = 96
_SKIN = [(150, 180, 225), (90, 120, 170), (120, 150, 200)]
_CLOTHES = [(40, 40, 170), (160, 80, 30), (40, 130, 40), (30, 160, 200), (120, 60, 120)]


@dataclass
class Figure:
    x: float
    y: float  # feet
    colour: tuple[int, int, int]
    skin: tuple[int, int, int]
    phase: float
    state: str = "arriving"  # arriving, washing, waiting, leaving
    table: int | None = None
    until: float = 0.0
    target: tuple[float, float] = (0.0, 0.0)

    def box(self, t: float) -> tuple[float, float, float, float]:
        sway = 6 * math.sin(t * 2.5 + self.phase) if self.state == "washing" else 0.0
        half = FIGURE_H * 0.22
        return (self.x + sway - half, self.y - FIGURE_H, self.x + sway + half, self.y)


@dataclass
class YardScene:
    """The yard and its visitors; ``step`` advances it, ``frame`` draws it."""

    spots: list[list[tuple[float, float]]]
    seed: int = 0
    clock: Callable[[], float] | None = None
    arrivals_per_min: float = 2.0
    wash_s: tuple[float, float] = (40.0, 120.0)
    figures: list[Figure] = field(default_factory=list)
    t: float = 0.0
    drawn: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._background = self._draw_background()

    # -- the yard ------------------------------------------------------------

    def _polygon(self, spot: list[tuple[float, float]]) -> np.ndarray:
        return np.array([[x * WIDTH, y * HEIGHT] for x, y in spot], np.int32)

    def _draw_background(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[:] = (110, 150, 130)  # gravel
        image[: int(HEIGHT * 0.3)] = (170, 130, 80)  # the sea beyond the pier
        noise = rng.integers(-12, 12, (HEIGHT, WIDTH, 1), dtype=np.int16)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        cv2.line(image, (0, int(HEIGHT * 0.3)), (WIDTH, int(HEIGHT * 0.3)), (90, 90, 90), 4)
        # The neighbour's house (its window is a privacy polygon in the camera's settings).
        cv2.rectangle(image, (int(WIDTH * 0.82), 10), (WIDTH - 10, int(HEIGHT * 0.33)),
                      (60, 80, 150), -1)  # fmt: skip
        cv2.rectangle(image, (int(WIDTH * 0.86), 30), (int(WIDTH * 0.94), 80), (200, 220, 230), -1)
        for spot in self.spots:
            outline = self._polygon(spot)
            x0, y0 = outline.min(axis=0)
            x1, y1 = outline.max(axis=0)
            # A washing table: a slatted top on legs, in the spot's upper half.
            top = y0 + (y1 - y0) // 4
            cv2.rectangle(image, (x0 + 8, top), (x1 - 8, top + 26), (60, 100, 150), -1)
            for slat in range(x0 + 14, x1 - 8, 14):
                cv2.line(image, (slat, top), (slat, top + 26), (40, 70, 110), 2)
            for leg in (x0 + 14, x1 - 14):
                cv2.line(image, (leg, top + 26), (leg, top + 60), (40, 60, 90), 4)
            cv2.polylines(image, [outline], True, (200, 200, 200), 1)
        return image

    # -- the visitors --------------------------------------------------------

    def _table_spot(self, index: int) -> tuple[float, float]:
        """Where a washer stands: in front of the table, feet inside the spot."""
        outline = self._polygon(self.spots[index])
        x0, y0 = outline.min(axis=0)
        x1, y1 = outline.max(axis=0)
        return (float(x0 + x1) / 2, float(y1) - 0.12 * float(y1 - y0))

    def _free_table(self) -> int | None:
        taken = {f.table for f in self.figures if f.table is not None}
        free = [i for i in range(len(self.spots)) if i not in taken]
        return self.rng.choice(free) if free else None

    def step(self, dt: float) -> None:
        self.t += dt
        if (
            self.rng.random() < 1 - math.exp(-self.arrivals_per_min * dt / 60)
            and len(self.figures) < len(self.spots) + 3
        ):
            self.figures.append(
                Figure(
                    x=WIDTH + 20,
                    y=HEIGHT * 0.62 + self.rng.uniform(0, 20),
                    colour=self.rng.choice(_CLOTHES),
                    skin=self.rng.choice(_SKIN),
                    phase=self.rng.uniform(0, 6.3),
                )
            )
        waiting = 0
        for figure in list(self.figures):
            if figure.state in ("arriving", "waiting"):
                table = self._free_table() if figure.table is None else figure.table
                if table is not None:
                    figure.table = table
                    figure.target = self._table_spot(table)
                    figure.state = "arriving"
                elif figure.state == "arriving":
                    figure.state = "waiting"
                if figure.state == "waiting":
                    # Queue along the fence on the right, spaced so nobody overlaps.
                    figure.target = (WIDTH * 0.9 - 58 * waiting, HEIGHT * 0.97)
                    waiting += 1
            if figure.state == "leaving":
                figure.target = (WIDTH + 40, HEIGHT * 0.62)
            if self._walk(figure, dt):
                if figure.state == "arriving" and figure.table is not None:
                    figure.state = "washing"
                    figure.until = self.t + self.rng.uniform(*self.wash_s)
                elif figure.state == "leaving":
                    self.figures.remove(figure)
            if figure.state == "washing" and self.t >= figure.until:
                figure.state, figure.table = "leaving", None

    def _walk(self, figure: Figure, dt: float, speed: float = 60.0) -> bool:
        """Towards the target; True on arrival."""
        dx, dy = figure.target[0] - figure.x, figure.target[1] - figure.y
        distance = math.hypot(dx, dy)
        if distance <= speed * dt:
            figure.x, figure.y = figure.target
            return True
        figure.x += dx / distance * speed * dt
        figure.y += dy / distance * speed * dt
        return False

    # -- output --------------------------------------------------------------

    def visible(self) -> list[Figure]:
        return [f for f in self.figures if f.box(self.t)[2] > 0 and f.box(self.t)[0] < WIDTH]

    def truth(self) -> np.ndarray:
        """Boxes (x0, y0, x1, y1, 1.0) of every visible figure, clipped to the frame."""
        boxes = [
            (max(0.0, x0), max(0.0, y0), min(WIDTH - 1.0, x1), min(HEIGHT - 1.0, y1), 1.0)
            for x0, y0, x1, y1 in (f.box(self.t) for f in self.visible())
        ]
        return np.array(boxes, np.float32).reshape(-1, 5)

    def frame(self) -> np.ndarray:
        image = self._background.copy()
        self.drawn = image
        for figure in sorted(self.visible(), key=lambda f: f.y):
            x0, y0, x1, y1 = (round(v) for v in figure.box(self.t))
            cx = (x0 + x1) // 2
            head = FIGURE_H // 8
            cv2.circle(image, (cx, y0 + head), head, figure.skin, -1)
            cv2.rectangle(
                image, (x0 + 4, y0 + 2 * head), (x1 - 4, y0 + 5 * head), figure.colour, -1
            )
            cv2.rectangle(image, (x0 + 6, y0 + 5 * head), (cx - 2, y1), (50, 50, 60), -1)
            cv2.rectangle(image, (cx + 2, y0 + 5 * head), (x1 - 6, y1), (50, 50, 60), -1)
            if figure.state == "washing":
                reach = round(10 * math.sin(self.t * 2.5 + figure.phase))
                cv2.line(image, (cx, y0 + 3 * head), (cx + reach, y0 + head), figure.skin, 5)
        return image


class YardFrames:
    """The scene as a camera: each grab advances it by the real time since the last."""

    def __init__(self, scene: YardScene, clock: Callable[[], float]) -> None:
        self.scene = scene
        self.clock = clock
        self._last: float | None = None

    def grab(self) -> np.ndarray:
        now = self.clock()
        if self._last is not None:
            self.scene.step(min(now - self._last, 10.0))
        self._last = now
        return self.scene.frame()

    def close(self) -> None:
        """Nothing is held open."""


class TruthDetector:
    """The demo's person signal: the scene's own boxes for the frame just drawn, with
    the real person detector's boxes (if any) added for hiding, never for counting.
    On any other picture (the anonymiser checking its learned background) the
    scene's truth says nothing, so only the real detector answers."""

    def __init__(self, scene: YardScene, real: object | None, count_threshold: float) -> None:
        self.scene = scene
        self.real = real
        self.below = count_threshold * 0.99

    def detect(self, image: np.ndarray) -> np.ndarray:
        own = image is self.scene.drawn
        boxes = [self.scene.truth() if own else np.zeros((0, 5), np.float32)]
        if self.real is not None:
            found = self.real.detect(image)  # type: ignore[attr-defined]
            found[:, 4] = np.minimum(found[:, 4], self.below)
            boxes.append(found)
        return np.concatenate(boxes).astype(np.float32)


class YardCamera(CameraSource):
    """The camera source, with its counts marked as the scene's (``count_simulated``)."""

    def read(self, now: datetime) -> Readings:
        readings = super().read(now)
        for _stream, fields in readings:
            if "people" in fields:
                fields["count_simulated"] = True
        return readings


@dataclass
class Stayer:
    """Someone who stays still for long, in scene seconds: walks in from ``start``
    during the ``walk_s`` before ``arrive_s`` (or, with no ``start``, is simply
    there from ``arrive_s``), stands with the sprite's top-left corner at ``spot``
    until ``leave_s``, then walks back out the same way (or is simply gone).

    For benchmarks and tests of what a camera publishes while a person washes a
    carpet for an hour or crouches over one: :func:`compose` draws them."""

    sprite: np.ndarray
    alpha: np.ndarray
    spot: tuple[int, int]
    arrive_s: float
    leave_s: float
    start: tuple[int, int] | None = None
    walk_s: float = 60.0

    def place(self, t: float) -> tuple[int, int] | None:
        """The sprite's top-left corner at scene time ``t``, or None when away."""
        if self.start is None:
            return self.spot if self.arrive_s <= t < self.leave_s else None
        if t < self.arrive_s - self.walk_s or t >= self.leave_s + self.walk_s:
            return None
        if self.arrive_s <= t < self.leave_s:
            return self.spot
        if t < self.arrive_s:
            share, origin, target = (
                (t - self.arrive_s + self.walk_s) / self.walk_s,
                self.start,
                self.spot,
            )
        else:
            share, origin, target = (t - self.leave_s) / self.walk_s, self.spot, self.start
        return (
            round(origin[0] + share * (target[0] - origin[0])),
            round(origin[1] + share * (target[1] - origin[1])),
        )


def compose(
    background: np.ndarray, people: list[Stayer], t: float
) -> tuple[np.ndarray, np.ndarray]:
    """The frame at scene time ``t`` and its person mask (True = a person pixel)."""
    image = background.copy()
    person = np.zeros(background.shape[:2], bool)
    height, width = person.shape
    for someone in people:
        where = someone.place(t)
        if where is None:
            continue
        x, y = where
        h, w = someone.alpha.shape
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        alpha = someone.alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        image[y0:y1, x0:x1][alpha] = someone.sprite[y0 - y : y1 - y, x0 - x : x1 - x][alpha]
        person[y0:y1, x0:x1] |= alpha
    return image, person
