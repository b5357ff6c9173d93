"""Faces in a group photo: held-out London Set people shrunk so that their eyes are a few pixels apart, edited whole by
the editor to each target, and read on the edited photo by the classifier, as the Space reads them, once per
checkpoint folder. It measures what a learned region (the learned eyes, say) changes on small colour faces, which
the evaluation's grey sets never show.

    python benchmarks/small_face_readings.py --checkpoints checkpoints DIR_WITH_EYES_ON_COLOUR --eye-distance 24

Prints, per folder, how many photos each target's edit is read as that target; writes
benchmarks/results/small_face_readings.json. Skips cleanly without ../shared/data/london.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import bench_utils as bench
from contact_sheet import chosen_pairs, shrunk

from expr_models.pipeline import ExpressionEditor

TARGETS = ("angry", "fear", "neutral", "sad", "surprise")


def readings(editor: ExpressionEditor, photos: list[np.ndarray], method: str, targets: tuple[str, ...]) -> dict:
    """Per target, how many ``photos`` the edit to it is read as it (the first face's reading after the edit)."""
    counts = dict.fromkeys(targets, 0)
    for photo in photos:
        detection = editor.detect(Image.fromarray(photo))
        for target in targets:
            faces = editor.edit(detection, method=method, target=target).faces
            after = faces[0].reading_after if faces else None
            counts[target] += bool(after) and max(after, key=after.get) == target
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=bench.SHARED_DATA)
    parser.add_argument("--checkpoints", type=Path, nargs="+", default=[bench.REPO_ROOT / "checkpoints"])
    parser.add_argument("--split", default="validation", help="the London Set people of this split")
    parser.add_argument("--eye-distance", type=float, default=24.0)
    parser.add_argument("--method", default="sagan")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    args = parser.parse_args(argv)
    if not (args.data / "london").is_dir():
        print(f"skipped: no london under {args.data}")
        return 0

    photos = []
    for pair in chosen_pairs(args.data, "london", args.split, "neutral->happy", 10_000, None):
        with Image.open(pair.source_path) as image:
            photos.append(shrunk(np.asarray(image.convert("RGB")), args.eye_distance))
    results = {"machine": bench.machine(), "split": args.split, "eye_distance": args.eye_distance,
               "method": args.method, "photos": len(photos), "read_as_target": {}}
    for folder in args.checkpoints:
        editor = ExpressionEditor.from_pretrained(folder, num_threads=1)
        counts = readings(editor, photos, args.method, tuple(args.targets))
        results["read_as_target"][str(folder)] = counts
        print(f"{folder}: " + ", ".join(f"{target} {n} of {len(photos)}" for target, n in counts.items()))
    print(f"wrote {bench.save_results('small_face_readings', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
