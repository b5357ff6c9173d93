"""Package the cached face meshes (``train.tools.cache_meshes``) as a ``datasets.DatasetDict`` with the project's
person splits, for the mesh GANs (the layout is in ``train/mesh_data.py``).

    python -m train.tools.cache_meshes                          # prepared/meshes/<set>.npz
    python -m train.tools.prepare_meshes --out prepared/mesh_dataset

Only meshes the mesh model scored as a face (presence >= 0.5) are kept; a photo whose label or split cannot be known
is reported and left out. The data's terms are the photos' (research-only): never push it publicly.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Value

from expr_models.data.cards import TERMS
from expr_models.data.paired_faces import photo_pairs
from expr_models.data.records import BuildReport
from expr_models.data.sources import scan_ckplus, scan_fer2013, scan_jaffe
from expr_models.data.splits import split_by_subject
from expr_models.errors import ExpressionEditError
from expr_models.io import load_image
from expr_models.labels import EXPRESSIONS

MIN_PRESENCE = 0.5
CACHE_SETS = ("fei", "london", "jaffe", "genki4k", "ckplus48", "fer2013_train", "fer2013_test")
POINTS = Array2D((468, 3), "float32")
LABEL = ClassLabel(names=list(EXPRESSIONS))
MESH_FEATURES = Features({"id": Value("string"), "dataset": Value("string"), "expression": LABEL, "points": POINTS})
PAIR_FEATURES = Features({"dataset": Value("string"), "subject": Value("string"), "source_id": Value("string"),
                          "target_id": Value("string"), "source_expression": LABEL, "target_expression": LABEL,
                          "source_points": POINTS, "target_points": POINTS})


def load_cache(cache: Path, name: str) -> dict[str, np.ndarray]:
    """``{photo id: 468 x 3 points}`` of one cached set, faces only; empty when the set was not cached."""
    path = cache / f"{name}.npz"
    if not path.is_file():
        return {}
    data = np.load(path)
    keep = data["presence"] >= MIN_PRESENCE
    return dict(zip((str(i) for i in data["ids"][keep]), data["points"][keep]))


def framed_photos(cache: Path, raw_data: Path, sets: tuple[str, ...], split_of: Callable[[str], str | None],
                  frame_of: Callable[[np.ndarray], Any], report: BuildReport
                  ) -> Iterator[tuple[str, str, str, np.ndarray, Any, np.ndarray]]:
    """``(set, photo id, split, RGB photo, frame, mesh points)`` for every cached mesh of ``sets`` whose photo has a split
    (``split_of``) and loads, and whose mesh places a window (``frame_of(points)``, e.g. ``MouthFrame.from_points``);
    every photo left out is reported with why. The frame's points are ``frame.to_frame(points)``."""
    for name in sets:
        meshes = load_cache(cache, name)
        if not meshes:
            report.skip(name, f"no cached meshes ({cache / name}.npz): run train.tools.cache_meshes", source=name)
            continue
        for photo_id, points in sorted(meshes.items()):
            split = split_of(photo_id)
            if split is None:
                report.skip(photo_id, "no person split known for this photo", source=name)
                continue
            try:
                rgb = np.ascontiguousarray(load_image(raw_data / photo_id))  # grey photos come back grey in RGB
                frame = frame_of(points)
            except (ExpressionEditError, OSError, ValueError) as error:
                report.skip(photo_id, str(error), source=name)
                continue
            report.kept[split] += 1
            yield name, photo_id, split, rgb, frame, points


def prepare_windows(argv: list[str] | None, description: str, out_name: str,
                    build: Callable[[Path, Path], tuple[DatasetDict, BuildReport]],
                    split_summary: Callable[[Dataset], str],
                    parents: list[argparse.ArgumentParser] | None = None) -> int:
    """The command line of a window preparer (``prepare_mouths``, ``prepare_brows``): ``--meshes``, ``--data`` and
    ``--out`` (default ``prepared/<out_name>``), ``build(meshes, data)``, then one line per split
    (``split_summary``) and the build report. ``parents``: parsers of the preparer's own options (shown in --help)."""
    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=description, parents=parents or [])
    parser.add_argument("--meshes", type=Path, default=root / "prepared" / "meshes",
                        help="train.tools.cache_meshes output")
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data", help="the raw photos")
    parser.add_argument("--out", type=Path, default=root / "prepared" / out_name)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data folder at {args.data}: nothing to prepare", file=sys.stderr)
        return 1
    dataset, report = build(args.meshes, args.data)
    dataset.save_to_disk(str(args.out))
    for split, rows in dataset.items():
        print(f"{split}: {len(rows)}; {split_summary(rows)}")
    print(f"wrote {args.out}; {report.summary()}")
    return 0


def relative(path: Path, raw_data: Path) -> str:
    return Path(path).resolve().relative_to(raw_data.resolve()).as_posix()


def labelled_photos(raw_data: Path, report: BuildReport) -> dict[str, tuple[str, str, str]]:
    """``{photo id: (dataset, expression, split)}`` of every photo with a known expression and split."""
    photos: dict[str, tuple[str, str, str]] = {}
    for pair in photo_pairs(raw_data):
        for path, expression in ((pair.source_path, pair.source_expression), (pair.target_path, pair.target_expression)):
            photos[relative(path, raw_data)] = (pair.dataset, expression, pair.split)
    for record in split_by_subject(scan_jaffe(raw_data / "jaffe", report), 0, report):
        photos[relative(record.path, raw_data)] = ("jaffe", record.expression, record.split)
    if (raw_data / "ckplus48").is_dir():
        for record in scan_ckplus(raw_data / "ckplus48", report):
            if record.expression in EXPRESSIONS:  # contempt is not one of the seven
                photos[relative(record.path, raw_data)] = ("ckplus", record.expression, record.split)
    if (raw_data / "fer2013").is_dir():
        for record in scan_fer2013(raw_data / "fer2013", report):
            photos[relative(record.path, raw_data)] = ("fer2013", record.expression, record.split)
    labels = raw_data / "genki4k" / "labels.txt"
    if labels.is_file():
        for number, line in enumerate(labels.read_text().splitlines(), start=1):
            fields = line.split()
            if fields and fields[0] == "1":  # a smile; a no-smile face may hold any other expression
                photos[f"genki4k/files/file{number:04d}.jpg"] = ("genki4k", "happy", "train")
    return photos


def build_mesh_dataset(cache: Path, raw_data: Path) -> tuple[DatasetDict, BuildReport]:
    report = BuildReport("meshes")
    points: dict[str, np.ndarray] = {}
    for name in CACHE_SETS:
        points.update(load_cache(cache, name))
    if not points:
        raise FileNotFoundError(f"no cached meshes in {cache}: run `python -m train.tools.cache_meshes` first")
    photos = labelled_photos(raw_data, report)
    splits: dict[str, list[dict]] = {}
    for photo_id in sorted(photos):
        dataset, expression, split = photos[photo_id]
        if photo_id not in points:
            report.skip(photo_id, "no face mesh (not cached, or the mesh model found no face)", source=dataset)
            continue
        splits.setdefault(split, []).append({"id": photo_id, "dataset": dataset,
                                             "expression": EXPRESSIONS.index(expression), "points": points[photo_id]})
    for pair in photo_pairs(raw_data):
        source, target = relative(pair.source_path, raw_data), relative(pair.target_path, raw_data)
        if source not in points or target not in points:
            report.skip(f"{source} -> {target}", "a photo of the pair has no face mesh", source=pair.dataset)
            continue
        splits.setdefault(f"pairs_{pair.split}", []).append({
            "dataset": pair.dataset, "subject": pair.subject, "source_id": source, "target_id": target,
            "source_expression": EXPRESSIONS.index(pair.source_expression),
            "target_expression": EXPRESSIONS.index(pair.target_expression),
            "source_points": points[source], "target_points": points[target]})
    description = ("MediaPipe Face Mesh points (468 x, y, z in photo pixels) of the expression photos of "
                   f"../shared/data, with the project's person splits. {TERMS}")
    dataset = DatasetDict()
    for split, rows in sorted(splits.items()):
        features = PAIR_FEATURES if split.startswith("pairs_") else MESH_FEATURES
        info = DatasetInfo(description=description, license="other", features=features)
        dataset[split] = Dataset.from_list(rows, features=features, info=info)
    return dataset, report


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=root / "prepared" / "meshes")
    parser.add_argument("--raw-data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=root / "prepared" / "mesh_dataset")
    args = parser.parse_args(argv)
    if not args.raw_data.is_dir():
        print(f"no raw data at {args.raw_data}: nothing to prepare", file=sys.stderr)
        return 1
    dataset, report = build_mesh_dataset(args.cache, args.raw_data)
    dataset.save_to_disk(str(args.out))
    for split, rows in dataset.items():
        print(f"{split}: {len(rows)} " + ", ".join(f"{name} {count}" for name, count in
                                                  sorted(Counter(rows["dataset"]).items())))
    print(f"wrote {args.out}; left out: {dict(report.bad_by_reason()) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
