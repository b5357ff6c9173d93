"""Mesh GANs against the mesh-motion baseline in motion space: on held-out people's real photo pairs, the median gain
(the predicted motion projected on the real one, over its length) and cosine, per data set and edit, before any warp.

    python benchmarks/mesh_motion_space.py --split validation     # how the committed runs were chosen

Needs ``prepared/mesh_dataset`` (``python -m train.tools.prepare_meshes``); skips without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from expr_models.labels import EXPRESSIONS
from expr_models.models.cyclegan import CycleGANModel
from expr_models.models.mesh_motion import MeshMotionModel
from expr_models.models.sagan import SAGANModel
from train.mesh_data import gain_and_cosine, load_pairs

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "prepared" / "mesh_dataset")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--cyclegan", type=Path, default=None, help="default: CHECKPOINTS/cyclegan")
    parser.add_argument("--sagan", type=Path, default=None, help="default: CHECKPOINTS/sagan")
    parser.add_argument("--split", default="validation")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: no mesh dataset at {args.data}")
        return 0
    baseline = MeshMotionModel.from_pretrained(args.checkpoints / "mesh_motion")
    cyclegan = CycleGANModel.from_pretrained(args.cyclegan or args.checkpoints / "cyclegan").float().eval()
    sagan = SAGANModel.from_pretrained(args.sagan or args.checkpoints / "sagan").float().eval()
    pairs = load_pairs(args.data, baseline.mean_mesh.detach().numpy(), args.split)
    datasets = np.array(pairs.datasets)
    edits = sorted({(EXPRESSIONS[a], EXPRESSIONS[b])
                    for a, b in zip(pairs.source_labels.tolist(), pairs.target_labels.tolist())})
    print("| data | edit | pairs | baseline | CycleGAN | SA-GAN |\n|---|---|---|---|---|---|")
    for source, target in edits:
        for dataset in ("fei", "london", "jaffe"):
            chosen = (pairs.source_labels == EXPRESSIONS.index(source)).numpy() & \
                     (pairs.target_labels == EXPRESSIONS.index(target)).numpy() & (datasets == dataset)
            if not chosen.any():
                continue
            sources, targets = pairs.sources[chosen], pairs.targets[chosen]
            cells = [sources + torch.from_numpy(baseline.pair_motion(source, target)).float()]
            cells.append(cyclegan.move_mesh(sources, target) if {source, target} <= set(cyclegan.config.domains)
                         else None)
            cells.append(sagan.move_mesh(sources, target, source))
            shown = []
            for edited in cells:
                if edited is None:
                    shown.append("–")
                    continue
                gain, cosine = gain_and_cosine(edited, sources, targets)
                shown.append(f"{gain.median():.2f} / {cosine.median():.2f}")
            print(f"| {dataset} | {source} → {target} | {int(chosen.sum())} | " + " | ".join(shown) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
