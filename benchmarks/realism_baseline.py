"""Paired realism ratio (expr_models.evaluation.realism_ratio) on held-out subjects: the average-edit baseline against
the committed CycleGAN (FEI and London Set, neutral <-> happy) and SA-GAN (JAFFE, neutral -> each other expression).

    python benchmarks/realism_baseline.py [--data ../shared/data] [--checkpoints checkpoints] [--split test]
    python benchmarks/realism_baseline.py --warp runs/warp_e/final --methods average cyclegan_warp \
        --datasets fei london --split validation --out benchmarks/results/realism_warp_validation.json
    python benchmarks/realism_baseline.py --sagan-warp runs/sagan_warp/final --methods average sagan sagan_warp \
        --datasets jaffe --split validation --out benchmarks/results/realism_sagan_warp_validation.json

Every edit is of the whole photo, as a user gets it: the average edit through ``AverageEditModel.edit_photo`` (the
aligned frame at the photo's resolution), a warp-and-refine CycleGAN (``--warp``, method ``cyclegan_warp``) through
``CycleGANModel.edit_photo`` (its ``edit_aligned`` on the same aligned frame, the same paste-back), a warp-and-refine SA-GAN (``--sagan-warp``, method ``sagan_warp``) likewise
through ``SAGANModel.edit_photo``, the other GANs
through ``ExpressionEditor.edit``. With ``checkpoints/classifier`` each edit is also judged: *success* is the share
of edits the project's classifier reads as the target, on the Haar-framed 64-px grey crop of the input's face box
(the framing it was trained on); the same for the unedited input and the real target photo. The ratio is measured on the
input photo's RetinaFace box (brows to chin). Per subject the ratio is the median over its photo pairs (JAFFE has
several takes per expression); the table gives the median over subjects. Writes benchmarks/results/realism.json.
Skips (exit 0) without ../shared/data.

``--methods ... oracle_flow`` adds a bound, not an editor: each input warped by the optical flow to the same person's
real target (:func:`oracle_flow_edit`), the floor a geometric edit that knew each person's own expression would reach.
``--average-intensity`` scales the average edit (e.g. 0.25 for a weaker population edit).
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

from expr_models.evaluation.realism import read_rgb, realism_pairs, summarise  # noqa: E402
from expr_models.evaluation.realism_ratio import align_upper_face, paired_realism_ratio  # noqa: E402
from expr_models.faces.alignment import retinaface_face  # noqa: E402
from expr_models.models.average_edit import AverageEditModel  # noqa: E402

# (dataset, the GAN method measured beside the baseline on it)
GAN_FOR = {"fei": "cyclegan", "london": "cyclegan", "jaffe": "sagan"}


class Judge:
    """The project's expression classifier on the Haar-framed grey crop of a face box (its training framing)."""

    def __init__(self, checkpoint: Path):
        from expr_models.faces.detection import HaarFaceDetector
        from expr_models.models.classifier import ExpressionClassifier

        self.classifier = ExpressionClassifier.from_pretrained(checkpoint).float().eval()
        self.names = list(self.classifier.config.class_names)
        self.detector = HaarFaceDetector()

    def box(self, photo: np.ndarray):
        boxes = self.detector.detect(photo)
        return max(boxes, key=lambda b: b.width * b.height) if boxes else None

    def reads(self, photo: np.ndarray, box) -> str:
        import torch

        from expr_models.data.crops import crop_training_face
        from expr_models.faces.processing import to_model_tensor

        size = self.classifier.config.resolution
        crop, _ = crop_training_face(Image.fromarray(photo), size, box)
        with torch.no_grad():
            logits = self.classifier(to_model_tensor(crop, size, self.classifier.config.in_channels)).logits
        return self.names[int(logits.argmax())]


def oracle_flow_edit(photo: np.ndarray, real: np.ndarray, box, points: np.ndarray,
                     real_points: np.ndarray) -> np.ndarray:
    """Not an editor: the input warped by the dense optical flow (DIS) to the same person's real target, aligned on
    the upper face as the ratio aligns it. It knows the answer, so its ratio is the floor a purely geometric edit of
    this person could reach: what is left is lighting, teeth and what the flow cannot follow."""
    import cv2

    aligned = np.clip(align_upper_face(real, photo, box, real_points, points), 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(aligned, grey, None)
    height, width = grey.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]
    map_y = np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]
    return cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def measure(data: Path, checkpoints: Path, split: str, limit: int | None = None, methods: tuple[str, ...] = (),
            datasets: tuple[str, ...] = ("fei", "london", "jaffe"), warp: Path | None = None,
            sagan_warp: Path | None = None, average_intensity: float = 1.0) -> dict:
    average = AverageEditModel.from_pretrained(checkpoints / "average")
    methods = methods or (("average", "cyclegan", "sagan") + (("cyclegan_warp",) if warp else ())
                          + (("sagan_warp",) if sagan_warp else ()))
    editor = warp_model = sagan_warp_model = None
    if {"cyclegan", "sagan"} & set(methods):
        from expr_models.pipeline import ExpressionEditor  # moves with the editor; only this script uses it

        editor = ExpressionEditor.from_pretrained(str(checkpoints))
    if "cyclegan_warp" in methods:
        from expr_models.models.cyclegan import CycleGANModel

        warp_model = CycleGANModel.from_pretrained(warp or checkpoints / "cyclegan").float().eval()
    if "sagan_warp" in methods:
        from expr_models.models.sagan import SAGANModel

        sagan_warp_model = SAGANModel.from_pretrained(sagan_warp or checkpoints / "sagan").float().eval()
    judge = Judge(checkpoints / "classifier") if (checkpoints / "classifier" / "config.json").is_file() else None
    pairs = [pair for pair in realism_pairs(data, split) if pair.dataset in datasets]
    records = []  # one per (photo pair, method), as the evaluation's realism table takes them
    success: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
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
        if "average" in methods:
            tick = time.perf_counter()
            edits["average"] = average.edit_photo(photo, pair.source_expression, pair.target_expression,
                                                  intensity=average_intensity, points=points)
            seconds["average"].append(time.perf_counter() - tick)
        if "oracle_flow" in methods:
            edits["oracle_flow"] = oracle_flow_edit(photo, real, box, points, found_real[1])
        gan = GAN_FOR[pair.dataset]
        if editor is not None and gan in methods and pair.target_expression in editor.supported_targets(gan):
            tick = time.perf_counter()
            result = editor.edit(Image.fromarray(photo), method=gan, target=pair.target_expression)
            seconds[gan].append(time.perf_counter() - tick)
            edits[gan] = np.asarray(result.image.convert("RGB"))
        if warp_model is not None and pair.target_expression in warp_model.config.domains and \
                pair.source_expression in warp_model.config.domains:
            tick = time.perf_counter()
            edits["cyclegan_warp"] = warp_model.edit_photo(photo, pair.target_expression, points=points)
            seconds["cyclegan_warp"].append(time.perf_counter() - tick)
        if sagan_warp_model is not None and pair.target_expression in sagan_warp_model.config.class_names:
            tick = time.perf_counter()
            edits["sagan_warp"] = sagan_warp_model.edit_photo(photo, pair.target_expression, points=points)
            seconds["sagan_warp"].append(time.perf_counter() - tick)
        for method, edited in edits.items():
            scores = paired_realism_ratio(photo, edited, real, box, input_points=points, target_points=found_real[1])
            records.append({"dataset": pair.dataset, "pair": pair.pair, "method": method, "subject": pair.subject,
                            "ratio": scores["ratio"]})
        haar_box = judge.box(photo) if judge is not None else None
        if haar_box is not None:
            for method, image in {**edits, "(input)": photo, "(real target)": real}.items():
                success[(pair.dataset, pair.pair, method)].append(judge.reads(image, haar_box)
                                                                  == pair.target_expression)
        if number % 10 == 0:
            print(f"  {number + 1}/{len(pairs)} {pair.dataset} {pair.pair} {pair.subject}", flush=True)

    rows = summarise(records)  # per subject the median over its pairs, per row the median over subjects
    for row in rows:
        judged = success.get((row["dataset"], row["pair"], row["method"]), [])
        row.update(success=float(np.mean(judged)) if judged else None, judged=len(judged))
    references = {f"{dataset} {pair} {method}": float(np.mean(values)) for (dataset, pair, method), values
                  in sorted(success.items()) if method.startswith("(")}
    return {"split": split, "average_intensity": average_intensity, "rows": rows, "skipped": skipped,
            "classifier_on_unedited": references,
            "seconds_per_photo": {m: float(np.median(v)) for m, v in seconds.items()},
            "definition": "expr_models/evaluation/realism_ratio.py: mouth region 25-75% x 58-95% of the input's "
                          "RetinaFace box, grey, blur sigma 2 px per 200 px of box width, real photo aligned on the "
                          "upper face; ratio = error(edit, real) / error(input, real); median over subjects."}


def table(result: dict) -> str:
    lines = ["| data | edit | method | median ratio | subjects | photo pairs | success |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        success = "n/a" if row.get("success") is None else f"{100 * row['success']:.0f}% of {row['judged']}"
        lines.append(f"| {row['dataset']} | {row['pair']} | {row['method']} | {row['median_ratio']:.2f} | "
                     f"{row['subjects']} | {row['photo_pairs']} | {success} |")
    references = result.get("classifier_on_unedited", {})
    if references:
        lines.append("\nClassifier reads as the target: " + "; ".join(f"{key} {100 * value:.0f}%"
                                                                       for key, value in references.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photo pairs (a quick check)")
    parser.add_argument("--methods", nargs="+", default=[],
                        choices=("average", "cyclegan", "sagan", "cyclegan_warp", "sagan_warp", "oracle_flow"),
                        help="default: average, cyclegan, sagan (and cyclegan_warp with --warp, sagan_warp with "
                             "--sagan-warp); oracle_flow: the input warped by the optical flow to the real target "
                             "(the floor of a geometric edit)")
    parser.add_argument("--average-intensity", type=float, default=1.0, help="the average edit's intensity")
    parser.add_argument("--datasets", nargs="+", default=["fei", "london", "jaffe"], choices=("fei", "london", "jaffe"))
    parser.add_argument("--warp", type=Path, default=None,
                        help="a warp_refine CycleGAN checkpoint, measured as method cyclegan_warp (edit_aligned)")
    parser.add_argument("--sagan-warp", type=Path, default=None,
                        help="a warp_refine SA-GAN checkpoint, measured as method sagan_warp (edit_photo)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "realism.json")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"Skipped: no data folder at {args.data}")
        return 0
    result = measure(args.data, args.checkpoints, args.split, args.limit, tuple(args.methods), tuple(args.datasets),
                     args.warp, args.sagan_warp, args.average_intensity)
    print(table(result))
    print("median seconds per photo:", {m: round(s, 3) for m, s in result["seconds_per_photo"].items()})
    if args.limit is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
