"""The expression classifier's face arrays: every labelled face of ../shared/data, cut as the editor cuts it, in one
``.npz`` per split, and the dataset that reads them.

    python -m train.classifier_data ../shared/data --out prepared/classifier_faces --resolution 48

Sources and splits (the project's seed-0 splits, so the evaluation's held-out people stay held out):
- FER2013: its train split less the 10% validation carve-out (``scan_fer2013``), its test split as test;
- CK+: by subject (``scan_ckplus``); contempt left out (not one of the seven);
- JAFFE and FEI: by subject (``split_by_subject``); the London Set: by person (``split_subjects`` over its ids, as
  ``expr_models.data.paired_faces``); these photos are cut by the editor's default detector (RetinaFace in the Haar
  framing) and :class:`~expr_models.faces.processing.FaceImageProcessor`, then reduced to luminance at ``resolution``,
  exactly the editor's ``read_expressions`` path. FER2013 and CK+ are already face crops and are only resized.
- GENKI-4K: smile / no smile, partial evidence: a smile is ``happy``; no smile only says "not happy"
  (``not_label``). No subjects: a seeded 10% goes to validation, none to test.

Each split holds ``images`` (``N x R x R`` uint8 luminance), ``labels`` (index into ``EXPRESSIONS``, -100 where
unknown), ``not_labels`` (an index the face is known not to be, else -100), ``sources`` and ``subjects``.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from train.data import AugmentedDataset

IGNORE = -100
SPLITS = ("train", "validation", "test")
GENKI_VALIDATION_FRACTION = 0.1


def _luminance_crop(image: np.ndarray, resolution: int) -> np.ndarray:
    from expr_models.faces.processing import FaceImageProcessor

    tensor = FaceImageProcessor().to_tensor(image, resolution, 1)[0, 0]
    return np.rint((tensor.numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def _editor_crop(path: Path, resolution: int) -> np.ndarray | None:
    """The photo's largest face as the editor reads it, or None where the detector finds none."""
    from expr_models.faces.detection import detect_faces
    from expr_models.io import load_image
    from expr_models.faces.processing import FaceImageProcessor

    photo = np.asarray(load_image(path).convert("RGB"))
    boxes = detect_faces(photo)
    if not boxes:
        return None
    crop, _ = FaceImageProcessor().crop(photo, boxes[0])
    return _luminance_crop(crop, resolution)


def collect(data_root: Path, resolution: int, seed: int = 0, genki_limit: int | None = None,
            splits: tuple[str, ...] = SPLITS) -> dict[str, dict]:
    """Every face of the sources in ``splits``, by split (see the module docstring)."""
    from PIL import Image

    from expr_models.data.records import BuildReport
    from expr_models.data.sources import SOURCE_DIRS, scan_ckplus, scan_fei, scan_fer2013, scan_jaffe
    from expr_models.data.splits import split_by_subject, split_subjects
    from expr_models.labels import EXPRESSIONS
    from expr_models.data.paired_faces import LONDON_NEUTRAL

    report = BuildReport("classifier_faces")
    rows: dict[str, dict[str, list]] = {split: {"images": [], "labels": [], "not_labels": [], "sources": [],
                                                "subjects": []} for split in splits}
    missed: Counter = Counter()

    def wanted(split: str) -> bool:
        return split in rows

    def add(split, image, label, source, subject, not_label=IGNORE):
        part = rows[split]
        part["images"].append(image)
        part["labels"].append(label)
        part["not_labels"].append(not_label)
        part["sources"].append(source)
        part["subjects"].append(subject)

    for record in scan_fer2013(data_root / SOURCE_DIRS["fer2013"], report, seed):
        if wanted(record.split):
            add(record.split, _luminance_crop(np.asarray(Image.open(record.path).convert("L")), resolution),
                EXPRESSIONS.index(record.expression), "fer2013", "")
    for record in scan_ckplus(data_root / SOURCE_DIRS["ckplus"], report, seed):
        if record.expression in EXPRESSIONS and wanted(record.split):
            add(record.split, _luminance_crop(np.asarray(Image.open(record.path).convert("L")), resolution),
                EXPRESSIONS.index(record.expression), "ckplus", record.subject)
    photo_records = split_by_subject(scan_jaffe(data_root / SOURCE_DIRS["jaffe"], report), seed, report)
    photo_records += split_by_subject(scan_fei(data_root / SOURCE_DIRS["fei"], report), seed, report)
    for record in photo_records:
        if not wanted(record.split):
            continue
        crop = _editor_crop(record.path, resolution)
        if crop is None:
            missed[record.source] += 1
            continue
        add(record.split, crop, EXPRESSIONS.index(record.expression), record.source, record.subject)

    london = data_root / "london"
    if london.is_dir():
        people = {m["subject"]: p for p in sorted((london / "neutral").iterdir())
                  if (m := LONDON_NEUTRAL.match(p.name))}
        split = split_subjects(list(people), seed)
        for person, neutral in people.items():
            if not wanted(split[person]):
                continue
            for path, expression in ((neutral, "neutral"), (london / "smiling" / f"{person}_08.jpg", "happy")):
                crop = _editor_crop(path, resolution) if path.is_file() else None
                if crop is None:
                    missed["london"] += 1
                    continue
                add(split[person], crop, EXPRESSIONS.index(expression), "london", person)

    genki = data_root / "genki4k"
    if genki.is_dir() and (wanted("train") or wanted("validation")):
        smiles = [int(line.split()[0]) for line in (genki / "labels.txt").read_text().splitlines() if line.strip()]
        order = list(range(len(smiles)))
        random.Random(seed).shuffle(order)
        validation = set(order[:int(len(order) * GENKI_VALIDATION_FRACTION + 0.5)])
        happy = EXPRESSIONS.index("happy")
        for index in range(len(smiles) if genki_limit is None else min(genki_limit, len(smiles))):
            split = "validation" if index in validation else "train"
            if not wanted(split):
                continue
            path = genki / "files" / f"file{index + 1:04d}.jpg"
            crop = _editor_crop(path, resolution) if path.is_file() else None
            if crop is None:
                missed["genki4k"] += 1
                continue
            if smiles[index]:
                add(split, crop, happy, "genki4k", "")
            else:
                add(split, crop, IGNORE, "genki4k", "", not_label=happy)
    if missed:
        print("no face found (left out): " + ", ".join(f"{k} {v}" for k, v in sorted(missed.items())))
    return rows


def save(rows: dict[str, dict], out: Path, resolution: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, part in rows.items():
        images = np.stack(part["images"]) if part["images"] else np.zeros((0, resolution, resolution), np.uint8)
        np.savez_compressed(out / f"{split}.npz", images=images, labels=np.array(part["labels"], np.int16),
                            not_labels=np.array(part["not_labels"], np.int16), sources=np.array(part["sources"]),
                            subjects=np.array(part["subjects"]))
        counts = Counter(part["sources"])
        print(f"{split}: {len(images)} faces ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")


def is_face_arrays(folder: Path) -> bool:
    return (Path(folder) / "train.npz").is_file()


class FaceArrays(AugmentedDataset):
    """One split of a prepared face-array folder as model tensors (``1 x R x R`` in [-1, 1]).

    Items are ``{"pixel_values", "labels", "not_labels"}``. ``flip`` mirrors half of them and ``augment(tensor,
    generator)`` adds the rest (the classifier's ``Augment``), both drawn from ``(seed, epoch, index)``.
    ``sources`` keeps only those sources; ``repeats`` (source -> N) lists each face of that source N times (the few
    colour photos of London and FEI among 26k FER2013 faces), every copy augmented on its own.
    """

    def __init__(self, folder: Path, split: str, resolution: int, seed: int = 0, flip: bool = False, augment=None,
                 sources: list[str] | None = None, repeats: dict[str, int] | None = None):
        with np.load(Path(folder) / f"{split}.npz") as data:
            keep = np.isin(data["sources"], sources) if sources else np.ones(len(data["labels"]), bool)
            order = np.flatnonzero(keep)
            for source, count in (repeats or {}).items():
                if count < 1:
                    raise ValueError(f"repeats[{source!r}] = {count}: must be at least 1")
                order = np.concatenate([order] + [np.flatnonzero(keep & (data["sources"] == source))] * (count - 1))
            self.images = torch.from_numpy(data["images"][order])
            self.labels = torch.from_numpy(data["labels"][order].astype(np.int64))
            self.not_labels = torch.from_numpy(data["not_labels"][order].astype(np.int64))
            self.sources = data["sources"][order]
        if len(self.images) and self.images.shape[-1] != resolution:
            raise ValueError(f"{folder}/{split}.npz holds {self.images.shape[-1]} px faces; the model reads "
                             f"{resolution} px (prepare the faces again with --resolution {resolution})")
        self.seed, self.flip, self.augment = seed, flip, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index][None].float() / 127.5 - 1.0
        generator = self.generator(index)
        if self.flip and torch.rand((), generator=generator) < 0.5:
            image = image.flip(-1)
        if self.augment is not None:
            image = self.augment(image, generator)
        return {"pixel_values": image, "labels": self.labels[index], "not_labels": self.not_labels[index]}

    def describe(self) -> str:
        counts = Counter(self.sources.tolist())
        return f"{len(self)} faces ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", type=Path, help="../shared/data")
    parser.add_argument("--out", type=Path, default=Path("prepared/classifier_faces"))
    parser.add_argument("--resolution", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0, help="the split seed (the evaluation's is 0)")
    parser.add_argument("--genki-limit", type=int, default=None, help="at most this many GENKI photos (quick runs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    save(collect(args.data_root, args.resolution, args.seed, args.genki_limit), args.out, args.resolution)
    return 0


if __name__ == "__main__":
    sys.exit(main())
