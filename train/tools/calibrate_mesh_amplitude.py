"""Fit a mesh GAN's amplitude per target on validation people: the scale of the whole mesh motion at intensity 1 that
brings the editor's edits closest to the same people's real photos of the target (the paired realism ratio).

    python -m train.tools.calibrate_mesh_amplitude --models checkpoints --method cyclegan --targets happy neutral
    python -m train.tools.calibrate_mesh_amplitude --models checkpoints --method sagan --targets happy neutral \
        --scales 0.75 1 1.25 1.5 1.75 2 --dry-run
    python -m train.tools.calibrate_mesh_amplitude --models checkpoints --method cyclegan \
        --horizontal-scales 0.8 1 1.25 --scales 1 1.25 1.5 1.75   # [horizontal, vertical] pairs

Why: each generator learned a per-face gain around the median motion of about a hundred training pairs, and the
warp, the mouth and the shading that follow it were built after it. Measured through the whole editor, a smile
undone at intensity 1 stops short of the same people's real neutral faces. This tool edits each validation person's
whole photo (FEI and the London Set, ``expr_models.evaluation.realism``) with the editor, at each scale in
``--scales`` (1 always among them), and keeps the scale with the lowest mean over datasets of the median realism
ratio among those that are no worse than 1 on every dataset and move no dataset's faces past their real expression
(median mesh-motion gain at most 1); ties go to the scale nearest 1. With ``--horizontal-scales`` every pair
[horizontal, vertical] of those and ``--scales`` is tried (``expr_models.models.mesh_gan.amplitude_axes``: the
generators move some coordinates of a face further than others, relative to real people). The test people are
never looked at. It writes
``mesh_amplitude`` into the checkpoint's ``config.json`` and a line into its ``model_card.json`` (the weights are not
touched); rebuild the README cards with ``python -m expr_models cards checkpoints``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from expr_models.evaluation.realism import edit_mesh_scores, photo_mesh, read_rgb, realism_pairs
from expr_models.evaluation.realism_ratio import paired_realism_ratio
from expr_models.faces.alignment import retinaface_face
from expr_models.pipeline import ExpressionEditor


def measure_at(editor, model, method: str, target: str, scale: float, pairs, find_face) -> dict[str, dict]:
    """Per dataset, the median realism ratio and the median mesh gain of ``method``'s edits to ``target`` with
    ``model``'s amplitude for ``target`` set to ``scale``."""
    model.config.mesh_amplitude = {**(model.config.mesh_amplitude or {}), target: scale}
    ratios: dict[str, list[float]] = {}
    gains: dict[str, list[float]] = {}
    for pair in pairs:
        photo, real = read_rgb(pair.source_path), read_rgb(pair.target_path)
        found, found_real = find_face(photo), find_face(real)
        if found is None or found_real is None:
            continue
        edited = np.asarray(editor.edit(Image.fromarray(photo), method=method, target=target,
                                        read_expressions=False).image.convert("RGB"))
        score = paired_realism_ratio(photo, edited, real, found[0], input_points=found[1],
                                     target_points=found_real[1])["ratio"]
        if np.isfinite(score):
            ratios.setdefault(pair.dataset, []).append(float(score))
        meshes = photo_mesh(editor, photo, found), photo_mesh(editor, real, found_real)
        gain = edit_mesh_scores(editor, photo, edited, found, *meshes).get("gain")
        if gain is not None and np.isfinite(gain):
            gains.setdefault(pair.dataset, []).append(float(gain))
    return {dataset: {"ratio": float(np.median(ratios[dataset])),
                      "gain": float(np.median(gains[dataset])) if gains.get(dataset) else float("nan")}
            for dataset in sorted(ratios)}


def format_scale(scale: float | list[float]) -> str:
    """``1.25``, or ``1/1.5`` for [horizontal, vertical]."""
    return f"{scale:g}" if isinstance(scale, (int, float)) else "/".join(f"{value:g}" for value in scale)


def candidate_scales(scales: list[float], horizontal: list[float] | None) -> list[float | list[float]]:
    """The amplitudes to try: each of ``scales``, or each pair [h, v] of ``horizontal`` x ``scales`` (one number where
    h == v); 1 always among them."""
    if not horizontal:
        return sorted(set(scales) | {1.0})
    pairs = {(h, v) for h in horizontal for v in scales} | {(1.0, 1.0)}
    return [h if h == v else [h, v] for h, v in sorted(pairs)]


def distance_from_one(scale: float | list[float]) -> float:
    return max(abs(value - 1.0) for value in ([scale] if isinstance(scale, (int, float)) else scale))


def best_scale(rows: list[dict], datasets: list[str]) -> float | list[float]:
    """The scale with the lowest mean of the per-dataset median realism ratios among those that are no worse than
    scale 1 on any dataset (people of one set smile broadly and of another slightly: a scale that suits one at the
    other's cost is a choice between them, not an amplitude) and move no dataset's faces past their real expression
    (median mesh gain at most 1: the realism ratio, a mean difference in the mouth, forgives a frown's corners
    more than a person does); among equals, the one nearest 1."""
    unit = next(row for row in rows if row["scale"] == 1.0)
    allowed = [row for row in rows if row["scale"] == 1.0 or all(
        row[name]["ratio"] <= unit[name]["ratio"] and not row[name]["gain"] > 1.0 for name in datasets if name in unit)]
    return min(allowed, key=lambda row: (round(row["mean"], 4), distance_from_one(row["scale"])))["scale"]


def write_amplitude(folder: Path, fitted: dict[str, float | list[float]], report: dict[str, list[dict]],
                    datasets: list[str], split: str) -> None:
    """``fitted`` into ``folder``'s config.json, and what it was chosen from into its model_card.json's notes."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["mesh_amplitude"] = fitted
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    card_file = folder / "model_card.json"
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    lines = []
    for target, rows in report.items():
        tried = ", ".join(f"{format_scale(row['scale'])}: {row['mean']:.3f} / "
                          f"{max(row[name]['gain'] for name in datasets if name in row):.2f}" for row in rows)
        pair = any(not isinstance(row["scale"], (int, float)) for row in rows)
        lines.append(f"{target} {format_scale(fitted[target])} (scale{' horizontal/vertical' if pair else ''}: mean "
                     f"median realism ratio / largest median mesh gain {tried})")
    note = (f"Amplitude per target (`mesh_amplitude`), fitted on the {split} people of {', '.join(datasets)} by "
            f"`python -m train.tools.calibrate_mesh_amplitude`: " + "; ".join(lines) + ".")
    kept = [part for part in card.get("notes", "").split("\n\n") if part and not part.startswith("Amplitude per")]
    card["notes"] = "\n\n".join([*kept, note])
    card_file.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {config_file} and {card_file}: mesh_amplitude {fitted}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("checkpoints"), help="the editor's checkpoint folder")
    parser.add_argument("--method", choices=("cyclegan", "sagan"), required=True)
    parser.add_argument("--targets", nargs="+", default=["happy", "neutral"])
    parser.add_argument("--scales", nargs="+", type=float, default=[0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    parser.add_argument("--horizontal-scales", nargs="+", type=float, default=None,
                        help="fit [horizontal, vertical] pairs: these horizontal scales with each of --scales")
    parser.add_argument("--raw-data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    parser.add_argument("--datasets", nargs="+", default=["fei", "london"],
                        help="photo pairs to fit on (JAFFE's validation split holds two people)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--dry-run", action="store_true", help="measure and print; write nothing")
    args = parser.parse_args(argv)
    if any(scale <= 0 for scale in args.scales + (args.horizontal_scales or [])):
        parser.error("--scales and --horizontal-scales must be positive")

    if not args.raw_data.is_dir():
        print(f"skipped: no raw data at {args.raw_data}; the calibration needs the validation people's photos")
        return 0
    editor = ExpressionEditor.from_pretrained(args.models)
    model = editor.model(args.method)
    if model.config.generator_type != "mesh":
        print(f"error: {args.models / args.method} is not a mesh generator (generator_type="
              f"{model.config.generator_type!r}); only mesh GANs have an amplitude", file=sys.stderr)
        return 2
    fitted = dict(model.config.mesh_amplitude or {})
    report: dict[str, list[dict]] = {}
    for target in args.targets:
        if target not in editor.supported_targets(args.method):
            print(f"error: {args.method} cannot edit to {target!r}", file=sys.stderr)
            return 2
        pairs = [pair for pair in realism_pairs(args.raw_data, args.split)
                 if pair.target_expression == target and pair.dataset in args.datasets]
        if not pairs:
            print(f"skipped {target}: no {args.split} photo pairs in {', '.join(args.datasets)}")
            continue
        rows = []
        for scale in candidate_scales(args.scales, args.horizontal_scales):
            measured = measure_at(editor, model, args.method, target, scale, pairs, retinaface_face)
            mean = float(np.mean([values["ratio"] for values in measured.values()]))
            rows.append({"scale": scale, "mean": mean, **measured})
            print(json.dumps({"target": target, "scale": scale, "mean_ratio": round(mean, 4),
                              **{name: {k: round(v, 3) for k, v in values.items()}
                                 for name, values in measured.items()}}), flush=True)
        fitted[target] = best_scale(rows, args.datasets)
        report[target] = rows
        model.config.mesh_amplitude = dict(fitted)  # the next target is measured with this one in place
        print(f"{target}: amplitude {format_scale(fitted[target])} ({len(pairs)} {args.split} pairs)", flush=True)
    if args.dry_run or not report:
        return 0

    write_amplitude(args.models / args.method, fitted, report, args.datasets, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
