"""Face detection on WIDER FACE: AP@0.5 of the default RetinaFace detector, the Haar cascade and the trained segmenter.

    python -m expr_models evaluate --models checkpoints --data prepared/wider --limit 150

A ``--data`` folder whose rows carry WIDER's ``faces`` column (``python -m train.tools.prepare_data --source wider``) is
evaluated here instead of as expression faces. Every detector runs through ``expr_models.faces.detection.detect_faces``,
as the editing pipeline calls it, with the same smallest face (``min_face`` pixels) and the same score threshold.
RetinaFace is scored on its own boxes (``framing="raw"``, brows to chin, like WIDER's) and at any roll, not on the
Haar-framed squares the editor crops from, of the upright faces it edits: those are the editor's choices, the detection
is the same.

Ground truth: the valid WIDER faces whose longer side is at least ``min_face`` pixels. Faces WIDER flags invalid and
faces smaller than ``min_face`` are *ignored*: a detection on one counts neither way (the editor would not edit a face
it cannot crop, and a detector is not blamed for finding one). Matching is PASCAL VOC's: detections in order of score,
each taking the unmatched ground-truth face it overlaps most, at IoU >= the threshold; AP is the area under the
interpolated precision-recall curve (:func:`expr_models.evaluation.metrics.average_precision`).

Haar boxes run from the brows to the mouth while WIDER's enclose the whole head, so at IoU 0.5 a correct Haar
detection often counts as a miss; AP at IoU 0.3 is reported beside it for that reason. Detectors report only boxes
above their score threshold (RetinaFace 0.7), so the curves stop there: AP as the editor sees the detector.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..faces.detection import HaarFaceDetector, RetinaFaceDetector, detect_faces
from . import metrics

IOU_THRESHOLDS = (0.5, 0.3)
DEFAULT_MIN_FACE = 24  # the editing pipeline's default smallest face, in pixels


@dataclass
class AnnotatedPhoto:
    image: np.ndarray  # H x W x 3 uint8 RGB
    faces: np.ndarray  # N x 4 xyxy: the faces a detector should find
    ignored: np.ndarray  # M x 4 xyxy: invalid or too small; detections on them are not counted
    file: str


def is_detection_dataset(path: str | os.PathLike) -> bool:
    """True for a DatasetDict saved by ``prepare_data --source wider`` (rows with a ``faces`` list)."""
    from datasets import load_from_disk

    try:
        dsd = load_from_disk(str(path))
    except Exception:  # noqa: BLE001 - not a dataset at all: the expression loader reports that properly
        return False
    return any("faces" in split.column_names for split in dsd.values())


def load_annotated_photos(path: str | os.PathLike, split: str = "validation", limit: int | None = None,
                          min_face: float = DEFAULT_MIN_FACE) -> list[AnnotatedPhoto]:
    """The first ``limit`` photos of ``split``, in file order, with their faces split into counted and ignored."""
    from datasets import Image as ImageFeature, load_from_disk

    dataset = load_from_disk(str(path))[split].cast_column("image", ImageFeature(decode=False))
    rows = sorted(dataset, key=lambda row: row["file"])[:limit]
    photos = []
    for row in rows:
        stored = row["image"]
        with Image.open(io.BytesIO(stored["bytes"]) if stored.get("bytes") else stored["path"]) as opened:
            image = np.asarray(opened.convert("RGB"))
        counted, ignored = [], []
        for face in row["faces"]:
            if face["w"] <= 0 or face["h"] <= 0:
                continue
            box = (face["x1"], face["y1"], face["x1"] + face["w"], face["y1"] + face["h"])
            small = max(face["w"], face["h"]) < min_face
            (ignored if face.get("invalid") or small else counted).append(box)
        photos.append(AnnotatedPhoto(image, np.array(counted, np.float32).reshape(-1, 4),
                                     np.array(ignored, np.float32).reshape(-1, 4), row["file"]))
    return photos


def evaluate_detector(detector: Any, photos: list[AnnotatedPhoto], min_face: float = DEFAULT_MIN_FACE,
                      iou_thresholds: tuple[float, ...] = IOU_THRESHOLDS) -> dict:
    """AP, recall and precision of one detector (``None``: the default, RetinaFace in the Haar framing; pass
    ``RetinaFaceDetector(framing="raw")`` to score its own boxes) over ``photos``."""
    per_photo, seconds = [], []
    for photo in photos:
        tick = time.perf_counter()
        boxes = detect_faces(photo.image, min_size=min_face, detector=detector)
        seconds.append(time.perf_counter() - tick)
        per_photo.append((np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], np.float32).reshape(-1, 4),
                          np.array([b.score for b in boxes], np.float32)))
    result: dict[str, Any] = {
        "photos": len(photos),
        "faces": int(sum(len(p.faces) for p in photos)),
        "detections": int(sum(len(d[0]) for d in per_photo)),
        "seconds_per_photo_median": float(np.median(seconds)) if seconds else None,
    }
    for threshold in iou_thresholds:
        scores, matched, ignored = [], [], []
        for photo, (boxes, box_scores) in zip(photos, per_photo):
            is_match, is_ignored = metrics.match_detections(boxes, box_scores, photo.faces, photo.ignored, threshold)
            scores.append(box_scores)
            matched.append(is_match)
            ignored.append(is_ignored)
        scores_all, matched_all = np.concatenate(scores), np.concatenate(matched)
        keep = ~np.concatenate(ignored)
        key = f"iou_{threshold:g}"
        result[key] = metrics.average_precision(scores_all[keep], matched_all[keep], result["faces"])
    return result


def evaluate_detectors(path: str | os.PathLike, segmenter: Any = None, split: str = "validation",
                       limit: int | None = None, min_face: float = DEFAULT_MIN_FACE) -> dict:
    """The default RetinaFace (its raw boxes), the Haar cascade and, when given, the trained segmenter, on the same
    photos of a prepared WIDER dataset."""
    photos = load_annotated_photos(path, split, limit, min_face)
    # RetinaFace's own boxes, at any roll: what it detects, not the editor's choice of crop and of faces to edit.
    retinaface = RetinaFaceDetector(framing="raw", max_roll=None)
    result: dict[str, Any] = {
        "data": {"path": str(path), "split": split, "photos": len(photos), "min_face": min_face,
                 "faces": int(sum(len(p.faces) for p in photos)),
                 "ignored_faces": int(sum(len(p.ignored) for p in photos))},
        "detectors": {"retinaface (default)": evaluate_detector(retinaface, photos, min_face),
                      "haar": evaluate_detector(HaarFaceDetector(), photos, min_face)},
    }
    if segmenter is not None:
        result["detectors"]["segmenter"] = evaluate_detector(segmenter, photos, min_face)
    return result


def markdown_table(result: dict) -> list[str]:
    data = result["data"]
    lines = [f"Photos: {data['photos']} of the `{data['split']}` split of `{Path(data['path']).name}`; "
             f"{data['faces']} faces of at least {data['min_face']:g} px counted, {data['ignored_faces']} ignored "
             "(invalid or smaller).", "",
             "| detector | AP@0.5 | recall@0.5 | AP@0.3 | recall@0.3 | detections | s / photo (median) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in result["detectors"].items():
        at50, at30 = row["iou_0.5"], row["iou_0.3"]
        lines.append(f"| {name} | {at50['ap']:.3f} | {at50['recall']:.3f} | {at30['ap']:.3f} | {at30['recall']:.3f} "
                     f"| {row['detections']} | {row['seconds_per_photo_median']:.3f} |")
    return lines
