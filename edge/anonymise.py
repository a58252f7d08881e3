"""The anonymiser: a camera frame in, a publishable people-free picture (or nothing) out.

Every person is hidden under the union of independent signals: the person
detector, the face detector, the moving foreground (MOG2 background
subtraction) and fixed privacy polygons. Each signal is dilated by a margin and
held for ``hold_s`` after it was last seen, so a person who stops moving or is
missed for a frame stays hidden.

In ``background`` mode nobody becomes background: a pixel is learned only
after it stayed unchanged, with no signal on it, for ``background_confirm_s`` of
scene time (longer than anyone stands still, so a person the detectors miss is
never learned, not even one standing there from the first frame); a learned
pixel that the live picture now contradicts (someone in front of it, or the
ghost of someone learned in who left) is shown grey, not as learned; and the
detectors look at the learned background itself before a newly learned part of
it is shown, and what they find there is forgotten.

It fails closed: on an exception, a timeout, darkness, a sudden global change
(an IR switch at dusk), a background not yet confirmed or an implausibly large
mask, :meth:`Anonymiser.process` returns an :class:`Outcome` without an image
and says why. The only bytes that ever leave this module are made by
:func:`_encode` from a canvas that was built from the learned background or from
the frame with the mask already applied.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from edge.camera_config import AnonymiserConfig, Mode
from edge.detectors import crowd_regions
from ruuhka.contract import CameraStatus

log = logging.getLogger("ruuhka.anonymise")

_GREY = (128, 128, 128)
_MARKER = (40, 90, 230)
_ANALYSIS_SIDE = 160
_LEVEL = 128.0  # the background is learned with every frame's median luma moved here


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> np.ndarray: ...


@dataclass
class Outcome:
    """What one frame produced. ``jpeg`` is set only when ``status`` is OK."""

    status: CameraStatus
    mode: Mode
    jpeg: bytes | None = None
    width: int | None = None
    height: int | None = None
    people: int | None = None
    spots_in_use: int | None = None
    detail: str = ""
    masked_fraction: float | None = None
    elapsed_s: float = 0.0
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status is CameraStatus.OK and self.jpeg is not None


class FailClosed(Exception):
    """A condition under which nothing may be published."""

    def __init__(self, status: CameraStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def polygon_mask(shape: tuple[int, int], polygons: list[list[tuple[float, float]]]) -> np.ndarray:
    """Polygons given as fractions of width and height, rasterised at ``shape``."""
    height, width = shape
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        points = np.array([[x * width, y * height] for x, y in polygon], np.int32)
        cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def count_people(boxes: np.ndarray, threshold: float, overlap: float = 0.45) -> np.ndarray:
    """Distinct people: boxes above ``threshold`` after non-maximum suppression."""
    strong = boxes[boxes[:, 4] >= threshold]
    if strong.size == 0:
        return strong
    rects = [
        [float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in strong[:, :4]
    ]
    keep = cv2.dnn.NMSBoxes(rects, strong[:, 4].tolist(), threshold, overlap)
    return strong[np.array(keep, int).reshape(-1)]


def _encode(canvas: np.ndarray, max_width: int, quality: int) -> tuple[bytes, int, int]:
    """Downscale and encode; OpenCV writes a bare JFIF, so no metadata survives."""
    height, width = canvas.shape[:2]
    if width > max_width:
        height = max(1, round(height * max_width / width))
        width = max_width
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise FailClosed(CameraStatus.ERROR, "JPEG encoding failed")
    return data.tobytes(), width, height


class Anonymiser:
    """Keeps the per-camera state (background, hold timers) across frames."""

    def __init__(
        self,
        config: AnonymiserConfig,
        persons: Detector | None = None,
        faces: Detector | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        if persons is None and config.person_detector:
            from edge.detectors import PersonDetector

            persons = PersonDetector.from_config(config)
        if faces is None and config.face_detector:
            from edge.detectors import FaceDetector

            faces = FaceDetector(threshold=config.face_threshold)
        self.persons = persons
        self.faces = faces
        self._shape: tuple[int, int] | None = None
        # For evaluation only, never published: what was hidden (pixelate, fill)
        # or drawn rather than learned (background) in the latest frame.
        self.last_mask: np.ndarray | None = None
        self.last_drawn: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything learned: after a global change the old model lies."""
        self._shape = None
        self._last_seen: np.ndarray | None = None
        self._last_frame: np.ndarray | None = None
        self._model: _BackgroundModel | None = None
        self._level = _LEVEL
        self._previous: np.ndarray | None = None
        self._frames = 0
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=self.config.foreground_history, varThreshold=16, detectShadows=False
        )

    # -- the one entry point -------------------------------------------------

    def process(self, frame: np.ndarray | None, at: float | None = None) -> Outcome:
        """Anonymise one frame taken at scene time ``at`` (seconds; the clock when
        not given); never raises, never returns an unmasked image."""
        started = self.clock()
        try:
            if frame is None:
                raise FailClosed(CameraStatus.NO_FRAME, "no frame from the camera")
            outcome = self._process(frame, started if at is None else at)
        except FailClosed as closed:
            outcome = Outcome(closed.status, self.config.mode, detail=str(closed))
        except Exception as exc:
            log.exception("anonymiser failed; publishing nothing")
            outcome = Outcome(
                CameraStatus.ERROR, self.config.mode, detail=f"{type(exc).__name__}: {exc}"[:200]
            )
        outcome.elapsed_s = self.clock() - started
        if outcome.elapsed_s > self.config.timeout_s:
            outcome = Outcome(
                CameraStatus.TIMEOUT,
                self.config.mode,
                detail=f"took {outcome.elapsed_s:.1f} s > {self.config.timeout_s:g} s",
                elapsed_s=outcome.elapsed_s,
            )
        return outcome

    # -- stages --------------------------------------------------------------

    def _process(self, frame: np.ndarray, now: float) -> Outcome:
        c = self.config
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise FailClosed(CameraStatus.ERROR, f"unexpected frame {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        if self._shape != (height, width):
            self.reset()
            self._shape = (height, width)
            self._last_seen = np.full((height, width), -math.inf, np.float64)
            self._last_frame = np.full((height, width), -(2**30), np.int32)
        self._check_light(frame)
        self._frames += 1

        foreground = self._foreground(frame)
        persons = self.persons.detect(frame) if self.persons is not None else _no_boxes()
        faces = self.faces.detect(frame) if self.faces is not None else _no_boxes()
        fresh = np.zeros((height, width), np.uint8)
        _fill_people(fresh, persons, c)
        _fill_boxes(fresh, faces, c.margin, c.margin_px)
        if foreground is not None:
            fresh |= foreground
        assert self._last_seen is not None and self._last_frame is not None
        claimed = fresh.astype(bool)
        self._last_seen[claimed] = now
        self._last_frame[claimed] = self._frames
        # Held for hold_s and for hold_frames, so a slow frame cannot end a hold early.
        mask = ((now - self._last_seen) <= c.hold_s) | (
            (self._frames - self._last_frame) <= c.hold_frames
        )
        if c.privacy_polygons:
            mask |= polygon_mask((height, width), c.privacy_polygons)
        self.last_mask = mask
        fraction = float(mask.mean())
        if c.mode is Mode.BACKGROUND:
            self._learn_background(frame, mask, now)
        if self._frames <= c.calibration_frames:
            raise FailClosed(
                CameraStatus.CALIBRATING,
                f"learning the background: frame {self._frames} of {c.calibration_frames}",
            )
        if fraction > c.max_masked_fraction:
            raise FailClosed(
                CameraStatus.IMPLAUSIBLE_MASK,
                f"{fraction:.0%} of the picture masked (limit {c.max_masked_fraction:.0%})",
            )
        counted = count_people(persons, c.count_threshold)
        if c.mode is Mode.BACKGROUND:
            self._check_background(now)
            canvas = self._background_canvas(counted)
        else:
            canvas = _hide(frame, mask, c.mode)
        jpeg, out_w, out_h = _encode(canvas, c.max_width, c.jpeg_quality)
        return Outcome(
            CameraStatus.OK,
            c.mode,
            jpeg=jpeg,
            width=out_w,
            height=out_h,
            people=len(counted),
            spots_in_use=self._spots_in_use(counted, (height, width)),
            masked_fraction=round(fraction, 4),
        )

    def _check_light(self, frame: np.ndarray) -> None:
        """Darkness and sudden global changes (IR switch, a light, a moved camera)."""
        c = self.config
        small = cv2.resize(frame, (_ANALYSIS_SIDE, _ANALYSIS_SIDE), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        saturation = float(cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[:, :, 1].mean())
        previous = self._previous
        self._previous = np.append(grey.ravel(), saturation)
        self._level = max(1.0, float(np.median(grey)))
        brightness = float(grey.mean())
        if brightness < c.min_brightness:
            raise FailClosed(
                CameraStatus.DARK, f"mean brightness {brightness:.0f} < {c.min_brightness}"
            )
        if previous is None:
            return
        change = float(np.abs(grey.ravel() - previous[:-1]).mean())
        colour_jump = abs(saturation - float(previous[-1]))
        if change > c.max_global_change or colour_jump > c.max_colour_change:
            self.reset()
            self._shape = frame.shape[:2]
            self._last_seen = np.full(frame.shape[:2], -math.inf, np.float64)
            self._last_frame = np.full(frame.shape[:2], -(2**30), np.int32)
            self._previous = np.append(grey.ravel(), saturation)
            raise FailClosed(
                CameraStatus.LIGHT_CHANGE,
                f"the whole picture changed (mean {change:.0f}, colour {colour_jump:.0f}); "
                "learning again",
            )

    def _foreground(self, frame: np.ndarray) -> np.ndarray | None:
        """Moving pixels, cleaned of specks and dilated by the margin."""
        if not self.config.foreground:
            return None
        # MOG2's own rate (1/frames seen) while calibrating, then slow, so that a
        # person who stops keeps counting as foreground for minutes.
        learning = -1.0 if self._frames <= self.config.calibration_frames else None
        raw = self._subtractor.apply(
            frame, learningRate=learning if learning is not None else self.config.foreground_rate
        )
        if self._frames <= 1:
            # MOG2 calls everything foreground in its first frame: no signal yet.
            return None
        moving = (raw > 0).astype(np.uint8)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        radius = self.config.foreground_margin_px
        if radius > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            moving = cv2.dilate(moving, kernel)
        return moving

    def _learn_background(self, frame: np.ndarray, claimed: np.ndarray, now: float) -> None:
        """Follow every pixel's run of unchanged, unclaimed frames; a run that
        lasts ``background_confirm_s`` becomes that pixel's background."""
        c = self.config
        level = np.float32(_LEVEL / self._level)
        if self._model is None:
            self._model = _BackgroundModel(frame.astype(np.float32) * level, now)
        self._model.update(
            frame.astype(np.float32) * level,
            claimed,
            now,
            c.background_tolerance,
            c.background_rate,
            c.background_confirm_s,
            c.min_seen,
            c.foreground_margin_px,
        )

    def _check_background(self, now: float) -> None:
        """Run the detectors on the learned background itself when a newly
        learned part waits for it; whatever they find there is forgotten."""
        model = self._model
        if model is None or not model.confirmed.any():
            return
        due = model.checked_at is None or now - model.checked_at >= self.config.background_check_s
        if not due or not model.pending().any():
            return
        canvas = self._render(model, model.confirmed)
        found = np.zeros(canvas.shape[:2], np.uint8)
        for detector in (self.persons, self.faces):
            if detector is not None:
                _fill_boxes(
                    found, detector.detect(canvas), self.config.margin, self.config.margin_px
                )
        model.forget(found.astype(bool), now)
        model.checked_at = now

    def _render(self, model: _BackgroundModel, shown: np.ndarray) -> np.ndarray:
        """The learned background at today's light level, grey where not ``shown``."""
        canvas = np.clip(model.background * np.float32(self._level / _LEVEL), 0, 255)
        canvas = canvas.astype(np.uint8)
        canvas[~shown] = _GREY
        return canvas

    def _background_canvas(self, counted: np.ndarray) -> np.ndarray:
        model = self._model
        if model is None:
            raise FailClosed(CameraStatus.CALIBRATING, "no background learned yet")
        shown = model.shown()
        hidden = float(1.0 - shown.mean())
        if hidden > self.config.max_masked_fraction:
            raise FailClosed(
                CameraStatus.CALIBRATING,
                f"confirming the background: {1 - hidden:.0%} of the picture confirmed "
                "free of people",
            )
        canvas = self._render(model, shown)
        markers = np.zeros(canvas.shape[:2], np.uint8)
        for x0, y0, x1, y1, _ in counted:
            centre = (round((x0 + x1) / 2), round((y0 + y1) / 2))
            axes = (max(2, round((x1 - x0) / 2)), max(2, round((y1 - y0) / 2)))
            cv2.ellipse(canvas, centre, axes, 0, 0, 360, _MARKER, -1)
            cv2.ellipse(canvas, centre, axes, 0, 0, 360, (255, 255, 255), 2)
            cv2.ellipse(markers, centre, axes, 0, 0, 360, 1, -1)
            cv2.ellipse(markers, centre, axes, 0, 0, 360, 1, 2)
        self.last_drawn = ~shown | markers.astype(bool)
        return canvas

    def _spots_in_use(self, counted: np.ndarray, shape: tuple[int, int]) -> int | None:
        spots = self.config.spots
        if not spots:
            return None
        height, width = shape
        used = 0
        for spot in spots:
            outline = np.array([[x * width, y * height] for x, y in spot.polygon], np.float32)
            for x0, _y0, x1, y1, _ in counted:
                foot = (float((x0 + x1) / 2), float(y1) - 1.0)
                if cv2.pointPolygonTest(outline, foot, False) >= 0:
                    used += 1
                    break
        return used


def _change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel, the largest channel difference after a slight blur, so that
    sensor noise is not mistaken for a change."""
    return np.abs(cv2.GaussianBlur(a - b, (0, 0), 1.0)).max(axis=2)


class _BackgroundModel:
    """Per pixel: the current run of unchanged, unclaimed frames (its first
    value, mean, start and length) and the background learned from a run that
    lasted long enough, with the start of that run.

    Values are in light-level-evened units (see ``_LEVEL``)."""

    def __init__(self, first: np.ndarray, now: float) -> None:
        shape = first.shape[:2]
        self.anchor = first.copy()
        self.mean = first.copy()
        self.since = np.full(shape, now, np.float64)
        self.count = np.zeros(shape, np.uint16)
        self.background = np.zeros_like(first)
        self.learned_since = np.full(shape, np.inf, np.float64)
        self.confirmed = np.zeros(shape, bool)
        self.stale = np.zeros(shape, bool)
        self.confirm_s = 0.0
        self.checked_at: float | None = None

    def update(
        self,
        frame: np.ndarray,
        claimed: np.ndarray,
        now: float,
        tolerance: float,
        rate: float,
        confirm_s: float,
        min_seen: int,
        spread: int,
    ) -> None:
        """A signal or a change starts a pixel's run again; a run of at least
        ``confirm_s`` and ``min_seen`` frames is its background from then on."""
        self.confirm_s = confirm_s
        restart = claimed | (_change(frame, self.anchor) > tolerance)
        np.copyto(self.anchor, frame, where=restart[:, :, None])
        self.since[restart] = now
        count = np.where(restart, 0, self.count).astype(np.float32)
        weight = np.maximum(np.float32(rate), 1.0 / (count + 1.0))
        self.mean += weight[:, :, None] * (frame - self.mean)
        self.count = np.minimum(count + 1, 60000).astype(np.uint16)
        ripe = (now - self.since >= confirm_s) & (self.count >= min_seen)
        np.copyto(self.background, self.mean, where=ripe[:, :, None])
        self.learned_since[ripe] = self.since[ripe]
        self.confirmed |= ripe
        # Learned, and contradicted by the live picture: someone in front of it, or
        # the ghost of someone learned in who left (a signal does not tell which:
        # what a person leaves behind moves too). Widened, so no outline is shown.
        differs = (_change(frame, self.background) > tolerance).astype(np.uint8)
        if spread > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * spread + 1, 2 * spread + 1))
            differs = cv2.dilate(differs, kernel)
        self.stale = self.confirmed & differs.astype(bool)

    def pending(self) -> np.ndarray:
        """Learned from a run that had not lasted long enough at the last check."""
        checked = -np.inf if self.checked_at is None else self.checked_at
        return self.confirmed & (self.learned_since + self.confirm_s > checked)

    def shown(self) -> np.ndarray:
        return self.confirmed & ~self.pending() & ~self.stale

    def forget(self, region: np.ndarray, now: float) -> None:
        """What a detector found in the background: unlearned, its runs restarted."""
        self.confirmed[region] = False
        self.learned_since[region] = np.inf
        self.since[region] = now
        self.count[region] = 0


def _no_boxes() -> np.ndarray:
    return np.zeros((0, 5), np.float32)


def _fill_boxes(mask: np.ndarray, boxes: np.ndarray, margin: float, margin_px: int) -> None:
    for x0, y0, x1, y1, _ in boxes:
        mx = margin * (x1 - x0) + margin_px
        my = margin * (y1 - y0) + margin_px
        cv2.rectangle(
            mask,
            (math.floor(x0 - mx), math.floor(y0 - my)),
            (math.ceil(x1 + mx), math.ceil(y1 + my)),
            1,
            -1,
        )


def _fill_people(mask: np.ndarray, boxes: np.ndarray, c: AnonymiserConfig) -> None:
    """Person boxes with their margin, and each crowd they form as one region."""
    _fill_boxes(mask, boxes, c.margin, c.margin_px)
    height, width = mask.shape
    regions = crowd_regions(
        boxes, width, height, c.crowd_min_people, c.crowd_max_height, c.crowd_grow
    )
    if regions:
        cv2.fillPoly(mask, regions, 1)


def _hide(frame: np.ndarray, mask: np.ndarray, mode: Mode) -> np.ndarray:
    """The frame with every masked region replaced irreversibly.

    ``pixelate``: each connected region becomes one block of its mean colour (a
    block the size of the whole body or face), then the seams are blurred.
    ``fill``: solid grey."""
    canvas = frame.copy()
    if not mask.any():
        return canvas
    if mode is Mode.FILL:
        canvas[mask] = _GREY
        return canvas
    count, labels = cv2.connectedComponents(mask.astype(np.uint8))
    for label in range(1, count):
        region = labels == label
        canvas[region] = frame[region].reshape(-1, 3).mean(axis=0).astype(np.uint8)
    blurred = cv2.GaussianBlur(canvas, (0, 0), 6)
    canvas[mask] = blurred[mask]
    return canvas
