"""Build the mesh-motion model (``expr_models.models.mesh_motion``): median mesh motions of real photo pairs of
training people, and four control directions. No learning; a minute on one core (most of it meshing the photos).

    python -m train.mesh_motion --refine --data ../shared/data --out checkpoints/mesh_motion   # the committed one
    python -m train.mesh_motion --out runs/mesh_motion_onepass        # from the mesh helper's one-pass caches

1. Every photo of the training people's pairs (``expr_models.data.paired_faces``, the project's subject split: FEI
   neutral <-> smiling, the London Set neutral <-> smiling, JAFFE neutral -> each expression and happy -> neutral) is
   meshed: RetinaFace, then the face mesh, one pass: read from the mesh helper's caches (``--mesh-caches``,
   ``train.tools.cache_meshes``) where present, else made here (``--refine``: refined once, as the evaluation does).
2. The mean mesh: the canonical mean (``faces.mesh_motion.mean_mesh``) of the training people's neutral meshes.
3. Each pair's motion: ``canonical_displacement(source mesh, target mesh, mean)``; per person the median over their
   photo pairs of that expression pair (JAFFE has several takes), then the median over people. JAFFE's neutral ->
   X pairs also give X -> neutral (the same photos read the other way).
4. Controls, each zero outside its points: ``smile`` = neutral -> happy on the lips and cheeks, with each facing pair
   of inner-lip points moved alike (the smile does not part the lips; ``mouth_open`` does); ``mouth_open`` = how
   real open mouths differ from closed ones (:func:`open_mouth_direction`: FER2013's training faces, from the mesh
   helper's cache ``--open-mouths``) on the lips, chin and jaw, scaled so that +1 parts the inner lips by
   ``--mouth-open`` eye distances; ``brows`` = neutral -> surprise on the brows, scaled to raise them ``--brow-raise``
   on average;
   ``eyes``: the lids alone, built geometrically (upper lid up, lower lid down, most at the lid's middle). Smile,
   brows and eyes fade out over the skin around their features (``tapered``: 0.2, 0.12 and 0.06 eye distances), so a
   slider leaves no crease where moved points meet still ones; those points are part of what each may move.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

from expr_models.evaluation.mesh_heldout import PhotoMesher, load_mesh_caches
from expr_models.faces.mesh import inner_lip_gap
from expr_models.faces.mesh_motion import canonical_displacement, mean_mesh, normalise
from expr_models.faces.mesh_topology import (FACE_OVAL, LEFT_BROW, LEFT_CHEEK, LEFT_EYE_LOWER, LEFT_EYE_UPPER,
                                             LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER, MOUTH_CORNERS,
                                             RIGHT_BROW, RIGHT_CHEEK, RIGHT_EYE_LOWER, RIGHT_EYE_UPPER)
from expr_models.models.mesh_motion import CONTROLS, MeshMotionConfig, MeshMotionModel, pair_name
from expr_models.data.paired_faces import photo_pairs

EXPRESSION_ORDER = ("happy", "surprise", "sad", "angry", "fear", "disgust")


def _inside(points: np.ndarray, polygon: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= -margin for x, y in points])


def control_point_sets(mean: np.ndarray) -> dict[str, list[int]]:
    """The points each control may move, from the mean mesh (canonical: y grows downwards)."""
    mean = mean[:, :2]  # the regions are drawn in the frontal plane
    lips = np.flatnonzero(_inside(mean, mean[list(LIPS_OUTER)]))
    corners = mean[list(MOUTH_CORNERS)]
    corner_y = corners[:, 1].mean()
    oval = _inside(mean, mean[list(FACE_OVAL)], margin=1e-2)
    upper_lip = set(LIPS_INNER_UPPER) | {int(i) for i in lips if mean[i, 1] < corner_y}
    lower = [i for i in range(len(mean)) if oval[i] and mean[i, 1] > corner_y + 0.02 and i not in upper_lip]
    lower = sorted(set(lower) | set(LIPS_INNER_LOWER[1:-1]))
    lids = [i for group in (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, LEFT_EYE_UPPER, LEFT_EYE_LOWER) for i in group[1:-1]]
    return {"smile": sorted({int(i) for i in lips} | set(RIGHT_CHEEK) | set(LEFT_CHEEK)),
            "mouth_open": [int(i) for i in lower],
            "brows": sorted(set(RIGHT_BROW) | set(LEFT_BROW)),
            "eyes": sorted(lids)}


def eyelid_direction(mean: np.ndarray, upper: float = 0.045, lower: float = 0.02) -> np.ndarray:
    """Lids opening: each upper-lid point up, each lower-lid point down, by ``sin(pi t)`` of the most (t: the point's
    place between the eye's corners), in eye distances."""
    direction = np.zeros_like(mean)
    for group, amount in ((RIGHT_EYE_UPPER, -upper), (LEFT_EYE_UPPER, -upper), (RIGHT_EYE_LOWER, lower),
                          (LEFT_EYE_LOWER, lower)):
        a, b = mean[group[0]], mean[group[-1]]
        for i in group[1:-1]:
            t = np.clip((mean[i] - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
            direction[i, 1] = amount * np.sin(np.pi * t)
    return direction


def closed_lips(motion: np.ndarray) -> np.ndarray:
    """``motion`` with each facing pair of inner-lip points moved alike (their mean): the mouth parts no further."""
    out = motion.copy()
    pairs = np.array([LIPS_INNER_UPPER, LIPS_INNER_LOWER])
    out[pairs[0]] = out[pairs[1]] = (motion[pairs[0]] + motion[pairs[1]]) / 2
    return out


def tapered(motion: np.ndarray, core: list[int], mean: np.ndarray, band: float,
            exclude: set[int] = frozenset()) -> tuple[np.ndarray, list[int]]:
    """``motion`` on its ``core`` points, fading out over the points within ``band`` eye distances of them (each takes
    its nearest core point's motion times a smoothstep of the distance), zero beyond: a slider moves the skin around
    its features too, so no crease forms where moved points meet still ones. Returns the motion and every point it
    moves (core + band, less ``exclude``)."""
    out = np.zeros_like(motion)
    out[core] = motion[core]
    core_points = mean[core]
    moved = set(core)
    for i in range(len(mean)):
        if i in moved or i in exclude:
            continue
        distances = np.linalg.norm(core_points - mean[i], axis=1)
        t = 1.0 - distances.min() / band
        if t > 0:
            out[i] = motion[core[int(distances.argmin())]] * t * t * (3 - 2 * t)
            moved.add(i)
    return out, sorted(moved)


def mirror_partners(mean: np.ndarray) -> np.ndarray:
    """Each point's partner across the face's midline: the point of ``mean`` nearest its mirror image."""
    mirrored = mean[:, :2] * [-1.0, 1.0]
    return np.array([int(np.argmin(np.linalg.norm(mean[:, :2] - point, axis=1))) for point in mirrored])


def symmetric(motion: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``motion`` averaged with its mirror image (x flipped, each point taking its partner's motion)."""
    flipped = motion[mirror_partners(mean)].copy()
    flipped[:, 0] *= -1.0
    return (motion + flipped) / 2.0


def open_mouth_direction(canonical: np.ndarray, labels: np.ndarray, mean: np.ndarray, parting: float,
                         closed_below: float = 0.03, open_between: tuple[float, float] = (0.25, 0.4)
                         ) -> tuple[np.ndarray, list[int]]:
    """The ``mouth_open`` control: how real open mouths differ from closed ones. ``canonical``: N x 468 x dims meshes
    in the canonical frame, ``labels`` their expressions. The median surprised face whose lips part ``open_between``
    eye distances, less the median neutral or surprised face whose lips part under ``closed_below``; made left-right
    symmetric, kept on the lips, chin and jaw, fading out over the skin within 0.1 eye distances, and scaled to part
    the lips by ``parting``. Real open mouths drop the corners a little and round the lips into an oval; JAFFE's
    surprise median, restricted to the lower lip, had dropped the lower lip beside still corners, which stretched the
    lip corners into tall streaks (the ``mouth_open`` slider at 1)."""
    gaps = np.array([inner_lip_gap(mesh) for mesh in canonical])
    usable = np.isin(labels, ("surprise", "neutral"))
    closed = usable & (gaps < closed_below)
    opened = (labels == "surprise") & (gaps > open_between[0]) & (gaps < open_between[1])
    if closed.sum() < 50 or opened.sum() < 50:
        raise ValueError(f"too few faces to measure an open mouth: {opened.sum()} open, {closed.sum()} closed")
    motion = symmetric(np.median(canonical[opened], 0) - np.median(canonical[closed], 0), mean)
    points = control_point_sets(mean)["mouth_open"]
    lips = np.flatnonzero(_inside(mean[:, :2], mean[list(LIPS_OUTER), :2]))
    core = sorted(set(points) | {int(i) for i in lips} | set(LIPS_OUTER))
    motion, moved = tapered(restricted(motion, core), core, mean[:, :2], 0.1)
    motion *= parting / (inner_lip_gap(mean + motion) - inner_lip_gap(mean))
    print(f"mouth_open: {opened.sum()} open and {closed.sum()} closed mouths; at +1 the corners drop "
          f"{motion[list(MOUTH_CORNERS), 1].mean():.3f}, the lower lip {motion[17, 1]:.3f}, the chin "
          f"{motion[152, 1]:.3f}", file=sys.stderr)
    return motion, moved


def canonical_meshes(cache: Path, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The meshes of a mesh-helper cache (``train.tools.cache_meshes``) the face mesh recognised, in the canonical
    frame of ``mean``, and their expressions (the folder each photo lies in)."""
    with np.load(cache) as stored:
        ids, points, presence = stored["ids"], stored["points"], stored["presence"]
    keep = np.flatnonzero(presence >= 0.5)
    labels = np.array([Path(str(ids[i])).parent.name for i in keep])
    canonical = np.stack([normalise(points[i].astype(np.float64), mean)[0] for i in keep])
    return canonical, labels


def restricted(motion: np.ndarray, points: list[int]) -> np.ndarray:
    out = np.zeros_like(motion)
    out[points] = motion[points]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="checkpoints/mesh_motion")
    parser.add_argument("--mesh-model", default="checkpoints/face_mesh")
    parser.add_argument("--cache", default="prepared/meshes_photos", help="per-photo meshes made here when needed")
    parser.add_argument("--mesh-caches", type=Path, default=Path("prepared/meshes"),
                        help="the mesh caches of train.tools.cache_meshes (one pass), used where present")
    parser.add_argument("--refine", action="store_true",
                        help="mesh every photo here, refined once, instead of reading --mesh-caches")
    parser.add_argument("--split", default="train", help="whose pairs to learn from (default: the training people)")
    parser.add_argument("--mouth-open", type=float, default=0.3, help="inner-lip parting at mouth_open=+1, eye dist.")
    parser.add_argument("--open-mouths", type=Path, default=Path("prepared/meshes/fer2013_train.npz"),
                        help="FER2013's training meshes (train.tools.cache_meshes), whose open and closed mouths give "
                             "the mouth_open control")
    parser.add_argument("--brow-raise", type=float, default=0.06, help="mean brow raise at brows=+1, eye distances")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    from expr_models.models.face_mesh import FaceMeshModel

    use_caches = not args.refine and args.mesh_caches.is_dir()
    precomputed = load_mesh_caches(args.mesh_caches, Path(args.data)) if use_caches else None
    mesher = PhotoMesher(FaceMeshModel.from_pretrained(args.mesh_model).eval(), cache=Path(args.cache),
                         refine=args.refine, precomputed=precomputed)
    print(f"meshes: {'the caches in ' + str(args.mesh_caches) if use_caches else 'made here'}", file=sys.stderr)
    pairs = photo_pairs(args.data, args.split)
    print(f"{len(pairs)} {args.split} pairs", file=sys.stderr)
    with torch.inference_mode():
        meshes = {}
        for pair in pairs:
            for path in (pair.source_path, pair.target_path):
                if path not in meshes:
                    meshes[path] = mesher.photo(path)[1]
    missing = [str(p) for p, m in meshes.items() if m is None]
    print(f"{len(meshes)} photos meshed, no face in {len(missing)}: {missing[:5]}", file=sys.stderr)

    neutrals = {p.source_path for p in pairs if p.source_expression == "neutral" and meshes[p.source_path] is not None}
    mean = mean_mesh([meshes[path] for path in sorted(neutrals)])

    per_person: dict[str, dict[tuple[str, str], list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for pair in pairs:
        source, target = meshes[pair.source_path], meshes[pair.target_path]
        if source is None or target is None:
            continue
        person = (pair.dataset, pair.subject)
        per_person[pair.pair][person].append(canonical_displacement(source, target, mean))
        if pair.dataset == "jaffe" and pair.source_expression == "neutral" and pair.target_expression != "happy":
            reverse = pair_name(pair.target_expression, "neutral")
            per_person[reverse][person].append(canonical_displacement(target, source, mean))
    names = [pair_name("neutral", e) for e in EXPRESSION_ORDER] + [pair_name(e, "neutral") for e in EXPRESSION_ORDER]
    names = [n for n in names if per_person.get(n)]
    motions, subjects = [], []
    for name in names:
        people = per_person[name]
        motions.append(np.median(np.stack([np.median(np.stack(v), 0) for v in people.values()]), 0))
        subjects.append(len(people))
        datasets = sorted({d for d, _ in people})
        print(f"{name:20s} {len(people):3d} people ({', '.join(datasets)})", file=sys.stderr)

    point_sets = control_point_sets(mean)
    by_name = dict(zip(names, motions))
    # The smile slider widens and lifts; parting the lips is mouth_open's job (real smiles range from closed, the
    # London Set's, to open, FEI's), so the two combine freely.
    # Lips and cheeks move fully, the skin within 0.2 eye distances of them fades out.
    smile, point_sets["smile"] = tapered(closed_lips(by_name["neutral->happy"]), point_sets["smile"], mean, 0.2)
    happy_parting = inner_lip_gap(mean + by_name["neutral->happy"]) - inner_lip_gap(mean)
    print(f"smile: the happy median parts the lips {happy_parting:.3f}, the smile control "
          f"{inner_lip_gap(mean + smile) - inner_lip_gap(mean):.3f}", file=sys.stderr)
    surprise = by_name["neutral->surprise"]
    if not args.open_mouths.is_file():
        raise SystemExit(f"no {args.open_mouths}: make it with python -m train.tools.cache_meshes --sets fer2013_train")
    mouth, point_sets["mouth_open"] = open_mouth_direction(*canonical_meshes(args.open_mouths, mean), mean,
                                                           args.mouth_open)
    brows = restricted(surprise, point_sets["brows"])
    raise_ = -brows[point_sets["brows"], 1].mean()
    brows *= args.brow_raise / raise_
    lids = {i for group in (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, LEFT_EYE_UPPER, LEFT_EYE_LOWER) for i in group}
    brows, point_sets["brows"] = tapered(brows, point_sets["brows"], mean, 0.12, exclude=lids)
    # The lids, and the skin within 0.06 eye distances of them (not the eye corners, not the brows) fading out.
    eyes, point_sets["eyes"] = tapered(eyelid_direction(mean), point_sets["eyes"], mean, 0.06,
                                       exclude=set(point_sets["brows"]) | {33, 133, 362, 263})
    print(f"brows: surprise raises them {raise_:.3f} (scaled x{args.brow_raise / raise_:.2f})", file=sys.stderr)

    config = MeshMotionConfig(pairs=names, subjects=subjects, controls=list(CONTROLS),
                              control_points=[point_sets[c] for c in CONTROLS])
    model = MeshMotionModel(config)
    with torch.no_grad():
        model.mean_mesh.copy_(torch.from_numpy(mean))
        model.motions.copy_(torch.from_numpy(np.stack(motions)))
        model.directions.copy_(torch.from_numpy(np.stack([smile, mouth, brows, eyes])))
    counts = {dataset: len({p.subject for p in pairs if p.dataset == dataset})
              for dataset in ("fei", "london", "jaffe")}
    model.card_info = {
        "training_data": (f"Mesh motions of the training people of the project's subject split (seed 0): FEI "
                          f"{counts['fei']}, London Set {counts['london']}, JAFFE {counts['jaffe']} people; meshes by "
                          "the committed RetinaFace and face mesh ("
                          + ("refined once" if args.refine else "one pass, train.tools.cache_meshes") + ")."),
        "training": ("No learning: per expression pair, the median over people (each person's own median first) of "
                     "the canonical mesh displacement. Controls: smile = the happy median on lips and cheeks, "
                     "lips kept closed (facing inner-lip points moved alike); "
                     "mouth_open = FER2013's median open surprised face less its median closed mouth, on the "
                     f"lips, chin and jaw (left-right symmetric), +1 parts the lips by {args.mouth_open} eye "
                     "distances, below 0 the lips close by that share of their opening; brows = the surprise "
                     f"median on the brows, +1 raises them {args.brow_raise} on average; eyes = geometric lid opening (upper lid 0.045, lower 0.02)."),
        "notes": "Built by `python -m train.mesh_motion`; measured by `python -m expr_models.evaluation.mesh_heldout`.",
    }
    model.save_pretrained(args.out)
    print(f"saved {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
