"""Paired realism ratio (expr_models.realism) on held-out subjects: the average-edit baseline against the committed
CycleGAN (FEI and London Set, neutral <-> happy) and SA-GAN (JAFFE, neutral -> each other expression).

    python benchmarks/realism_baseline.py [--data ../shared/data] [--checkpoints checkpoints] [--split test]

Every edit is of the whole photo, as a user gets it: the average edit through ``AverageEditModel.edit_photo`` (the
aligned frame at the photo's resolution), the GANs through ``ExpressionEditor.edit``. The ratio is measured on the
input photo's RetinaFace box (brows to chin). Per subject the ratio is the median over its photo pairs (JAFFE has
several takes per expression); the table gives the median over subjects. Writes benchmarks/results/realism.json.
Skips (exit 0) without ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from expr_models.alignment import retinaface_face  # noqa: E402
from expr_models.average_edit import AverageEditModel  # noqa: E402
from expr_models.paired_faces import photo_pairs  # noqa: E402
from expr_models.realism import median_ratio, paired_realism_ratio  # noqa: E402

# (dataset, the GAN method measured beside the baseline on it)
GAN_FOR = {"fei": "cyclegan", "london": "cyclegan", "jaffe": "sagan"}


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def measure(data: Path, checkpoints: Path, split: str, limit: int | None = None) -> dict:
    from expr_models.pipeline import ExpressionEditor  # moves with the editor; only this script uses it

    average = AverageEditModel.from_pretrained(checkpoints / "average")
    editor = ExpressionEditor.from_pretrained(str(checkpoints))
    pairs = [p for p in photo_pairs(data, split) if p.dataset != "jaffe" or p.source_expression == "neutral"]
    # per (dataset, pair, method): subject -> ratios
    ratios: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[str, list[float]] = defaultdict(list)
    skipped = []
    for number, pair in enumerate(pairs[:limit] if limit else pairs):
        photo, real = read_rgb(pair.source_path), read_rgb(pair.target_path)
        found, found_real = retinaface_face(photo), retinaface_face(real)
        if found is None or found_real is None:
            skipped.append(f"{pair.dataset}:{pair.source_path.name} (no face)")
            continue
        box, points = found
        edits = {}
        tick = time.perf_counter()
        edits["average"] = average.edit_photo(photo, pair.source_expression, pair.target_expression, points=points)
        seconds["average"].append(time.perf_counter() - tick)
        gan = GAN_FOR[pair.dataset]
        if pair.target_expression in editor.supported_targets(gan):
            tick = time.perf_counter()
            result = editor.edit(Image.fromarray(photo), method=gan, target=pair.target_expression)
            seconds[gan].append(time.perf_counter() - tick)
            edits[gan] = np.asarray(result.image.convert("RGB"))
        for method, edited in edits.items():
            scores = paired_realism_ratio(photo, edited, real, box, input_points=points, target_points=found_real[1])
            ratios[(pair.dataset, pair.pair, method)][pair.subject].append(scores["ratio"])
        if number % 10 == 0:
            print(f"  {number + 1}/{len(pairs)} {pair.dataset} {pair.pair} {pair.subject}", flush=True)

    rows = []
    for (dataset, pair, method), by_subject in sorted(ratios.items()):
        per_subject = [float(np.median(values)) for values in by_subject.values()]
        rows.append({"dataset": dataset, "pair": pair, "method": method, "median_ratio": median_ratio(per_subject),
                     "subjects": len(per_subject), "photo_pairs": sum(len(v) for v in by_subject.values()),
                     "per_subject": {s: float(np.median(v)) for s, v in sorted(by_subject.items())}})
    return {"split": split, "rows": rows, "skipped": skipped,
            "seconds_per_photo": {m: float(np.median(v)) for m, v in seconds.items()},
            "definition": "expr_models/realism.py: mouth region 25-75% x 58-95% of the input's RetinaFace box, grey, "
                          "blur sigma 2 px per 200 px of box width, real photo aligned on the upper face; ratio = "
                          "error(edit, real) / error(input, real); median over subjects."}


def table(result: dict) -> str:
    lines = ["| data | edit | method | median ratio | subjects | photo pairs |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['dataset']} | {row['pair']} | {row['method']} | {row['median_ratio']:.2f} | "
                     f"{row['subjects']} | {row['photo_pairs']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photo pairs (a quick check)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "realism.json")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"Skipped: no data folder at {args.data}")
        return 0
    result = measure(args.data, args.checkpoints, args.split, args.limit)
    print(table(result))
    print("median seconds per photo:", {m: round(s, 3) for m, s in result["seconds_per_photo"].items()})
    if args.limit is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
