"""Configuration of a camera source and its anonymiser (no OpenCV needed to validate)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.sources import SourceConfigBase
from ruuhka.contract import SourceName

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Fraction, Fraction]
Polygon = Annotated[list[Point], Field(min_length=3)]


class Mode(StrEnum):
    """How people are kept out of the picture."""

    BACKGROUND = "background"
    """Publish the learned people-free background with a flat marker per person."""
    PIXELATE = "pixelate"
    """Each hidden region becomes one block of its mean colour, seams blurred."""
    FILL = "fill"
    """Hidden regions are filled solid grey."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Spot(_Strict):
    """A washing spot: in use while a counted person's feet are inside it."""

    name: SourceName
    polygon: Polygon = Field(description="Corners as fractions of width and height.")


class AnonymiserConfig(_Strict):
    mode: Mode = Field(
        default=Mode.BACKGROUND,
        description="background (fixed cameras: no live pixel is published), pixelate or fill.",
    )
    person_detector: bool = True
    person_threshold: float = Field(default=0.2, gt=0, lt=1, description="Whole picture.")
    tile_threshold: float = Field(default=0.3, gt=0, lt=1, description="Tiles.")
    tile_sides: list[Annotated[int, Field(ge=64, le=4096)]] = Field(
        default_factory=lambda: [320, 192],
        description="Tile sizes in native pixels; small people are found in small tiles.",
    )
    zooms: list[Annotated[float, Field(gt=1, le=8)]] = Field(
        default_factory=lambda: [2.0, 3.0, 4.0],
        description="A weak candidate is looked at again, centred, at these multiples of its size.",
    )
    candidate_threshold: float = Field(
        default=0.05, gt=0, lt=1, description="Score from which a box is worth a closer look."
    )
    max_candidates: int = Field(default=16, ge=0, description="Closer looks per frame, at most.")
    look_threshold: float = Field(
        default=0.45, gt=0, lt=1, description="Closer looks: a box larger than look_small."
    )
    look_small_threshold: float = Field(
        default=0.15, gt=0, lt=1, description="Closer looks: a box of the candidate's size."
    )
    look_small: float = Field(
        default=0.35, gt=0, le=1, description="Small in a closer look: at most this of its side."
    )
    crowd_min_people: int = Field(
        default=4, ge=0, description="People close together that are hidden as one crowd; 0: off."
    )
    crowd_max_height: float = Field(
        default=0.15, gt=0, le=1, description="Crowd members: at most this of the picture's height."
    )
    crowd_grow: float = Field(
        default=0.5, ge=0, le=4, description="A crowd region reaches this many heights beyond it."
    )
    face_detector: bool = True
    face_threshold: float = Field(default=0.3, gt=0, lt=1)
    foreground: bool = Field(default=True, description="Hide whatever moves (MOG2).")
    foreground_history: int = Field(default=200, ge=2)
    foreground_rate: float = Field(
        default=0.002, gt=0, le=1, description="MOG2 learning rate per frame after calibration."
    )
    foreground_margin_px: int = Field(default=12, ge=0, le=200)
    margin: float = Field(default=0.05, ge=0, le=2, description="Box margin, fraction of size.")
    margin_px: int = Field(default=4, ge=0, le=200)
    hold_s: float = Field(default=5.0, ge=0, description="Keep hiding this long after a signal.")
    hold_frames: int = Field(default=2, ge=0, description="…and for at least this many frames.")
    privacy_polygons: list[Polygon] = Field(
        default_factory=list, description="Always hidden, e.g. a neighbour's window."
    )
    spots: list[Spot] = Field(default_factory=list)
    count_threshold: float = Field(default=0.5, gt=0, lt=1, description="Score to count a person.")
    calibration_frames: int = Field(
        default=10, ge=0, description="Frames the moving-foreground model learns before publishing."
    )
    background_rate: float = Field(default=0.05, gt=0, le=1)
    background_confirm_s: float = Field(
        default=4200.0,
        ge=0,
        description="Background mode: a pixel is learned only after it stayed unchanged, with no "
        "signal on it, this long in scene time; longer than anyone stands still.",
    )
    background_tolerance: float = Field(
        default=20.0,
        gt=0,
        le=255,
        description="Largest change per channel (light level evened out) that counts as unchanged.",
    )
    background_check_s: float = Field(
        default=60.0,
        ge=0,
        description="The detectors look at the learned background itself this often; newly "
        "learned parts stay hidden until they have.",
    )
    min_seen: int = Field(
        default=5,
        ge=1,
        description="…and only after it was seen unchanged in at least this many frames.",
    )
    min_brightness: float = Field(default=30, ge=0, le=255, description="Mean luma; darker = dark.")
    max_global_change: float = Field(
        default=45, gt=0, le=255, description="Mean luma change between frames that means a switch."
    )
    max_colour_change: float = Field(
        default=50, gt=0, le=255, description="Mean saturation change (colour to IR and back)."
    )
    max_masked_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="More of the picture masked than this is taken for a fault (a covered lens, "
        "a detector gone wrong) and nothing is published. A person close to the camera can "
        "fill most of it; a large mask hides, so the limit is only for the implausible.",
    )
    timeout_s: float = Field(default=30.0, gt=0)
    max_width: int = Field(default=960, ge=64, le=960)
    jpeg_quality: int = Field(default=75, ge=30, le=95)


class CameraConfig(SourceConfigBase):
    """A camera read by OpenCV (USB index, RTSP URL, video file) or a folder of JPEGs."""

    type: Literal["camera"] = "camera"
    camera: SourceName = "yard"
    url: str | int | None = Field(
        default=None, description="USB camera index, rtsp://… URL or video file."
    )
    folder: Path | None = Field(
        default=None, description="A folder a trail camera uploads JPEGs to."
    )
    delete_after_read: bool = Field(
        default=True, description="Delete each JPEG from the folder once read."
    )
    interval_s: float = Field(default=60.0, gt=0, description="Publish every this many seconds.")
    analyse_every_s: float = Field(
        default=2.0, ge=0, description="Read and analyse a frame this often."
    )
    stale_after_s: float | None = Field(
        default=None, description="No new analysed frame for this long: report no_frame."
    )
    anonymiser: AnonymiserConfig = Field(default_factory=AnonymiserConfig)

    @model_validator(mode="after")
    def _one_input(self) -> CameraConfig:
        if (self.url is None) == (self.folder is None):
            raise ValueError("give exactly one of url (a camera or stream) and folder")
        return self

    @property
    def stale_after(self) -> float:
        return self.stale_after_s or max(3 * self.interval_s, 10 * self.analyse_every_s)
