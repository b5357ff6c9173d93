"""How much of an expression a part of the face carries, to the readers: the SA-GAN's edits of held-out crops with one
region (the mouth, or the eyes and brows) replaced by the same region of a real face of the target expression, another
person's, read by the classifier and the second reader.

    python benchmarks/part_swap_ceiling.py                   # validation crops of prepared/expressions, 20 per class

Why: issue 25 asks the SA-GAN to reach, per expression, the classifier's rate on real faces less 10 points, and its
edits keep reading as the expression they came from. A model that redraws one region (the learned mouth, the furrow
maps) can at best make that region a real target face's; if even a real one leaves the reading where it was, the
evidence lies elsewhere in the face and no model of that region alone reaches the target. Donor faces are the same
split's faces of the target expression from other people (pasted with a soft edge; their alignment is the crops'
own, so the bound is rough). Reads ``prepared/expressions`` (skips cleanly without it); the JSON holds numbers only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

import bench_utils as bench

from expr_models.components import model_class
from expr_models.evaluation import metrics
from expr_models.evaluation.editors import load_models, run_batched
from expr_models.evaluation.heldout import load_held_out, to_tensor

# Regions of the square held-out crop: (rows, columns) as fractions of its side.
REGIONS = {
    "mouth": ((0.62, 0.92), (0.25, 0.75)),
    "eyes and brows": ((0.15, 0.55), (0.12, 0.88)),
}


def soft_region(size: int, rows: tuple[float, float], columns: tuple[float, float]) -> torch.Tensor:
    mask = np.zeros((size, size), np.float32)
    mask[int(rows[0] * size):int(rows[1] * size), int(columns[0] * size):int(columns[1] * size)] = 1.0
    return torch.from_numpy(cv2.GaussianBlur(mask, (0, 0), size / 40))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("prepared/expressions"))
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=20, help="faces per expression")
    parser.add_argument("--targets", nargs="+", default=["neutral", "happy", "sad", "fear", "disgust", "angry",
                                                         "surprise"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: no prepared data at {args.data}")
        return 0
    torch.set_num_threads(2)
    device = torch.device("cpu")
    editors, classifier, _ = load_models(args.checkpoints, ("sagan",), device, 30, 128)
    sagan = editors[0]
    second = model_class("second_reader").from_pretrained(args.checkpoints / "second_reader").eval()
    held = load_held_out(str(args.data), args.split, limit=args.limit)
    names = list(classifier.config.class_names)
    rng = np.random.default_rng(args.seed)
    rows = []
    for target in args.targets:
        inputs = [face for face in held.faces if face.expression != target]
        donors = [face for face in held.faces if face.expression == target]
        x = to_tensor(inputs, sagan.resolution, sagan.channels)
        edits = run_batched(lambda batch, references=None: sagan.edit(batch, target, references), x, None,
                            device=device)
        real = to_tensor(donors, sagan.resolution, sagan.channels)
        # Each edit's donor: a real target face of another person.
        picks = []
        for face in inputs:
            others = [k for k, donor in enumerate(donors) if donor.key != face.key]
            picks.append(int(rng.choice(others)) if others else int(rng.integers(len(donors))))
        donor = real[torch.tensor(picks)]
        variants = {"edit": edits, "real target faces": real}
        for region, (rows_range, columns_range) in REGIONS.items():
            mask = soft_region(edits.shape[-1], rows_range, columns_range)
            variants[f"edit, {region} a real target face's"] = edits * (1 - mask) + donor * mask

        def read(images, reader):
            return float(np.mean([names[int(i)] == target for i in metrics.predict(reader, images)]) * 100)

        for variant, images in variants.items():
            row = {"target": target, "variant": variant, "faces": len(images),
                   "classifier": round(read(images, classifier), 1), "second reader": round(read(images, second), 1)}
            rows.append(row)
            print(f"{target:9s} {variant:40s} {row['classifier']:5.1f}% / {row['second reader']:5.1f}% "
                  f"({row['faces']} faces)", flush=True)
    payload = {"machine": bench.machine(), "split": args.split, "limit": args.limit, "rows": rows}
    print(f"wrote {bench.save_results('part_swap_ceiling', payload, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
