"""Turn a training run's model into a small committed checkpoint: fp16 weights, no discriminators, an updated card.

    python -m train.tools.export_checkpoint runs/cyclegan/final checkpoints/cyclegan --fp16 \
        --note "Trained 750 steps on 2 CPU cores (bf16 autocast), 05:44-06:30 UTC, 2026-11-24."
    python -m train.tools.export_checkpoint checkpoints/cyclegan checkpoints/cyclegan --evaluation results/evaluation.md
    python -m train.tools.export_checkpoint runs/cls/calibrated checkpoints/classifier --fp16 --int8

``--evaluation`` embeds the evaluation report in the card. The training record (data, steps, machine, time) comes
from the run's own ``model_card.json`` and is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModel

import expr_models  # noqa:F401  (registers the Auto classes)
from expr_models.models.modeling_utils import WEIGHTS_FILE, quantize_weights

INT8_NOTE = "The convolution and linear weights are stored as int8"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a from_pretrained folder (e.g. runs/cyclegan/final)")
    parser.add_argument("out", type=Path, help="where to write the checkpoint (may equal source)")
    parser.add_argument("--fp16", action="store_true", help="store fp16 weights (they load as fp32)")
    parser.add_argument("--int8", action="store_true",
                        help="with --fp16: store the convolution and linear weights as int8 with a scale per output "
                             "channel (a quarter of fp32's bytes; they load as fp32). For classifiers, whose readings "
                             "it moves by well under a percent; measure before committing")
    parser.add_argument("--training-data", help="the card's Training data text, where the run did not record it")
    parser.add_argument("--run-summary", type=Path,
                        help="the run's training_summary.json, for runs whose final model has no training record")
    parser.add_argument("--note", help="a sentence for the card's Training section (e.g. the total wall time)")
    parser.add_argument("--evaluation", type=Path,
                        help="the Markdown report of `python -m expr_models evaluate`, embedded in the card")
    args = parser.parse_args(argv)

    model = AutoModel.from_pretrained(args.source)
    if hasattr(model, "without_discriminators") and model.discriminator_x is not None:
        model = model.without_discriminators()
    if hasattr(model, "without_discriminator") and model.discriminator is not None:
        model = model.without_discriminator()
    info = dict(model.card_info)
    if args.training_data:
        info["training_data"] = args.training_data
    if args.run_summary:
        run = json.loads(args.run_summary.read_text())
        info.setdefault("training", f"{run['steps']} steps, {run['epochs']:.3g} epochs, on {run['devices']}, took "
                                    f"{run['minutes']:.0f} minutes, command `{run['command']}`.")
        info.setdefault("metrics", {
            **{f"final training {key}": f"{value:.4f}" for key, value in run.get("losses", {}).items()},
            **{f"validation {key}": f"{value:.4f}" for key, value in run.get("metrics", {}).items()}})
    if args.note:
        info["training"] = f"{info.get('training', '')} {args.note}".strip()
    if args.evaluation:
        info["evaluation"] = args.evaluation.read_text()
    if args.int8 and not args.fp16:
        parser.error("--int8 goes with --fp16 (the weights it leaves alone are stored in fp16)")
    notes = [part for part in info.get("notes", "").split("\n\n") if part and not part.startswith(INT8_NOTE)]
    if args.int8:
        notes.append(f"{INT8_NOTE} (one fp16 scale per output channel), multiplied back when loaded; the other "
                     "tensors are fp16.")
    if notes or "notes" in info:
        info["notes"] = "\n\n".join(notes)
    model.card_info = info
    if args.fp16:
        model = model.to(torch.float16)
    # Write next to the destination, then swap, so that exporting onto the source folder is safe.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}-", dir=args.out.parent))
    model.save_pretrained(staging, repo_id=str(args.out))  # the card's snippet names the destination, not the staging
    if args.int8:
        quantize_weights(staging / WEIGHTS_FILE)
    if args.out.exists():
        shutil.rmtree(args.out)
    staging.rename(args.out)
    size = sum(path.stat().st_size for path in args.out.iterdir()) / 2**20
    print(f"Wrote {model.config.model_type} to {args.out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
