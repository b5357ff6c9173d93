"""Prepare aligned colour faces for the warp-and-refine CycleGAN: subject pairs (neutral | happy) and unpaired GENKI-4K.

    python -m train.tools.prepare_aligned --data ../shared/data --out prepared/aligned_happy [--resolution 128]

Every face goes through ``expr_models.alignment`` (the editor's frame and resampling):
- pairs (``expr_models.paired_faces``, neutral -> happy; FEI, the London Set, JAFFE): the neutral photo is aligned by
  its five RetinaFace points, the happy photo is put into the *neutral's* frame by its eyes and nose tip
  (``align_to``), so head motion is removed and the smile's own motion stays. Grey photos (FEI, JAFFE) become three
  equal channels. Splits ``train`` and ``validation`` follow the project's subject split; the ``test`` subjects are
  never written.
- ``genki``: every GENKI-4K photo with a face, aligned by its five points, with its smile label (1 smiling, 0 not).
  GENKI has no subject ids and no pairs: it only feeds the adversarial and cycle losses.

Writes a ``datasets.DatasetDict`` (``save_to_disk``): ``train`` / ``validation`` with columns ``neutral``, ``happy``
(images), ``dataset``, ``subject``; ``genki`` with ``image`` and ``smile``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from expr_models.alignment import align_face, retinaface_points, warp_to_frame
from expr_models.paired_faces import GRAYSCALE_SOURCES, photo_pairs
from train.average_edit import PointCache, pair_crops, read_rgb

PAIR_SPLITS = ("train", "validation")  # never "test": those subjects are held out from every training step


def _grey3(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def pair_rows(data: Path, split: str, size: int, points: PointCache) -> tuple[dict, list[str]]:
    rows = {"neutral": [], "happy": [], "dataset": [], "subject": []}
    skipped = []
    for pair in photo_pairs(data, split):
        if pair.pair != "neutral->happy":
            continue
        made = pair_crops(pair, size, points)
        if made is None:
            skipped.append(f"{pair.dataset}:{pair.source_path.name}")
            continue
        neutral, happy = made
        if pair.dataset in GRAYSCALE_SOURCES:
            neutral, happy = _grey3(neutral), _grey3(happy)
        rows["neutral"].append(neutral)
        rows["happy"].append(happy)
        rows["dataset"].append(pair.dataset)
        rows["subject"].append(f"{pair.dataset}:{pair.subject}")
    return rows, skipped


def genki_rows(folder: Path, size: int, limit: int | None = None) -> tuple[dict, list[str]]:
    labels = [int(line.split()[0]) for line in (folder / "labels.txt").read_text().split("\n") if line.strip()]
    rows = {"image": [], "smile": []}
    skipped = []
    for number, smile in enumerate(labels[:limit] if limit else labels, start=1):
        path = folder / "files" / f"file{number:04d}.jpg"
        if not path.is_file():
            skipped.append(path.name)
            continue
        photo = read_rgb(path)
        points = retinaface_points(photo)
        if points is None:
            skipped.append(path.name)
            continue
        rows["image"].append(warp_to_frame(photo, align_face(points, size)))
        rows["smile"].append(smile)
    return rows, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("prepared/aligned_happy"))
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--genki-limit", type=int, default=None, help="at most this many GENKI photos (quick runs)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"No data folder at {args.data}", file=sys.stderr)
        return 2
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

    start = time.perf_counter()
    points = PointCache()
    pair_features = Features({"neutral": Image(), "happy": Image(), "dataset": Value("string"),
                              "subject": Value("string")})
    splits = {}
    for split in PAIR_SPLITS:
        rows, skipped = pair_rows(args.data, split, args.resolution, points)
        splits[split] = Dataset.from_dict(rows, features=pair_features)
        print(f"{split}: {len(rows['subject'])} pairs, skipped {len(skipped)} {skipped[:5]}", flush=True)
    if (args.data / "genki4k").is_dir():
        rows, skipped = genki_rows(args.data / "genki4k", args.resolution, args.genki_limit)
        features = Features({"image": Image(), "smile": ClassLabel(names=["no_smile", "smile"])})
        splits["genki"] = Dataset.from_dict(rows, features=features)
        print(f"genki: {len(rows['smile'])} faces ({sum(rows['smile'])} smiling), skipped {len(skipped)}", flush=True)
    DatasetDict(splits).save_to_disk(str(args.out))
    print(f"Wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
