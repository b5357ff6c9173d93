"""Package every labelled real face's upper face for the learned brows, or its lower face for the learned lower face
(``train/brow_inpainter.py``): a ``DatasetDict`` in ``prepared/brows`` (``prepared/lower_face``) with the project's
person splits.

    python -m train.tools.cache_meshes --sets fer2013_train ckplus48 jaffe fei london   # the meshes (prepared/meshes)
    python -m train.tools.prepare_brows                                                 # -> prepared/brows
    python -m train.tools.prepare_brows --region lower_face                             # -> prepared/lower_face

Each row: ``id`` (the photo under ../shared/data), ``dataset``, ``expression`` (its label), ``frame`` (the grey
window of the region's frame, ``expr_models.faces.inpaint_regions``: 40 x 56 for the upper face, 48 x 56 for the
lower) and ``points`` (the 468-point mesh in frame pixels).

Sources: FER2013's training faces (28,000, seven expressions, 48 px: the frame's own scale), CK+ (posed, seven),
JAFFE (seven), FEI and the London Set (neutral and smiling; colour made grey). GENKI-4K is left out: only its smiles
are labelled. FER2013 keeps its stratified validation split; CK+, JAFFE, FEI and London their person splits, so the
evaluation's test people are never trained on.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Image, Value

from expr_models.data.cards import TERMS
from expr_models.data.records import BuildReport
from expr_models.faces.inpaint_regions import REGIONS
from expr_models.labels import EXPRESSIONS
from train.tools.prepare_meshes import framed_photos, labelled_photos, prepare_windows

OUT_NAMES = {"upper_face": "brows", "lower_face": "lower_face"}  # prepared/<name>
SETS = ("fer2013_train", "ckplus48", "jaffe", "fei", "london")
FEATURES = Features({
    "id": Value("string"),
    "dataset": Value("string"),
    "expression": ClassLabel(names=list(EXPRESSIONS)),
    "frame": Image(),
    "points": Array2D((468, 2), "float32"),
})


def build_region_dataset(cache: Path, raw_data: Path, region: str = "upper_face") -> tuple[DatasetDict, BuildReport]:
    report = BuildReport(OUT_NAMES[region])
    frame_class = REGIONS[region].frame
    known = labelled_photos(raw_data, report)
    splits: dict[str, list[dict]] = {}

    def split_of(photo_id: str) -> str | None:
        return known[photo_id][2] if photo_id in known and known[photo_id][1] in EXPRESSIONS else None

    for name, photo_id, split, rgb, frame, points in framed_photos(cache, raw_data, SETS, split_of,
                                                                   frame_class.from_points, report):
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        splits.setdefault(split, []).append({
            "id": photo_id, "dataset": known[photo_id][0], "expression": EXPRESSIONS.index(known[photo_id][1]),
            "frame": frame.crop(grey), "points": frame.to_frame(points).astype(np.float32)})
    height, width = REGIONS[region].size
    title = region.replace("_", "-").capitalize()
    description = (f"{title} windows ({height} x {width} grey, the eyes level and 20 px "
                   "apart), expression labels and face meshes of the labelled photos of ../shared/data, with the "
                   f"project's person splits. {TERMS}")
    dataset = DatasetDict()
    for split, rows in sorted(splits.items()):
        info = DatasetInfo(description=description, license="other", features=FEATURES)
        dataset[split] = Dataset.from_list(rows, features=FEATURES, info=info)
    return dataset, report


def split_summary(rows: Dataset) -> str:
    """Each source's and each expression's count in one split."""
    names = rows.features["expression"].names
    return "; ".join([", ".join(f"{name} {count}" for name, count in sorted(Counter(rows["dataset"]).items())),
                      ", ".join(f"{names[label]} {count}" for label, count in sorted(Counter(rows["expression"]).items()))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--region", choices=sorted(REGIONS), default="upper_face",
                        help="the face region's windows (default the upper face, for the learned brows)")
    known, rest = parser.parse_known_args(argv)
    return prepare_windows(rest, __doc__.split("\n\n")[0], OUT_NAMES[known.region],
                           lambda cache, raw: build_region_dataset(cache, raw, known.region), split_summary,
                           parents=[parser])


if __name__ == "__main__":
    cv2.setNumThreads(1)
    sys.exit(main())
