"""Package every real face's mouth window for the learned mouth (``train/mouth_inpainter.py``): a ``DatasetDict`` in
``prepared/mouths`` with the project's person splits.

    python -m train.tools.cache_meshes --sets fei london jaffe genki4k     # the meshes (prepared/meshes)
    python -m train.tools.prepare_mouths                                   # -> prepared/mouths

Each row: ``id`` (the photo under ../shared/data), ``dataset``, ``frame`` (the 96 x 128 mouth window of
``expr_models.faces.mouth_frame``, RGB; grey photos are grey in all three channels), ``points`` (the 468-point mesh in
frame pixels) and ``gap`` (the inner-lip gap in eye distances: open mouths are rarer, the trainer oversamples them).

Sources: GENKI-4K (colour, 4,000 faces, smiling or not; no person ids, so every 20th photo is held out for
validation), the London Set's neutral and smiling photos (colour, 1024 px), FEI's neutral and smiling photos and
JAFFE's seven expressions (grey). FER2013 and CK+ are left out: their 48 px faces have mouths of about 15 px, which
the frame would blow up threefold. London, FEI and JAFFE keep the person splits of the other models, so the evaluation's
test people are never trained on.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from datasets import Array2D, Dataset, DatasetDict, DatasetInfo, Features, Image, Value

from expr_models.data.cards import TERMS
from expr_models.data.records import BuildReport
from expr_models.faces.mesh import inner_lip_gap
from expr_models.faces.mouth_frame import MouthFrame
from train.tools.prepare_meshes import framed_photos, labelled_photos, prepare_windows

SETS = ("genki4k", "london", "fei", "jaffe")
GENKI_VALIDATION_EVERY = 20
FEATURES = Features({
    "id": Value("string"),
    "dataset": Value("string"),
    "frame": Image(),
    "points": Array2D((468, 2), "float32"),
    "gap": Value("float32"),
})


def photo_split(photo_id: str, known: dict[str, tuple[str, str, str]]) -> str | None:
    """The split of a photo: the person split where the project has one; GENKI-4K's every 20th file is validation."""
    if photo_id.startswith("genki4k/"):
        number = int(Path(photo_id).stem.removeprefix("file"))
        return "validation" if number % GENKI_VALIDATION_EVERY == 0 else "train"
    return known[photo_id][2] if photo_id in known else None


def build_mouth_dataset(cache: Path, raw_data: Path) -> tuple[DatasetDict, BuildReport]:
    report = BuildReport("mouths")
    known = labelled_photos(raw_data, report)
    splits: dict[str, list[dict]] = {}
    for name, photo_id, split, rgb, frame, points in framed_photos(
            cache, raw_data, SETS, lambda photo_id: photo_split(photo_id, known), MouthFrame.from_points, report):
        splits.setdefault(split, []).append({
            "id": photo_id, "dataset": name, "frame": frame.crop(rgb),
            "points": frame.to_frame(points).astype(np.float32), "gap": float(inner_lip_gap(points))})
    description = ("Mouth windows (96 x 128, the mouth level and 56 px wide) and face meshes of the photos of "
                   f"../shared/data, with the project's person splits. {TERMS}")
    dataset = DatasetDict()
    for split, rows in sorted(splits.items()):
        info = DatasetInfo(description=description, license="other", features=FEATURES)
        dataset[split] = Dataset.from_list(rows, features=FEATURES, info=info)
    return dataset, report


def main(argv: list[str] | None = None) -> int:
    return prepare_windows(argv, __doc__.split("\n\n")[0], "mouths", build_mouth_dataset,
                           lambda rows: ", ".join(f"{name} {count}"
                                                  for name, count in sorted(Counter(rows["dataset"]).items())))


if __name__ == "__main__":
    cv2.setNumThreads(1)
    sys.exit(main())
