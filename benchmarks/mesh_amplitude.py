"""Per-person amplitude of the mesh motion: can a person's own neutral (or smiling) mesh predict how far their face
moves, better than the median motion (``checkpoints/mesh_motion``)? Measured in the canonical frame, on the mesh
motions themselves (no warp, no re-meshing), for validation people.

    python benchmarks/mesh_amplitude.py [--split validation] [--data ../shared/data]

Model: ridge regression from the first ``k`` whitened principal components of the person's canonical source mesh
(minus the mean) to their canonical displacement (936 numbers), fitted on the training people's FEI, London Set and
JAFFE pairs of one expression pair. Scores per held-out pair, medians over pairs: gain (prediction projected on the
real motion over the real motion's length), cosine, and the relative error |prediction - real| / |real|. Meshes
come from the cache of ``expr_models.evaluation.mesh_heldout`` (computed when missing). Skips without the data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def pair_data(pairs, mesher, mean, name):
    from expr_models.faces.mesh_motion import canonical_displacement, normalise

    X, Y, datasets = [], [], []
    for pair in pairs:
        if pair.pair != name:
            continue
        source, target = mesher.photo(pair.source_path)[1], mesher.photo(pair.target_path)[1]
        if source is None or target is None:
            continue
        X.append((normalise(source, mean)[0] - mean).ravel())
        Y.append(canonical_displacement(source, target, mean).ravel())
        datasets.append(pair.dataset)
    return np.array(X), np.array(Y), np.array(datasets)


def scores(predicted: np.ndarray, real: np.ndarray) -> dict:
    dot = (predicted * real).sum(1)
    return {"gain": float(np.median(dot / (real * real).sum(1))),
            "cosine": float(np.median(dot / np.linalg.norm(predicted, axis=1) / np.linalg.norm(real, axis=1))),
            "error": float(np.median(np.linalg.norm(predicted - real, axis=1) / np.linalg.norm(real, axis=1)))}


def ridge(X, Y, k: int, lam: float):
    """Fitted predictor ``x -> y``: whitened PCA scores of ``x``, ridge with ``lam``."""
    x_mean, y_mean = X.mean(0), Y.mean(0)
    _, singular, vt = np.linalg.svd(X - x_mean, full_matrices=False)
    basis = vt[:k].T / singular[:k]
    Z = (X - x_mean) @ basis
    W = np.linalg.solve(Z.T @ Z + lam * np.eye(k), Z.T @ (Y - y_mean))
    return lambda x: (x - x_mean) @ basis @ W + y_mean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--model", default="checkpoints/mesh_motion")
    parser.add_argument("--mesh-model", default="checkpoints/face_mesh")
    parser.add_argument("--cache", default="prepared/meshes_photos")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"no data at {args.data}; skipped")
        return 0
    import torch

    from expr_models.evaluation.mesh_heldout import PhotoMesher
    from expr_models.models.face_mesh import FaceMeshModel
    from expr_models.models.mesh_motion import MeshMotionModel
    from expr_models.data.paired_faces import photo_pairs

    torch.set_num_threads(1)
    motion = MeshMotionModel.from_pretrained(args.model)
    mean = motion.mean_mesh.detach().numpy().astype(np.float64)
    mesher = PhotoMesher(FaceMeshModel.from_pretrained(args.mesh_model).eval(), cache=Path(args.cache))
    train, held = photo_pairs(args.data, "train"), photo_pairs(args.data, args.split)
    results = {}
    for name in ("neutral->happy", "happy->neutral"):
        X, Y, _ = pair_data(train, mesher, mean, name)
        Xv, Yv, datasets = pair_data(held, mesher, mean, name)
        median = motion.pair_motion(*name.split("->")).ravel()
        predictors = {"median": lambda x: np.repeat(median[None], len(x), 0)}
        for k in (5, 10, 20):
            for lam in (1.0, 10.0):
                predictors[f"ridge k={k} lambda={lam:g}"] = ridge(X, Y, k, lam)
        for subset in ("all", "fei", "london", "jaffe"):
            chosen = np.ones(len(datasets), bool) if subset == "all" else datasets == subset
            if not chosen.any():
                continue
            for label, predict in predictors.items():
                row = scores(predict(Xv[chosen]), Yv[chosen])
                results[f"{name} {subset} {label}"] = {**row, "pairs": int(chosen.sum()), "train_pairs": len(X)}
                print(f"{name:15s} {subset:6s} n={chosen.sum():2d} {label:22s} gain {row['gain']:.2f} "
                      f"cos {row['cosine']:.2f} err {row['error']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
