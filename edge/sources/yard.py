"""``yard_camera``: the demo's trail camera, a drawn yard through the real camera source.

The frames come from :mod:`edge.yard_scene` instead of a camera; everything
after that is what a real carpet-washing camera runs: :class:`CameraSource`
(its worker thread, its publishing interval, its fail-closed reports) and the
real :class:`~edge.anonymise.Anonymiser` in its default mode, with the face
detector, the moving foreground and the spots and privacy polygon of
``deploy/edge/carpet-washing-camera.toml``. Only the person signal is the
scene's own (a drawing is not a person), so what it counts is marked
``count_simulated``. Sample configuration::

    [[sources]]
    type = "yard_camera"
    camera = "yard"
    interval_s = 5
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.camera_config import AnonymiserConfig, Spot
from edge.sources import Source, SourceConfigBase
from ruuhka.contract import SourceName

# As in deploy/edge/carpet-washing-camera.toml.
DEMO_SPOTS = [
    Spot(name="table-1", polygon=[(0.05, 0.55), (0.35, 0.55), (0.35, 1.0), (0.05, 1.0)]),
    Spot(name="table-2", polygon=[(0.4, 0.55), (0.7, 0.55), (0.7, 1.0), (0.4, 1.0)]),
]
DEMO_PRIVACY = [[(0.8, 0.0), (1.0, 0.0), (1.0, 0.35), (0.8, 0.35)]]


def demo_anonymiser() -> AnonymiserConfig:
    """The default mode and signals, with settings that keep a shared 2-core demo
    machine responsive: the person detector looks at the whole picture and at one
    tile size, without closer looks (the default costs about 2 s a frame), and the
    background is learned from the first 8 frames and confirmed after 3 s: the
    demo's person signal is the scene's own truth, which misses nobody, so the
    long wait that protects people the detectors miss is not needed here."""
    return AnonymiserConfig(
        spots=DEMO_SPOTS,
        privacy_polygons=DEMO_PRIVACY,
        tile_sides=[320],
        zooms=[],
        max_candidates=0,
        calibration_frames=8,
        min_seen=3,
        background_confirm_s=3.0,
        background_check_s=5.0,
    )


class YardCameraConfig(SourceConfigBase):
    type: Literal["yard_camera"] = "yard_camera"
    camera: SourceName = "yard"
    interval_s: float = Field(default=5.0, gt=0, description="Publish every this many seconds.")
    analyse_every_s: float = Field(default=1.0, ge=0, description="Draw and analyse this often.")
    person_detector: bool = Field(
        default=True, description="Run the real person detector too (it hides, never counts)."
    )
    arrivals_per_min: float = Field(default=2.0, gt=0)
    anonymiser: AnonymiserConfig = Field(default_factory=demo_anonymiser)


def build_yard_camera(config: YardCameraConfig, seed: int | None = None) -> Source:
    """A CameraSource on the drawn yard; needs the camera extra (OpenCV)."""
    import time

    from edge.anonymise import Anonymiser
    from edge.camera_config import CameraConfig
    from edge.yard_scene import TruthDetector, YardCamera, YardFrames, YardScene

    spots = [spot.polygon for spot in config.anonymiser.spots]
    scene = YardScene(spots, seed=seed or 0, arrivals_per_min=config.arrivals_per_min)
    real = None
    if config.person_detector:
        from edge.detectors import PersonDetector

        real = PersonDetector.from_config(config.anonymiser)
    persons = TruthDetector(scene, real, config.anonymiser.count_threshold)
    camera = CameraConfig(
        camera=config.camera,
        url="yard-scene",  # never opened: the frames are given
        interval_s=config.interval_s,
        analyse_every_s=config.analyse_every_s,
        max_backoff_s=config.max_backoff_s,
        anonymiser=config.anonymiser,
    )
    return YardCamera(
        camera,
        frames=YardFrames(scene, time.monotonic),
        anonymiser=Anonymiser(config.anonymiser, persons=persons),
    )
