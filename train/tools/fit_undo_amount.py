"""Fit a mesh CycleGAN's reader of how much of its ``domain_y`` expression a face shows, and turn on the undoing by
that amount (``CycleGANConfig.mesh_undo_range``).

    python -m train.tools.fit_undo_amount checkpoints/cyclegan --range 1 1.6

Why: the generator to ``domain_x`` (happy -> neutral) undoes about the median smile of its training pairs on every
face. A broad grin (CK+, JAFFE) kept its lifted corners and cheeks and was still read as happy; 9 of the 40 validation
smiles of ``prepared/expressions`` were. With the reader, its vertical motion is scaled by the face's own amount.

The reader is linear, fitted on the training split's meshes (``prepared/mesh_dataset``) with no pairs: a face is its
neutral shape (drawn from the training neutral faces' spread, ``Sigma``) plus some amount of the expression's median
motion ``p`` (the generator to ``domain_y``'s prior), and the amount is its generalised least-squares estimate
``(x - mean) . Sigma^-1 p / (p . Sigma^-1 p)``. ``Sigma`` is shrunk towards its mean variance (``--shrinkage``) so
that the few hundred dimensions no neutral face moves much along do not dominate. Then the amounts are divided by
the median over the training faces of ``domain_y``, so 1 is a typical training smile. Reading the projection on ``p``
alone (no ``Sigma``) confuses the person's own shape with the expression: the validation split's neutral faces read
-0.36 to 0.35 by it (quartiles, on the same scale) and -0.12 to 0.09 by this reader, at shrinkage 0.5; its smiles 0.47
to 1.36 and 0.42 to 1.33.

The weights are saved with the checkpoint's (fp16, as committed); the test people are never looked at.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from expr_models.models.cyclegan import CycleGANModel
from train.args import REPO_ROOT
from train.mesh_data import load_meshes

NOTE_START = "Undoing by the face's own amount"


def fit_reader(neutral: torch.Tensor, expressive: torch.Tensor, direction: torch.Tensor, mean_shape: torch.Tensor,
               shrinkage: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The reader's weights ``(P, D)`` and bias (a 0-d tensor) on deviations from ``mean_shape``, from canonical
    meshes of faces without (``neutral``) and with (``expressive``) the expression whose median motion is
    ``direction``; and the reader's spread on both sets (quartiles)."""
    deviations = (neutral.double() - mean_shape.double()).flatten(1)
    centre = deviations.mean(0)
    covariance = torch.cov((deviations - centre).T)
    size = covariance.shape[0]
    shrunk = (1 - shrinkage) * covariance + shrinkage * torch.trace(covariance) / size * torch.eye(size).double()
    p = direction.double().flatten()
    weighted = torch.linalg.solve(shrunk, p)
    weights = weighted / (p @ weighted)
    expressive_amounts = ((expressive.double() - mean_shape.double()).flatten(1) - centre) @ weights
    typical = expressive_amounts.median()
    weights, bias = weights / typical, (centre @ weights) / typical
    neutral_amounts = deviations @ weights - bias
    quartiles = {f"{name} {q}": float(values.quantile(q / 100))
                 for name, values in (("neutral", neutral_amounts), ("expressive", expressive_amounts / typical))
                 for q in (25, 50, 75)}
    return weights.view_as(direction).float(), bias.float(), quartiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a mesh CycleGAN folder (e.g. checkpoints/cyclegan), rewritten")
    parser.add_argument("--mesh-data", type=Path, default=REPO_ROOT / "prepared" / "mesh_dataset")
    parser.add_argument("--range", type=float, nargs=2, default=(1.0, 1.6), metavar=("LOW", "HIGH"),
                        help="the per-face scale's bounds (1 1.6: broad smiles undone further, mild ones as before)")
    parser.add_argument("--shrinkage", type=float, default=0.5)
    args = parser.parse_args(argv)
    if not (args.mesh_data / "dataset_dict.json").is_file():
        print(f"skipped: no mesh dataset at {args.mesh_data} (python -m train.tools.prepare_meshes)")
        return 0
    model = CycleGANModel.from_pretrained(args.checkpoint).float()
    if model.config.generator_type != "mesh":
        parser.error(f"{args.checkpoint} is a {model.config.generator_type} CycleGAN; the reader needs a mesh one")
    mean_shape = model.generator_xy.mean_shape
    meshes = load_meshes(args.mesh_data, mean_shape.numpy(), "train")
    weights, bias, quartiles = fit_reader(meshes.of(model.config.domain_x), meshes.of(model.config.domain_y),
                                          model.generator_xy.priors[0], mean_shape, args.shrinkage)

    config = model.config
    config.mesh_undo_range = [float(args.range[0]), float(args.range[1])]
    fitted = CycleGANModel(config)
    missing, unexpected = fitted.load_state_dict(model.state_dict(), strict=False)  # a first fit adds the reader
    if unexpected or not set(missing) <= {"undo_amount_weights", "undo_amount_bias"}:
        raise RuntimeError(f"unexpected state: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        fitted.undo_amount_weights.copy_(weights)
        fitted.undo_amount_bias.copy_(bias)
    spread = ", ".join(f"{key} {value:.2f}" for key, value in quartiles.items())
    note = (f"{NOTE_START} (`mesh_undo_range` {config.mesh_undo_range}): the undoing of a smile scales its vertical "
            f"motion by how much smile the face shows, read linearly from its mesh, fitted on the training split's "
            f"{len(meshes.of(config.domain_x))} {config.domain_x} and {len(meshes.of(config.domain_y))} "
            f"{config.domain_y} meshes by `python -m train.tools.fit_undo_amount` (shrinkage {args.shrinkage}; the "
            f"reader's quartiles: {spread}).")
    info = dict(model.card_info)
    kept = [part for part in info.get("notes", "").split("\n\n") if part and not part.startswith(NOTE_START)]
    info["notes"] = "\n\n".join([*kept, note])
    fitted.card_info = info
    fitted = fitted.to(torch.float16)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.checkpoint.name}-", dir=args.checkpoint.parent))
    fitted.save_pretrained(staging, repo_id=str(args.checkpoint))
    shutil.rmtree(args.checkpoint)
    staging.rename(args.checkpoint)
    print(json.dumps({"mesh_undo_range": config.mesh_undo_range, **quartiles}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
