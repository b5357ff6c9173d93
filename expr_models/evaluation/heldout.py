"""The held-out faces: the test split of a prepared DatasetDict, decoded to grayscale crops, and their photos.

A dataset saved by ``python -m train.tools.prepare_data`` has the columns ``image``, ``expression``, ``subject`` and
``source``; its ``test`` split holds the subjects the models never saw in training.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..errors import ExpressionEditError
from ..io import load_image


class EvaluationDataError(ExpressionEditError):
    """A ``--data`` folder is not a usable DatasetDict (not one, no test split, no expression column)."""


@dataclass
class Face:
    """One held-out face crop as stored in the dataset (grayscale uint8), with its labels."""

    pixels: np.ndarray
    expression: str
    subject: str
    source: str
    path: str  # the source file's path inside its source folder, as the dataset stored it (finds the photo)

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.subject


@dataclass
class HeldOut:
    name: str
    path: Path
    split: str
    faces: list[Face]
    total: int  # faces in the split before --limit

    def info(self) -> dict:
        return {
            "path": str(self.path),
            "split": self.split,
            "faces": len(self.faces),
            "faces_in_split": self.total,
            "per_expression": dict(sorted(Counter(f.expression for f in self.faces).items())),
            "per_source": dict(sorted(Counter(f.source for f in self.faces).items())),
            "subjects": len({f.key for f in self.faces if f.subject}),
        }


def load_held_out(path: str | os.PathLike, split: str = "test", limit: int | None = None) -> HeldOut:
    """The ``split`` of the DatasetDict saved at ``path``, decoded to grayscale crops.

    Faces are sorted by (source, subject, file) so that runs agree; ``limit`` keeps at most ``limit`` faces of each
    expression, taken in turn from each source (FEI pairs stay together, as each subject has one face per
    expression).
    """
    from datasets import DatasetDict, Image as ImageFeature, load_from_disk

    path = Path(path)
    try:
        dsd = load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001 - datasets raises several types for a folder it cannot read
        raise EvaluationDataError(f"{path} is not a dataset saved with save_to_disk ({error})") from error
    if not isinstance(dsd, DatasetDict):
        raise EvaluationDataError(f"{path} holds a single Dataset; expected a DatasetDict with a {split!r} split")
    if split not in dsd:
        raise EvaluationDataError(f"{path} has no {split!r} split (it has {', '.join(dsd) or 'none'})")
    dataset = dsd[split]
    missing = {"image", "expression"} - set(dataset.column_names)
    if missing:
        raise EvaluationDataError(f"{path} [{split}] lacks the column(s) {', '.join(sorted(missing))}")
    names = dataset.features["expression"].names
    dataset = dataset.cast_column("image", ImageFeature(decode=False))  # bytes + stored path, decoded here

    faces = []
    for row in dataset:
        image = row["image"]
        with Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]) as opened:
            pixels = np.asarray(opened.convert("L"))
        faces.append(Face(pixels, names[row["expression"]], row.get("subject") or "", row.get("source") or "",
                          image.get("path") or ""))
    faces.sort(key=lambda f: (f.source, f.subject, f.path, f.expression))
    total = len(faces)
    if limit is not None:
        faces = _first_per_expression(faces, limit)
    return HeldOut(path.name, path, split, faces, total)


def _first_per_expression(faces: list[Face], limit: int) -> list[Face]:
    """At most ``limit`` faces per expression, taken in turn from each source so that a small limit still mixes
    the sources (in source order, each source's faces in sorted order: FEI pairs stay together)."""
    by_expression: dict[str, dict[str, list[Face]]] = {}
    for face in faces:
        by_expression.setdefault(face.expression, {}).setdefault(face.source, []).append(face)
    kept = []
    for sources in by_expression.values():
        queues = [list(reversed(group)) for _, group in sorted(sources.items())]
        taken = 0
        while taken < limit and any(queues):
            for queue in queues:
                if queue and taken < limit:
                    kept.append(queue.pop())
                    taken += 1
    return sorted(kept, key=lambda f: (f.source, f.subject, f.path, f.expression))


def to_tensor(faces: list[Face], resolution: int, channels: int = 1) -> torch.Tensor:
    """Stored crops -> ``N x channels x R x R`` in [-1, 1], resized as the pipeline resizes (area down, cubic up)."""
    arrays = []
    for face in faces:
        pixels = face.pixels
        if pixels.shape != (resolution, resolution):
            shrink = pixels.shape[0] > resolution
            pixels = cv2.resize(pixels, (resolution, resolution),
                                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        arrays.append(pixels.astype(np.float32) / 127.5 - 1.0)
    if not arrays:
        return torch.zeros(0, channels, resolution, resolution)
    tensor = torch.from_numpy(np.stack(arrays))[:, None]
    return tensor.expand(-1, channels, -1, -1).contiguous() if channels != 1 else tensor


# ---------------------------------------------------------------------------------------------------------------------
# The whole photos behind the crops (for the pipeline's paste-back check)
# ---------------------------------------------------------------------------------------------------------------------

def original_photo(face: Face, raw_data: Path | None) -> Path | None:
    """The face's source file in the raw data, ``<raw>/<source folder>/<stored path>``, if it is there."""
    from ..data import SOURCE_DIRS  # data imports datasets: only when a photo is looked up

    if raw_data is None or not face.path:
        return None
    path = raw_data / SOURCE_DIRS.get(face.source, face.source) / face.path
    return path if path.is_file() else None


def whole_photo(face: Face, raw_data: Path | None) -> tuple[np.ndarray, str]:
    """The face's original photo (RGB uint8) from the raw data, else its stored crop; and which of the two."""
    original = original_photo(face, raw_data)
    if original is not None:
        return np.asarray(load_image(original)), "original"
    return np.repeat(face.pixels[..., None], 3, axis=-1), "dataset image"
