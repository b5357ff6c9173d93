"""Build the mouth exemplars (``expr_models.models.mouth_exemplars``): the open-mouth interiors of the London Set
smiles of training people. No learning; under a minute on one core with the mesh helper's caches.

    python -m train.mouth_exemplars --data ../shared/data --out checkpoints/mouth_exemplars

1. The training people's London smiles (``photo_pairs(data, "train", sources=("london",))``, ``smiling/NNN_08.jpg``)
   are meshed (the mesh helper's one-pass caches, ``--mesh-caches``, where present; else RetinaFace and the face
   mesh here, refined once).
2. A smile whose inner-lip gap (``faces.mesh.inner_lip_gap``) is over ``--min-gap`` eye distances shows its teeth:
   its interior is mapped into the mouth frame (``faces.mouth_fill.to_mouth_frame``), its inner-lip shape normalised
   by the mouth's width, and the mean colours of its lips and of the skin around the mouth are kept, if its teeth
   show (``faces.mouth_fill.teeth_contrast`` at least ``--min-contrast``: lips parted over a dark cavity, or a mesh
   that put its inner lips on the lip, is no exemplar for a smile).
3. The reach (``max_distance``): a target mouth farther from every exemplar than the farthest exemplar lies from its
   nearest neighbour keeps the dark cavity (a round surprised mouth is no smile).

Only London Set photos (CC BY 4.0) go in: the checkpoint ships their pixels, with the attribution in its card.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from expr_models.data.paired_faces import photo_pairs
from expr_models.evaluation.mesh_heldout import PhotoMesher, load_mesh_caches, read_rgb
from expr_models.faces.mesh import inner_lip_gap
from expr_models.faces.mesh_topology import LIPS_INNER, LIPS_OUTER
from expr_models.faces.mouth_fill import lip_shape, region_mean, teeth_contrast, to_mouth_frame
from expr_models.models.mouth_exemplars import MouthExemplarsConfig, MouthExemplarsModel

ATTRIBUTION = ("Face Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0, "
               "doi:10.6084/m9.figshare.5047666.v5")


def skin_ring(points: np.ndarray, scale: float = 1.6) -> np.ndarray:
    """The outer-lip polygon enlarged ``scale`` times about its centre: the skin ring around the mouth lies between."""
    outer = points[list(LIPS_OUTER), :2]
    centre = outer.mean(0)
    return centre + (outer - centre) * scale


def exemplar_of(photo: np.ndarray, points: np.ndarray) -> dict:
    inner, outer = points[list(LIPS_INNER), :2], points[list(LIPS_OUTER), :2]
    return {"interior": to_mouth_frame(photo, inner), "shape": lip_shape(inner),
            "lips": region_mean(photo, outer, inner), "skin": region_mean(photo, skin_ring(points), outer)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="checkpoints/mouth_exemplars")
    parser.add_argument("--mesh-model", default="checkpoints/face_mesh")
    parser.add_argument("--mesh-caches", type=Path, default=Path("prepared/meshes"),
                        help="the mesh helper's caches (train.tools.cache_meshes), used where present")
    parser.add_argument("--cache", default="prepared/meshes_photos", help="per-photo meshes made here when needed")
    parser.add_argument("--min-gap", type=float, default=0.05, help="inner-lip gap (eye distances) of an open mouth")
    parser.add_argument("--min-contrast", type=float, default=1.3,
                        help="teeth contrast (faces.mouth_fill.teeth_contrast) below which a mouth shows no teeth")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    from expr_models.models.face_mesh import FaceMeshModel

    precomputed = load_mesh_caches(args.mesh_caches, Path(args.data), sets=("london",)) \
        if args.mesh_caches.is_dir() else None
    mesher = PhotoMesher(FaceMeshModel.from_pretrained(args.mesh_model).eval(), cache=Path(args.cache),
                         refine=True, precomputed=precomputed)
    pairs = photo_pairs(args.data, "train", sources=("london",))
    smiles = sorted({(pair.subject, pair.target_path) for pair in pairs if pair.target_expression == "happy"})
    print(f"{len(smiles)} training London smiles", file=sys.stderr)
    kept, subjects, gaps = [], [], []
    with torch.inference_mode():
        for subject, path in smiles:
            _, mesh = mesher.photo(path)
            if mesh is None:
                print(f"no face in {path}", file=sys.stderr)
                continue
            gap = inner_lip_gap(mesh)
            if gap <= args.min_gap:
                continue
            exemplar = exemplar_of(read_rgb(path), np.asarray(mesh, np.float64))
            contrast = teeth_contrast(exemplar["interior"], exemplar["lips"])
            print(f"{subject}: gap {gap:.3f}, teeth contrast {contrast:.2f}", file=sys.stderr)
            if contrast < args.min_contrast:
                continue
            kept.append(exemplar)
            subjects.append(subject)
            gaps.append(round(float(gap), 4))
    if not kept:
        raise SystemExit("no open-mouth smile found")
    shapes = np.stack([k["shape"] for k in kept])
    # The retrieval's reach: the farthest any exemplar lies from its nearest other one (a target no farther from
    # the bank than that is as well matched as the bank's own mouths are to each other).
    distances = np.linalg.norm(shapes[:, None] - shapes[None], axis=3).mean(2)
    np.fill_diagonal(distances, np.inf)
    reach = round(float(distances.min(1).max()), 4)
    config = MouthExemplarsConfig(num_exemplars=len(kept), subjects=subjects, gaps=gaps, max_distance=reach)
    model = MouthExemplarsModel(config)
    with torch.no_grad():
        model.interiors.copy_(torch.from_numpy(np.stack([k["interior"] for k in kept]).astype(np.float16)))
        model.shapes.copy_(torch.from_numpy(shapes).float())
        model.lip_colours.copy_(torch.from_numpy(np.stack([k["lips"] for k in kept])).float())
        model.skin_colours.copy_(torch.from_numpy(np.stack([k["skin"] for k in kept])).float())
    model.card_info = {
        "license": "cc-by-4.0",  # the London Set's own licence: these are its pixels, not weights learned elsewhere
        "terms": (f"The stored interiors are London Set photos, altered (cropped, resized, warped): {ATTRIBUTION}. "
                  "Reuse them under CC BY 4.0 with this attribution. No research-only data went in."),
        "training_data": (f"{len(kept)} open-mouth smiles (inner-lip gap over {args.min_gap} eye distances, teeth "
                          "showing) of the "
                          f"{len(smiles)} London Set training people of the project's subject split (seed 0): "
                          f"{ATTRIBUTION}. The interiors are the photos' own pixels, resized and warped into a "
                          f"{config.frame_height} x {config.frame_width} mouth frame; the London Set's licence "
                          "(CC BY 4.0) allows this with the attribution above."),
        "training": "No learning: each open smile's interior, inner-lip shape and lip and skin colours, as measured.",
        "notes": "Built by `python -m train.mouth_exemplars`; used by the mesh methods' warp "
                 "(`expr_models.faces.mesh_warp.warp_face(..., mouth=model)`).",
    }
    model.save_pretrained(args.out)
    print(f"{len(kept)} exemplars (gaps {min(gaps):.3f}..{max(gaps):.3f}, reach {reach}) -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
