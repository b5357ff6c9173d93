"""Neural style transfer speed: seconds for 300 steps on a 256x256 face, with L-BFGS and with Adam.

    python benchmarks/nst_speed.py                 # CPU
    python benchmarks/nst_speed.py --device cuda   # GPU
    python benchmarks/nst_speed.py --steps 50 --repeats 1

What is timed is ``expr_models.models.style_transfer.run_style_transfer`` as the editor calls it: the committed feature
network (checkpoints/style_features, MobileNetV2 ImageNet features), content = Grace Hopper's face and style = the
astronaut's (both cropped by the editor's own detector and framing, 256x256 RGB), the feathered face mask on both,
fp32. Median of ``--repeats`` runs of ``--steps`` steps each (after a short warm-up).

The anchor, in the same process: the study's NST features, VGG19 (torchvision layout, Gatys et al.'s layers; random
weights time the same as ImageNet ones), through the same ``run_style_transfer``, timed over ``--anchor-steps``
steps and scaled to ``--steps``.

``--precision bf16`` also runs the steps under bfloat16 autocast and reports how far its result lands from fp32's
(mean absolute difference, in 8-bit levels); on CPU it measured slower (MobileNetV2's depthwise convolutions gain
nothing from AMX), so fp32 is what the editor uses.

Targets: <= 30 s on CPU and <= 2 s on GPU for 300 steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import bench_utils as bu

TARGETS = {"cpu": 30.0, "cuda": 2.0}


def face_tensor(photo: np.ndarray, size: int, device) -> torch.Tensor:
    from expr_models.faces.detection import detect_faces
    from expr_models.faces.geometry import crop_face

    box = detect_faces(photo)[0]
    crop, _ = crop_face(photo, box, size)
    return torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"], choices=["lbfgs", "adam"])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--anchor-steps", type=int, default=5, help="VGG19 steps timed for the anchor (0: none)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("SKIP: --device cuda, but no CUDA device here")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    from expr_models.faces.geometry import face_mask
    from expr_models.models.style_transfer import (StyleFeatureConfig, StyleFeatureExtractor, load_feature_extractor,
                                                   run_style_transfer)

    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    device = torch.device(args.device)
    info = bu.machine(args.device)
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    extractor = load_feature_extractor(bu.REPO_ROOT / "checkpoints", device=device)
    content = face_tensor(bu.grace_hopper(), args.size, device)
    style = face_tensor(bu.astronaut(), args.size, device)
    mask = torch.from_numpy(face_mask(args.size))[None, None].to(device)

    def transfer(features, optimizer: str, steps: int, precision: str = "fp32") -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return run_style_transfer(content, style, features, mask=mask, style_mask=mask, steps=steps,
                                      optimizer=optimizer)

    rows = []
    results = {}
    for optimizer in args.optimizers:
        for precision in args.precision:
            load_before = bu.load_average()[:1]
            stats = bu.measure(lambda: results.__setitem__((optimizer, precision),
                                                           transfer(extractor, optimizer, args.steps, precision)),
                               repeats=args.repeats, warmup=0, device=device)
            row = {"optimizer": optimizer, "precision": precision, "features": extractor.config.architecture,
                   "steps": args.steps, **stats, "per_step_ms": 1000 * stats["median_s"] / args.steps,
                   "load_average": load_before + bu.load_average()[:1]}
            if precision != "fp32" and (optimizer, "fp32") in results:
                diff = (results[(optimizer, precision)].float() - results[(optimizer, "fp32")]).abs() * 255
                row["mean_abs_diff_vs_fp32_levels"] = float(diff.mean())
            rows.append(row)
            print(f"  {optimizer} {precision}: {stats['median_s']:.2f} s for {args.steps} steps", flush=True)

    anchor = None
    if args.anchor_steps:
        torch.manual_seed(0)
        vgg = StyleFeatureExtractor(StyleFeatureConfig(architecture="vgg19")).to(device).eval()
        transfer(vgg, "lbfgs", 1)  # warm-up
        stats = bu.measure(lambda: transfer(vgg, "lbfgs", args.anchor_steps), repeats=1, warmup=0, device=device)
        per_step = stats["median_s"] / args.anchor_steps
        anchor = {"features": "vgg19 (random weights)", "optimizer": "lbfgs", "steps_timed": args.anchor_steps,
                  "per_step_ms": 1000 * per_step, "seconds_for_steps": per_step * args.steps, **stats}
        del vgg
        for row in rows:
            row["ratio_to_vgg19"] = row["median_s"] / anchor["seconds_for_steps"]
        print(f"  anchor: VGG19 {1000 * per_step:.0f} ms/step -> {per_step * args.steps:.1f} s for {args.steps} steps")

    columns = [("optimizer", "optimizer"), ("precision", "precision"), ("features", "features"),
               ("median_s", f"s / {args.steps} steps"), ("q1_s", "q1"), ("q3_s", "q3"), ("cpu_median_s", "CPU s"),
               ("per_step_ms", "ms / step"), ("ratio_to_vgg19", "/ VGG19"),
               ("mean_abs_diff_vs_fp32_levels", "diff vs fp32 (levels)")]
    table = bu.format_table(rows, columns)
    print(table)
    targets = []
    if args.steps == 300 and args.size == 256:
        for row in rows:
            if row["precision"] == "fp32":
                targets.append(bu.target_line(f"NST {row['optimizer']} 300 steps at 256 px on {kind}", row["median_s"],
                                              TARGETS[kind]))
    for line in targets:
        print(f"target {line['target']}: {line['measured']:.2f} s (<= {line['limit']} s) -> "
              f"{'holds' if line['holds'] else 'MISSED'} ({line['margin']})")
    info["load_average_at_end"] = bu.load_average()
    payload = {"benchmark": "nst_speed", "machine": info, "device": args.device, "settings": vars(args) | {"output": None},
               "rows": rows, "anchor": anchor, "targets": targets, "table": table}
    if not args.no_save:
        path = bu.save_results("nst_speed" if kind == "cpu" else "nst_speed_cuda", payload, args.output)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
