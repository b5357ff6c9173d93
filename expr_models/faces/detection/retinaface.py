"""The default face detector: RetinaFace with a MobileNet-0.25 backbone, run by onnxruntime.

    detector = RetinaFaceDetector()          # boxes in the editor's (Haar) framing, with 5 landmarks each
    boxes = detector.detect(rgb_uint8)       # or expr_models.faces.detection.detect_faces(photo), which uses it
    raw = RetinaFaceDetector(framing="raw")  # RetinaFace's own boxes (brows to chin), e.g. to score on WIDER FACE

The model is biubug6/Pytorch_Retinaface's ``mobilenet0.25_Final.pth`` (MIT, trained on WIDER FACE) as an ONNX graph,
committed in ``checkpoints/face_detector/`` (1.7 MB; its README.md has the source, licence and sha256, and
``train/tools/convert_retinaface.py`` rebuilds it). It finds faces of many sizes and poses where OpenCV's Haar cascade finds
frontal ones only, and it is faster (benchmarks/RESULTS.md has the measurements).

**Framing.** Every training crop and every committed model was framed from Haar boxes (``crop_face``: a square of
``CROP_SCALE`` times the Haar box around its centre; ``face_mask``'s ellipse assumes the same). RetinaFace's boxes are
narrower and run down to the chin, so with ``framing="haar"`` (the default) each box is replaced by the square a Haar
cascade would have drawn around the same face, computed from the five landmarks and the box width (see
:func:`haar_framing` and the constants below). ``framing="raw"`` keeps RetinaFace's boxes, which enclose the face the
way WIDER FACE's annotations do; the detection evaluation scores those. Both keep the landmarks on ``FaceBox``.

onnxruntime is a dependency of the default detector only: without it, ``detector="haar"`` (OpenCV's cascade) still
works, and the error says so.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...errors import CheckpointError, MissingDependencyError
from ..geometry import FaceBox
from .common import as_rgb_array, min_size_pixels

MODEL_FILENAME = "retinaface_mnet025.onnx"
MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "checkpoints" / "face_detector"
DEFAULT_MODEL_PATH = DEFAULT_MODEL_DIR / MODEL_FILENAME

# The network's input and anchors, as biubug6/Pytorch_Retinaface (data/config.py ``cfg_mnet``, layers/functions/
# prior_box.py, utils/box_utils.py) trains and decodes them: BGR minus the per-channel mean, no scaling; three feature
# maps with strides 8/16/32 and two square anchors each; SSD-style offsets with variances 0.1 (centres) and 0.2 (sizes).
MEAN_BGR = (104.0, 117.0, 123.0)
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)

# From RetinaFace's box and landmarks to the square a Haar cascade (``HaarFaceDetector``'s alt2 cascade) draws around
# the same face. Measured by benchmarks/face_framing.py on the 373 JAFFE + FEI photos (every one: both detectors find
# exactly one face in each), in units of the RetinaFace box width w:
#   - the Haar box centre lies 0.122 w below the eyes' midpoint, along the line from the eyes' midpoint to the
#     mouth's (IQR 0.112-0.132; sideways 0.002, i.e. none);
#   - the Haar box side is 1.215 w (IQR 1.066-1.265, 5-95% 0.97-1.31). Haar's own size is the loose part: it frames
#     JAFFE faces larger than FEI faces (medians 1.26 w and 1.05 w; against the eye and mouth distances, too), so
#     the training crops vary as much, and this is their middle.
# How well the mapped squares overlap the Haar boxes, on those photos and on WIDER FACE (where the constants are not
# fitted), is in benchmarks/RESULTS.md.
HAAR_CENTRE_BELOW_EYES = 0.122
HAAR_SIDE = 1.215
# Without landmarks (a box from elsewhere): the box centre, 0.014 of the box height higher (IQR -0.034 to 0.007).
HAAR_CENTRE_UP_FROM_BOX = 0.014

FRAMINGS = ("haar", "raw")

# onnxruntime's default thread pool spins while it waits; on a 2-core machine shared with torch (the generators) or
# other jobs that slows everything else down, and more than two threads gain little on a 640 px copy (measured in
# benchmarks/RESULTS.md). Hence at most 2 threads, not spinning.
DEFAULT_THREADS = max(1, min(2, os.cpu_count() or 1))


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 on onnxruntime (CPU): faces of any size from ~16 px in the searched copy, with five
    landmarks (eyes, nose tip, mouth corners; ``FaceBox.landmarks``, ``5 x 2`` photo pixels).

    ``max_side``: photos are searched on a copy whose longer side is at most this (``None``: never downscale). The
    smallest anchor is 16 px, so on a photo whose longer side is ``L`` faces down to about ``16 * L / max_side`` px
    are found. ``score_threshold``: the confidence a face needs (0.7 trades recall against false detections on WIDER
    FACE val; see benchmarks/RESULTS.md).
    ``framing``: ``"haar"`` (default) returns the square the editor's crops were trained on, ``"raw"`` RetinaFace's
    own boxes. ``max_roll``: drop faces turned in the image plane by more than this many degrees (the direction from
    the eyes to the mouth against straight down; ``None`` keeps all). RetinaFace finds faces lying sideways or upside
    down, which the Haar cascade never did; the editor's crops are upright and its models know upright faces only,
    so a sideways photo without its EXIF rotation is reported as having no face rather than edited badly.
    ``model_path``: the ONNX file (default: ``checkpoints/face_detector/retinaface_mnet025.onnx``).
    ``num_threads``: onnxruntime's intra-op threads (default: 2, or 1 on a one-core machine).

    The onnxruntime session is created on the first :meth:`detect` (or :meth:`load`) and shared by every detector
    with the same file and threads; ``detect`` is safe to call from several threads at once.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, max_side: int | None = 640,
                 score_threshold: float = 0.7, nms_threshold: float = 0.4, framing: str = "haar",
                 max_roll: float | None = 45.0, num_threads: int | None = None):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        if not 0.0 <= score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), not {score_threshold}")
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        self.max_side = max_side
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.framing = framing
        self.max_roll = max_roll
        self.num_threads = int(num_threads) if num_threads is not None else DEFAULT_THREADS

    def __repr__(self) -> str:
        return (f"RetinaFaceDetector(max_side={self.max_side}, score_threshold={self.score_threshold}, "
                f"framing={self.framing!r}, max_roll={self.max_roll}, model_path='{self.model_path}')")

    def load(self) -> "RetinaFaceDetector":
        """Create the onnxruntime session now (it is otherwise made on the first photo); raises the errors
        :meth:`detect` would: :class:`MissingDependencyError` without onnxruntime, :class:`CheckpointError` for a
        missing or broken model file."""
        _session(str(self.model_path), self.num_threads)
        return self

    def detect(self, image: np.ndarray, min_size: float = 0) -> list[FaceBox]:
        """Faces in an ``H x W x 3`` uint8 RGB photo (grayscale and RGBA are converted), highest score first.

        ``min_size``: drop faces whose (framed) box is smaller, in pixels, or as a fraction of the photo's shorter
        side when < 1 (``detect_faces`` filters again in the same way, after clipping to the photo).
        """
        rgb = as_rgb_array(image)
        boxes, scores, landmarks = self.detect_arrays(rgb)
        if self.max_roll is not None and len(boxes):
            upright = np.abs(roll_degrees(landmarks)) <= self.max_roll
            boxes, scores, landmarks = boxes[upright], scores[upright], landmarks[upright]
        if self.framing == "haar":
            boxes = haar_framing_arrays(boxes, landmarks)
        height, width = rgb.shape[:2]
        min_px = min_size_pixels(min_size, height, width)
        faces = []
        for box, score, points in zip(boxes.tolist(), scores.tolist(), landmarks):
            face = FaceBox(*box, score=score, landmarks=points)
            if min(face.width, face.height) >= min_px:
                faces.append(face)
        return faces

    def detect_arrays(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RetinaFace's own output for one RGB uint8 photo, in photo pixels: boxes ``N x 4`` (x0, y0, x1, y1),
        scores ``N`` and landmarks ``N x 5 x 2``, after the score threshold and non-maximum suppression, best first."""
        session = _session(str(self.model_path), self.num_threads)
        height, width = image.shape[:2]
        shrink = 1.0 if not self.max_side else min(1.0, self.max_side / max(height, width))
        searched = image
        if shrink < 1.0:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            searched = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        h, w = searched.shape[:2]
        blob = cv2.dnn.blobFromImage(searched, 1.0, None, MEAN_BGR, swapRB=True)  # RGB -> BGR minus mean, NCHW
        loc, conf, landmarks = session.run(None, {"input": blob})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        anchors = _anchors(h, w)
        if len(anchors) != loc.shape[1]:
            raise CheckpointError(f"{self.model_path} returned {loc.shape[1]} boxes for a {w}x{h} input, where "
                                  f"RetinaFace-MobileNet0.25 has {len(anchors)} anchors: not the expected model.")
        anchors, scores = anchors[keep], scores[keep]
        centres, sizes = anchors[:, :2], anchors[:, 2:]
        offsets = loc[0, keep]
        box_centres = centres + offsets[:, :2] * VARIANCES[0] * sizes
        box_sizes = sizes * np.exp(offsets[:, 2:] * VARIANCES[1])
        boxes = np.concatenate([box_centres - box_sizes / 2, box_centres + box_sizes / 2], axis=1)
        points = centres[:, None] + landmarks[0, keep].reshape(-1, 5, 2) * VARIANCES[0] * sizes[:, None]

        order = np.argsort(-scores, kind="stable")[:5000]
        boxes, scores, points = boxes[order], scores[order], points[order]
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        chosen = np.asarray(cv2.dnn.NMSBoxes(xywh, scores, self.score_threshold, self.nms_threshold),
                            dtype=np.int64).reshape(-1)
        chosen = chosen[np.argsort(-scores[chosen], kind="stable")]
        return (boxes[chosen] / shrink).astype(np.float32), scores[chosen].astype(np.float32), \
            (points[chosen] / shrink).astype(np.float32)


def roll_degrees(landmarks: np.ndarray) -> np.ndarray:
    """How far each face (``N x 5 x 2`` landmarks) is turned in the image plane: the angle in degrees between the
    line from the eyes' midpoint to the mouth's and straight down; positive when the mouth lies to the left (smaller
    x) of the eyes, 180 for a face upside down."""
    points = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    down = (points[:, 3] + points[:, 4]) / 2 - (points[:, 0] + points[:, 1]) / 2
    return np.degrees(np.arctan2(-down[:, 0], down[:, 1]))


def haar_framing(box: FaceBox) -> FaceBox:
    """A RetinaFace box (``framing="raw"``) mapped to the square a Haar cascade draws around the same face: the
    framing of every training crop (see the constants above). Uses the landmarks when the box has them."""
    landmarks = None if box.landmarks is None else np.asarray(box.landmarks, np.float32)[None]
    mapped = haar_framing_arrays(np.array([[box.x0, box.y0, box.x1, box.y1]], np.float32), landmarks)[0]
    return FaceBox(*mapped.tolist(), score=box.score, mask=box.mask, landmarks=box.landmarks)


def haar_framing_arrays(boxes: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
    """:func:`haar_framing` for ``N x 4`` boxes and ``N x 5 x 2`` landmarks (or ``None``): ``N x 4`` squares."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    widths = boxes[:, 2] - boxes[:, 0]
    if landmarks is not None:
        points = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
        eyes = (points[:, 0] + points[:, 1]) / 2
        mouth = (points[:, 3] + points[:, 4]) / 2
        down = mouth - eyes
        length = np.linalg.norm(down, axis=1, keepdims=True)
        # "Down the face": towards the mouth; straight down where the landmarks coincide.
        down = np.where(length > 1e-6, down / np.maximum(length, 1e-6), np.array([0.0, 1.0], np.float32))
        centres = eyes + HAAR_CENTRE_BELOW_EYES * widths[:, None] * down
    else:
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2,
                            (boxes[:, 1] + boxes[:, 3]) / 2 - HAAR_CENTRE_UP_FROM_BOX * (boxes[:, 3] - boxes[:, 1])],
                           axis=1)
    half = (HAAR_SIDE * widths / 2)[:, None]
    return np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)


@lru_cache(maxsize=8)
def _anchors(height: int, width: int) -> np.ndarray:
    """``A x 4`` anchors (cx, cy, w, h) in input pixels, in the network's output order: per stride, per feature-map
    row and column, per size. A feature map has ``ceil(side / stride)`` cells, as the network's padded convs give."""
    parts = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        rows, cols = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        side = np.tile(np.asarray(sizes, np.float32), len(centres))
        parts.append(np.concatenate([np.repeat(centres, len(sizes), axis=0), side[:, None], side[:, None]], axis=1))
    anchors = np.concatenate(parts).astype(np.float32)
    anchors.flags.writeable = False
    return anchors


_SESSION_LOCK = threading.Lock()


def _session(path: str, threads: int) -> Any:
    with _SESSION_LOCK:  # one session per file and thread count, even when two requests arrive at once
        return _load_session(path, threads)


@lru_cache(maxsize=4)
def _load_session(path: str, threads: int) -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependencyError(
            "The default face detector (RetinaFace) needs onnxruntime: pip install onnxruntime. Without it, the "
            "Haar cascade works: ExpressionEditor(detector=\"haar\"), or --detector haar on the command line."
        ) from error
    model = Path(path)
    if not model.is_file():
        raise CheckpointError(
            f"The face detector model {model} is missing. It is committed in checkpoints/face_detector/ (git checkout "
            "checkpoints/face_detector) and train/tools/convert_retinaface.py rebuilds it; or use the Haar cascade: "
            "detector=\"haar\" (--detector haar).")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types for a bad file
        raise CheckpointError(f"Could not load the face detector model {model}: the file is corrupt, truncated or not "
                              f"an ONNX model ({type(error).__name__}: {error}). Expected sha256 {MODEL_SHA256} "
                              "(see checkpoints/face_detector/README.md).") from error
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != ["input"] or [o.shape[-1] for o in outputs] != [4, 2, 10]:
        raise CheckpointError(f"{model} is an ONNX model, but not RetinaFace's: expected one input named 'input' and "
                              "outputs of 4 (boxes), 2 (scores) and 10 (landmarks) values per anchor.")
    return session
