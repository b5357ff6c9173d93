"""Finding faces: the detector protocol, the detectors by name, and :func:`detect_faces`, which every caller uses.

    boxes = detect_faces(photo)                          # RetinaFace, largest first, boxes in the Haar framing
    boxes = detect_faces(photo, detector=make_detector("haar"))

Every detector returns face boxes (:class:`~expr_models.faces.geometry.FaceBox`) in the framing the training crops were
cut with (the Haar cascade's): RetinaFace (:mod:`.retinaface`, the default; onnxruntime, the model committed in
checkpoints/face_detector/) maps its own boxes to it, and OpenCV's Haar cascade (:mod:`.haar`) draws it. Any object with
``detect(image) -> list[FaceBox]`` (e.g. the trained ``FaceSegmenter``) can be used instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..geometry import FaceBox
from .common import as_rgb_array, min_size_pixels
from .haar import HaarFaceDetector
from .retinaface import DEFAULT_MODEL_PATH, MODEL_FILENAME, RetinaFaceDetector

# The named detectors; the first is the default. "segmenter" is the trained Mask R-CNN checkpoint, which the editor
# loads with its other models (ExpressionEditor.face_detector); its masks then shape the blend.
DETECTORS = ("retinaface", "haar", "segmenter")


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(rgb_uint8_array) -> list[FaceBox]``, boxes in the Haar framing."""

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


def make_detector(name: str, models_dir: str | os.PathLike | None = None) -> FaceDetector:
    """A new detector called ``name`` (``retinaface`` or ``haar``). RetinaFace reads
    ``<models_dir>/face_detector/retinaface_mnet025.onnx`` when that file exists, else the committed model."""
    if name == "haar":
        return HaarFaceDetector()
    if name == "retinaface":
        local = Path(models_dir) / "face_detector" / MODEL_FILENAME if models_dir is not None else None
        return RetinaFaceDetector(local if local is not None and local.is_file() else DEFAULT_MODEL_PATH)
    if name == "segmenter":
        raise ValueError("The segmenter is a trained checkpoint: ExpressionEditor(detector='segmenter') loads it, or "
                         "pass a FaceSegmenter object as the detector.")
    raise ValueError(f"Unknown face detector {name!r}; expected one of {', '.join(DETECTORS)} or an object with a "
                     "detect(image) method")


_DEFAULT_DETECTOR: RetinaFaceDetector | None = None


def default_detector() -> RetinaFaceDetector:
    """The shared default detector: RetinaFace in the Haar framing (its onnxruntime session is made on the first
    photo)."""
    global _DEFAULT_DETECTOR
    if _DEFAULT_DETECTOR is None:
        _DEFAULT_DETECTOR = RetinaFaceDetector()
    return _DEFAULT_DETECTOR


def detect_faces(image: Image.Image | np.ndarray, min_size: float = 24,
                 detector: FaceDetector | Any = None) -> list[FaceBox]:
    """All faces in ``image``, largest first, clipped to the photo.

    ``min_size``: the smallest face side to report, in pixels, or as a fraction of the shorter image side when < 1.
    ``detector``: ``None`` for the default (RetinaFace, boxes in the Haar framing), a :class:`HaarFaceDetector`, or
    any object with ``detect(image) -> list[FaceBox]``.
    Outputs in other shapes (a dict or object with ``boxes``/``scores``/``masks``, as a torchvision-style
    segmenter returns) are converted.
    """
    array = as_rgb_array(image)
    height, width = array.shape[:2]
    detector = default_detector() if detector is None else detector
    if isinstance(detector, HaarFaceDetector):
        raw = detector.detect(array, min_size=min_size)
    elif hasattr(detector, "detect"):
        raw = detector.detect(array)
    elif callable(detector):
        raw = detector(array)
    else:
        raise TypeError(f"A face detector needs a detect(image) method; got {type(detector).__name__}")
    boxes = _to_face_boxes(raw)

    min_px = min_size_pixels(min_size, height, width)
    kept = []
    for box in boxes:
        # Clip to the photo; a segmenter may return boxes that run off the edge.
        box = FaceBox(max(0.0, box.x0), max(0.0, box.y0), min(float(width), box.x1), min(float(height), box.y1),
                      box.score, box.mask, box.landmarks)
        if min(box.width, box.height) >= min_px and box.area > 0:
            kept.append(box)
    return sorted(kept, key=lambda b: b.area, reverse=True)


def _to_face_boxes(raw: Any) -> list[FaceBox]:
    if isinstance(raw, (list, tuple)) and all(isinstance(b, FaceBox) for b in raw):
        return list(raw)
    if isinstance(raw, (list, tuple)) and all(isinstance(b, dict) and "box" in b for b in raw):
        # FaceSegmenter.detect: [{box: (x0, y0, x1, y1), score, mask: H x W or None}]
        return [FaceBox(*map(float, b["box"]), float(b.get("score", 1.0)), _numpy(b.get("mask"))) for b in raw]
    # dict or object with boxes (N x 4, xyxy), scores (N) and optional masks (N x H x W or N x 1 x H x W)
    get = raw.get if isinstance(raw, dict) else lambda key, default=None: getattr(raw, key, default)
    boxes = _numpy(get("boxes"))
    if boxes is None:
        raise TypeError(f"Cannot read face boxes from a {type(raw).__name__}")
    boxes = boxes.reshape(-1, 4)
    scores = _numpy(get("scores", None))
    masks = _numpy(get("masks", None))
    result = []
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        mask = None
        if masks is not None:
            mask = masks[i]
            mask = mask[0] if mask.ndim == 3 else mask
        result.append(FaceBox(x0, y0, x1, y1, 1.0 if scores is None else float(scores[i]), mask))
    return result


def _numpy(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


__all__ = ["DETECTORS", "FaceDetector", "HaarFaceDetector", "RetinaFaceDetector", "as_rgb_array", "default_detector",
           "detect_faces", "make_detector", "min_size_pixels"]
