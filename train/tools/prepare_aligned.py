"""Prepare aligned colour faces for the warp-and-refine GANs: subject pairs (neutral | happy) and unpaired GENKI-4K for
the CycleGAN; directed pairs of every expression for the SA-GAN.

    python -m train.tools.prepare_aligned --data ../shared/data --out prepared/aligned_happy [--resolution 128]
    python -m train.tools.prepare_aligned --pairs expressions --out prepared/aligned_expressions

Every face goes through ``expr_models.faces.alignment`` (the editor's frame and resampling):
- pairs (``expr_models.data.paired_faces``; FEI, the London Set, JAFFE): each photo of a pair is aligned by its own five
  RetinaFace points, as the editor aligns it (``neutral``, ``happy``), and the other photo is put into that frame by
  its eyes and nose tip only (``align_to``: ``happy_in_neutral_frame``, ``neutral_in_happy_frame``), so head motion
  is removed and the expression's own motion stays. (A smile's wider mouth corners change the five-point frame, so
  each direction is trained on its input's own framing.) Grey photos (FEI, JAFFE) become three equal channels. Splits ``train`` and ``validation`` follow the project's subject split; the ``test`` subjects are
  never written.
- ``genki``: every GENKI-4K photo with a face, aligned by its five points, with its smile label (1 smiling, 0 not).
  GENKI has no subject ids and no pairs: it only feeds the adversarial and cycle losses.

Writes a ``datasets.DatasetDict`` (``save_to_disk``): ``train`` / ``validation`` with the image columns ``neutral``,
``happy_in_neutral_frame``, ``happy``, ``neutral_in_happy_frame`` and ``dataset``, ``subject``; ``genki`` with
``image`` and ``smile``.

``--pairs expressions`` (the warp-and-refine SA-GAN) writes instead one row per directed photo pair: JAFFE's first
neutral take -> each take of each other expression and each happy take -> that neutral, plus (unless
``--jaffe-only``) FEI and London neutral <-> happy in both directions, as extra happy/neutral supervision. Columns:
``source`` (aligned by its own five points), ``target_in_source_frame`` (the target photo put into that frame by its
eyes and nose tip), ``source_expression``, ``target_expression`` (names from ``expr_models.labels``), ``dataset``,
``subject``. No GENKI split. The ``test`` subjects are never written here either.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from expr_models.data.paired_faces import GRAYSCALE_SOURCES, photo_pairs
from expr_models.faces.alignment import align_face, retinaface_points, warp_to_frame
from train.average_edit import PointCache, pair_crops, read_rgb

PAIR_SPLITS = ("train", "validation")  # never "test": those subjects are held out from every training step


def _grey3(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


IMAGE_COLUMNS = ("neutral", "happy_in_neutral_frame", "happy", "neutral_in_happy_frame")


def aligned_pair(pair, size: int, points: PointCache, skipped: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The pair's source photo and its target in the source's frame (grey sources as three equal channels), or
    None, noted in ``skipped``, when a photo has no face."""
    crops = pair_crops(pair, size, points)
    if crops is None:
        skipped.append(f"{pair.dataset}:{pair.source_path.name}")
        return None
    if pair.dataset in GRAYSCALE_SOURCES:
        crops = tuple(_grey3(crop) for crop in crops)
    return crops


def pair_rows(data: Path, split: str, size: int, points: PointCache) -> tuple[dict, list[str]]:
    """One row per (neutral photo, happy photo) of a subject, in both photos' frames."""
    made: dict[tuple, dict] = {}
    skipped = []
    for pair in photo_pairs(data, split):
        if pair.pair not in ("neutral->happy", "happy->neutral"):
            continue
        neutral_path, happy_path = ((pair.source_path, pair.target_path) if pair.pair == "neutral->happy"
                                    else (pair.target_path, pair.source_path))
        crops = aligned_pair(pair, size, points, skipped)
        if crops is None:
            continue
        row = made.setdefault((pair.dataset, pair.subject, neutral_path, happy_path),
                              {"dataset": pair.dataset, "subject": f"{pair.dataset}:{pair.subject}"})
        if pair.pair == "neutral->happy":
            row["neutral"], row["happy_in_neutral_frame"] = crops
        else:
            row["happy"], row["neutral_in_happy_frame"] = crops
    rows = {name: [] for name in (*IMAGE_COLUMNS, "dataset", "subject")}
    for row in made.values():
        if all(name in row for name in IMAGE_COLUMNS):
            for name in rows:
                rows[name].append(row[name])
    return rows, skipped


EXPRESSION_PAIR_COLUMNS = ("source", "target_in_source_frame", "source_expression", "target_expression", "dataset",
                           "subject")


def expression_pair_rows(data: Path, split: str, size: int, points: PointCache,
                         datasets: tuple[str, ...] = ("jaffe", "fei", "london")) -> tuple[dict, list[str]]:
    """One row per directed photo pair (source photo, target photo in the source's frame) of ``split``'s subjects."""
    rows = {name: [] for name in EXPRESSION_PAIR_COLUMNS}
    skipped = []
    for pair in photo_pairs(data, split, datasets):
        crops = aligned_pair(pair, size, points, skipped)
        if crops is None:
            continue
        values = (*crops, pair.source_expression, pair.target_expression, pair.dataset,
                  f"{pair.dataset}:{pair.subject}")
        for name, value in zip(EXPRESSION_PAIR_COLUMNS, values):
            rows[name].append(value)
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
    parser.add_argument("--pairs", choices=("happy", "expressions"), default="happy",
                        help="happy: the CycleGAN's neutral|happy pairs and GENKI; expressions: the SA-GAN's directed "
                             "pairs of every expression")
    parser.add_argument("--jaffe-only", action="store_true", help="expressions: JAFFE alone (no FEI/London pairs)")
    parser.add_argument("--genki-limit", type=int, default=None, help="at most this many GENKI photos (quick runs)")
    parser.add_argument("--genki-from", type=Path, default=None,
                        help="copy the genki split of an earlier prepared folder instead of aligning it again")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"No data folder at {args.data}", file=sys.stderr)
        return 2
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

    start = time.perf_counter()
    points = PointCache()
    pair_features = Features({**{name: Image() for name in IMAGE_COLUMNS}, "dataset": Value("string"),
                              "subject": Value("string")})
    splits = {}
    if args.pairs == "expressions":
        datasets = ("jaffe",) if args.jaffe_only else ("jaffe", "fei", "london")
        features = Features({"source": Image(), "target_in_source_frame": Image(),
                             **{name: Value("string") for name in EXPRESSION_PAIR_COLUMNS[2:]}})
        for split in PAIR_SPLITS:
            rows, skipped = expression_pair_rows(args.data, split, args.resolution, points, datasets)
            splits[split] = Dataset.from_dict(rows, features=features)
            print(f"{split}: {len(rows['subject'])} pairs, skipped {len(skipped)} {skipped[:5]}", flush=True)
        DatasetDict(splits).save_to_disk(str(args.out))
        print(f"Wrote {args.out} in {time.perf_counter() - start:.0f} s")
        return 0
    for split in PAIR_SPLITS:
        rows, skipped = pair_rows(args.data, split, args.resolution, points)
        splits[split] = Dataset.from_dict(rows, features=pair_features)
        print(f"{split}: {len(rows['subject'])} pairs, skipped {len(skipped)} {skipped[:5]}", flush=True)
    if args.genki_from is not None:
        from datasets import load_from_disk

        splits["genki"] = load_from_disk(str(args.genki_from))["genki"]
    elif (args.data / "genki4k").is_dir():
        rows, skipped = genki_rows(args.data / "genki4k", args.resolution, args.genki_limit)
        features = Features({"image": Image(), "smile": ClassLabel(names=["no_smile", "smile"])})
        splits["genki"] = Dataset.from_dict(rows, features=features)
        print(f"genki: {len(rows['smile'])} faces ({sum(rows['smile'])} smiling), skipped {len(skipped)}", flush=True)
    DatasetDict(splits).save_to_disk(str(args.out))
    print(f"Wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
