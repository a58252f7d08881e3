"""Milliseconds per 1280x720 frame: the whole anonymiser against its person detector alone.

Both run in the same process on the same frames, after one warm-up frame: first
the person detector's inference alone (whole picture plus tiles, as configured),
then the whole pipeline (light checks, person and face detectors, MOG2
foreground, hold, background learning, rendering, JPEG), with the fail-closed
shortcuts off so that every frame takes the whole path. The ratio says what the
rest costs on top of the detector. With DATASET, the frames are one fixed
camera: a people-free photograph with the people of the others pasted in (their
person masks), scaled to 1280x720; without, a synthetic yard with a moving block.

A Raspberry Pi 4 is estimated, not measured: the same run times a reference
workload that OpenCV Zoo's benchmark published for both an Intel i7-12700K and a
Raspberry Pi 4B (Cortex-A72, 4 cores) with the same runtime, OpenCV's DNN
module on the CPU (opencv-python 4.7.0.72): MobileNetV2 at 224x224, 5.97 ms and
66.56 ms a frame (opencv/opencv_zoo, benchmark/README.md). Here the reference is
the person detector's own MobileNetV2 feature extractor, the same layers, at
224x224, run between the frames (the machine's load then drifts alike for
both). The Pi 4 time is the pipeline's time here times PI4_REFERENCE_MS over the
reference's median time here; the face detector (onnxruntime) is scaled alike,
which the pipeline's small share of it allows.

Usage:
    .venv/bin/python bench/anonymise.py [--dataset ../shared/data/people-dev] [--frames 12]
        [--tile-sides 320,192 | none] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.anonymise import Anonymiser
from edge.camera_config import AnonymiserConfig, Mode
from edge.detectors import PersonDetector

W, H = 1280, 720
PI4_REFERENCE_MS = 66.56
REFERENCE_LAYER = "FeatureExtractor/MobilenetV2/Conv_1/Relu6"
REFERENCE_SIDE = 224
REFERENCE_RUNS_PER_FRAME = 5


def frames_from(
    dataset: Path | None, count: int, size: tuple[int, int] = (W, H)
) -> list[np.ndarray]:
    width, height = size
    if dataset is not None:
        # One fixed camera: a people-free photograph, with the people of other
        # photographs (their person masks) pasted in, one photograph per frame.
        def load(path: Path, flags: int) -> np.ndarray:
            return cv2.resize(
                cv2.imread(str(path), flags), (width, height), interpolation=cv2.INTER_NEAREST
            )

        background, frames = None, []
        for image in sorted((dataset / "images").glob("*.jpg")):
            mask = load(dataset / "person-masks" / (image.stem + ".png"), cv2.IMREAD_GRAYSCALE)
            if not (mask > 127).any():
                background = load(image, cv2.IMREAD_COLOR) if background is None else background
                continue
            frames.append((load(image, cv2.IMREAD_COLOR), mask > 127))
        assert background is not None, "no people-free image in the dataset"
        out = []
        for picture, person in frames[:count]:
            frame = background.copy()
            frame[person] = picture[person]
            out.append(frame)
        return out
    rng = np.random.default_rng(3)
    yard = cv2.resize(
        rng.integers(60, 190, (height // 16, width // 16, 3), dtype=np.uint8),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    out = []
    for index in range(count):
        frame = yard.copy()
        x = 100 + 40 * index
        frame[300:500, x : x + 80] = (60, 40, 200)
        out.append(frame)
    return out


# The anonymiser's own work (signals, hold, masking, encoding) may add at most half
# of what the person detector costs: the detector is what a slower CPU is sized for.
MAX_RATIO = 1.5


def reference_runs(net: cv2.dnn.Net, runs: int) -> list[float]:
    """Milliseconds of MobileNetV2 at 224x224 per run, pre-processing included, as
    OpenCV Zoo's benchmark times it."""
    image = np.random.default_rng(0).integers(0, 256, (REFERENCE_SIDE, REFERENCE_SIDE, 3), np.uint8)
    side = (REFERENCE_SIDE, REFERENCE_SIDE)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        net.setInput(cv2.dnn.blobFromImage(image, 1 / 127.5, side, (127.5,) * 3, swapRB=True))
        net.forward(REFERENCE_LAYER)
        times.append(1000 * (time.perf_counter() - started))
    return times


def sides(text: str) -> list[int]:
    return [] if text == "none" else [int(side) for side in text.split(",")]


def size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise argparse.ArgumentTypeError("a size from 64x64 to 4096x4096")
    return width, height


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--mode", default="background", choices=[m.value for m in Mode])
    parser.add_argument(
        "--tile-sides", type=sides, default=None, help="e.g. 320,192 (the default) or none"
    )
    parser.add_argument("--size", type=size, default=(W, H), help="frame size, e.g. 640x360")
    args = parser.parse_args()
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    # Every frame takes the whole path: no fail-closed shortcut (pasted crowds can
    # look like a global change or cover much of the frame).
    try:
        config = AnonymiserConfig(
            mode=Mode(args.mode),
            calibration_frames=0,
            max_global_change=255,
            max_colour_change=255,
            max_masked_fraction=1.0,
            **({} if args.tile_sides is None else {"tile_sides": args.tile_sides}),
        )
    except ValidationError as error:
        parser.error(str(error))
    frames = frames_from(args.dataset, args.frames + 1, args.size)
    anonymiser = Anonymiser(config)
    assert anonymiser.persons is not None
    anonymiser.process(frames.pop(0))  # warm-up: first inferences allocate; MOG2 starts
    started = time.perf_counter()
    for frame in frames:
        anonymiser.persons.detect(frame)
    detector_ms = 1000 * (time.perf_counter() - started) / len(frames)
    statuses: dict[str, int] = {}
    net = PersonDetector().net  # its own copy: the pipeline's keeps its input sizes
    reference_runs(net, 5)  # warm-up
    # The reference runs between the frames, so that the machine's load drifts
    # alike for both and their ratio holds.
    seconds, references = 0.0, []
    for frame in frames:
        started = time.perf_counter()
        outcome = anonymiser.process(frame)
        seconds += time.perf_counter() - started
        statuses[outcome.status.value] = statuses.get(outcome.status.value, 0) + 1
        references += reference_runs(net, REFERENCE_RUNS_PER_FRAME)
    pipeline_ms = 1000 * seconds / len(frames)
    reference = float(np.median(references))
    width, height = args.size
    print(
        f"{len(frames)} frames of {width}x{height}, mode {args.mode}, "
        f"tile sides {config.tile_sides or 'none'}"
    )
    print(f"  person detector alone: {detector_ms:.0f} ms/frame")
    print(f"  whole pipeline:        {pipeline_ms:.0f} ms/frame  (outcomes {statuses})")
    ratio = pipeline_ms / detector_ms
    met = ratio <= MAX_RATIO
    verdict = "met" if met else "NOT met"
    print(f"  ratio pipeline/detector: {ratio:.2f}  (goal <= {MAX_RATIO}: {verdict})")
    factor = PI4_REFERENCE_MS / reference
    print(
        f"  reference MobileNetV2 {REFERENCE_SIDE}x{REFERENCE_SIDE}: {reference:.1f} ms here, "
        f"{PI4_REFERENCE_MS} ms on a Pi 4 (OpenCV Zoo): factor {factor:.1f}"
    )
    print(f"  Raspberry Pi 4 estimate: {pipeline_ms * factor:.0f} ms/frame")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
