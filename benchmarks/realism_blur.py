"""How much of the paired realism ratio is sharpness: the same edits, blurred, scored again.

    python benchmarks/realism_blur.py [--split validation] [--methods cyclegan average]

The paired realism ratio (``expr_models.evaluation.realism_ratio``) is a mean absolute grey difference from the same
person's real photo of the target, in the mouth region, after a small blur. A sharp mouth drawn a little off (teeth a
few pixels higher than the person's own, a lip line a little lower) pays twice, where a soft one that hedges between
the places pays once: the L1 distance rewards blur. This script edits each FEI and London Set person of ``--split``
through the editor (neutral -> happy and happy -> neutral), blurs each whole edited photo with a Gaussian of 1, 2 and 4
times the metric's own sigma, and reports the median ratio per data set, edit, method and blur. The average edit (a
median flow and residual: soft by construction) is the anchor in the same run. Needs ../shared/data (skips without).
Writes benchmarks/results/realism_blur.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import bench_utils as bench

BLURS = (0, 1, 2, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bench.SHARED_DATA)
    parser.add_argument("--split", default="validation", help="people to score (default validation: not the test set)")
    parser.add_argument("--methods", nargs="+", default=["cyclegan", "average"])
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no data at {args.data}")
        return
    from expr_models.evaluation.realism import read_rgb, realism_pairs
    from expr_models.evaluation.realism_ratio import blur_sigma, paired_realism_ratio
    from expr_models.faces.alignment import retinaface_face
    from expr_models.pipeline import ExpressionEditor

    info = bench.machine()
    print(bench.machine_line(info))
    editor = ExpressionEditor.from_pretrained(bench.REPO_ROOT / "checkpoints")
    ratios: dict[tuple[str, str, str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for pair in realism_pairs(args.data, args.split):
        if pair.dataset not in ("fei", "london"):
            continue
        photo, real = read_rgb(pair.source_path), read_rgb(pair.target_path)
        found, found_real = retinaface_face(photo), retinaface_face(real)
        if found is None or found_real is None:
            continue
        sigma = blur_sigma(found[0])
        for method in args.methods:
            edited = np.asarray(editor.edit(Image.fromarray(photo), method=method, target=pair.target_expression,
                                            read_expressions=False).image.convert("RGB"))
            for times in BLURS:
                blurred = edited if times == 0 else cv2.GaussianBlur(edited, (0, 0), sigma * times)
                ratio = paired_realism_ratio(photo, blurred, real, found[0], input_points=found[1],
                                             target_points=found_real[1])["ratio"]
                if np.isfinite(ratio):
                    key = (pair.dataset, f"{pair.source_expression} -> {pair.target_expression}", method, times)
                    ratios[key][pair.subject].append(ratio)
    rows = []
    for (dataset, edit, method, times), by_person in sorted(ratios.items()):
        median = float(np.median([np.median(values) for values in by_person.values()]))
        rows.append({"data": dataset, "edit": edit, "method": method, "blur": f"{times}x", "people": len(by_person),
                     "median_ratio": round(median, 3)})
    print(bench.format_table(rows, [("data", "data"), ("edit", "edit"), ("method", "method"),
                                    ("blur", "blur (x the metric's sigma)"), ("people", "people"),
                                    ("median_ratio", "median realism ratio")]))
    payload = {"machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "split": args.split, "rows": rows}
    out = bench.RESULTS_DIR / "realism_blur.json"
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
