"""Build the expression shading (``expr_models.models.expression_shading``): the median expression ratio image of
real smiles, in a shape-free texture. No learning beyond medians and one line fit; two minutes on one core with the
mesh helper's caches.

    python -m train.expression_shading --data ../shared/data --out checkpoints/expression_shading

1. The training people's neutral -> smiling pairs of FEI and the London Set (``photo_pairs(data, "train")``; JAFFE's
   scans differ in exposure and framing between takes, which swamps the shading) are meshed (the mesh helper's
   caches where present, else RetinaFace and the face mesh here, refined once).
2. The smile direction: the median canonical motion of those pairs over ``faces.shading.SMILE_POINTS``; each pair's
   smile coefficient is its own motion projected on it (about 1).
3. Each photo becomes a grey shape-free texture (``faces.shading.to_texture``: warped onto the mean mesh of
   ``--mesh-motion``); each pair gives a log ratio image (smiling over neutral). Their median per unit of smile is the
   map; the lips and eyes (which the mouth models and the warp own) are cut out with a soft edge.
4. The lighting law: each pair's ratio projected on the map, per unit of its smile, against the skin contrast of its
   neutral photo (``faces.shading.skin_contrast``), fitted as a power law in log-log (pairs with a clear smile only).
   Validation people's pairs report how much of their real ratio the map explains, with and without the law.
5. The other expressions' furrows (``--class-faces`` per expression, the mesh helper's ``fer2013_train`` cache): each
   FER2013 training face (the project's split, seed 0; validation faces left out) as a grey shape-free texture at
   ``class_texture_size`` px, its log less its median over the face; per expression the median over its faces, less
   the neutral faces' median. A population, not pairs: FER2013 has no neutral photo of the same person, but two
   thousand faces per expression average identity and lighting away and leave what the expression does to the
   skin. The eyes and the mouth (with the chin below it, where the mesh under-tracks a dropped jaw and the median
   shows the dark mouth) are cut out with a soft edge. Without the cache this step is skipped (the smile alone).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from expr_models.data.paired_faces import photo_pairs
from expr_models.data.records import BuildReport
from expr_models.data.sources import scan_fer2013
from expr_models.evaluation.mesh_heldout import PhotoMesher, load_mesh_caches, read_rgb
from expr_models.faces.mesh_motion import canonical_displacement
from expr_models.faces.mesh_topology import FACE_OVAL, LEFT_EYE, LEFT_NOSTRIL, LIPS_OUTER, RIGHT_EYE, RIGHT_NOSTRIL
from expr_models.faces.shading import (SKIN_FEATURES, SMILE_POINTS, log_ratio, log_texture, polygon_mask,
                                       skin_contrast, skin_mask, smile_coefficient, texture_points, to_texture)
from expr_models.models.expression_shading import ExpressionShadingConfig, ExpressionShadingModel
from expr_models.models.mesh_motion import MeshMotionModel

SOURCES = ("fei", "london")
MIN_SMILE = 0.3  # a pair whose motion holds less smile than this says little about a smile's shading
CLASS_NAMES = ("angry", "disgust", "fear", "sad", "surprise")  # happy has the paired map; neutral is the reference
CLASS_CACHE = "fer2013_train"  # the mesh helper's cache of FER2013's training faces
MIN_PRESENCE = 0.8  # faces the mesh is less sure of than this are left out of the furrow maps


def smile_pairs(mesher: PhotoMesher, data: str, split: str) -> list[dict]:
    """The split's neutral -> happy pairs of ``SOURCES`` with both photos meshed: paths, meshes."""
    pairs = []
    for pair in photo_pairs(data, split, sources=SOURCES):
        if (pair.source_expression, pair.target_expression) != ("neutral", "happy"):
            continue
        (_, neutral), (_, smiling) = mesher.photo(pair.source_path), mesher.photo(pair.target_path)
        if neutral is None or smiling is None:
            print(f"{pair.dataset} {pair.subject}: no face mesh, left out", file=sys.stderr)
            continue
        pairs.append({"dataset": pair.dataset, "subject": pair.subject, "neutral_path": pair.source_path,
                      "smiling_path": pair.target_path, "neutral": neutral, "smiling": smiling})
    return pairs


def feature_cutout(texture: np.ndarray, size: int, scale: float) -> np.ndarray:
    """1 on the texture's skin below the eyes, 0 on the lips, eyes and nostrils and outside the face, with a soft
    edge. Above the eyes' line (and a twentieth of an eye distance below it, for a tilted head) it is 0, fading in over
    a tenth of an eye distance further down: a smile's ratio above the eyes is noise (half a percent of its energy),
    and the smile control must leave the eyes, brows and forehead alone. The nostrils: a smile flares and lifts them,
    so the median ratio there is a dark hole moving off its place, not skin (its two brightest spots, log ratio 0.2
    against at most 0.1 on the skin, drew white rims under edited noses)."""
    grow = max(1, round(0.04 * scale))
    mask = skin_mask(texture, (size, size), erode=grow, features=SKIN_FEATURES + (RIGHT_NOSTRIL, LEFT_NOSTRIL))
    mask = cv2.GaussianBlur(mask, (0, 0), 0.04 * scale) * polygon_mask(texture[list(FACE_OVAL)], (size, size))
    eye_line = texture[list(RIGHT_EYE) + list(LEFT_EYE), 1].mean()
    rows = np.arange(size, dtype=np.float32)[:, None]
    return mask * np.clip((rows - eye_line - 0.05 * scale) / (0.1 * scale), 0.0, 1.0)


def furrow_cutout(texture: np.ndarray, size: int, scale: float, eye_margin: float = 0.1, mouth_margin: float = 0.15,
                  chin: float = 0.3, soft: float = 0.1) -> np.ndarray:
    """1 on the face where the furrow maps apply, 0 on the eyes (grown by ``eye_margin`` eye distances), the mouth
    (grown by ``mouth_margin``, and ``chin`` further down: at 48 px the mesh under-tracks a dropped jaw, and the dark
    mouth of surprise shows below the mean lower lip) and outside the face, with a soft edge (``soft``)."""
    holes = np.zeros((size, size), np.uint8)
    for part, margin in ((RIGHT_EYE, eye_margin), (LEFT_EYE, eye_margin), (LIPS_OUTER, mouth_margin)):
        hull = np.zeros((size, size), np.uint8)
        cv2.fillPoly(hull, [cv2.convexHull(np.round(texture[list(part)]).astype(np.int32))], 1)
        radius = max(1, round(margin * scale))
        hull = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
        if part is LIPS_OUTER:
            down = round(chin * scale)
            hull = cv2.dilate(hull, np.ones((2 * down + 1, 1), np.uint8), anchor=(0, 2 * down))
        holes |= hull
    keep = (1.0 - holes) * cv2.erode(polygon_mask(texture[list(FACE_OVAL)], (size, size)), np.ones((3, 3), np.uint8))
    return (cv2.GaussianBlur(keep.astype(np.float32), (0, 0), soft * scale) * keep).astype(np.float32)


def furrow_maps(data: Path, cache: Path, texture: np.ndarray, size: int, scale: float, per_class: int,
                seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per expression of ``CLASS_NAMES``: the median normalised log texture of up to ``per_class`` FER2013 training
    faces (``cache``: the mesh helper's ``fer2013_train.npz``) less the neutral faces' median; and the face counts."""
    records = scan_fer2013(data / "fer2013", BuildReport("fer2013"), seed)
    training = {str(r.path.resolve()) for r in records if r.split == "train"}
    with np.load(cache) as stored:
        ids, points, presence = stored["ids"], stored["points"], stored["presence"]
    face = polygon_mask(texture[list(FACE_OVAL)], (size, size))
    rng = np.random.default_rng(seed)
    medians, counts = {}, {}
    for name in ("neutral",) + CLASS_NAMES:
        chosen = [i for i, photo in enumerate(ids) if Path(photo).parent.name == name and
                  presence[i] >= MIN_PRESENCE and str((data / str(photo)).resolve()) in training]
        chosen = rng.permutation(chosen)[:per_class]
        logs = []
        for i in chosen:
            grey = cv2.imread(str(data / str(ids[i])), cv2.IMREAD_GRAYSCALE)
            if grey is None:
                print(f"{ids[i]}: unreadable, left out", file=sys.stderr)
                continue
            logs.append(log_texture(to_texture(grey, points[i][:, :2].astype(np.float64), texture, size, scale), face))
        if not logs:
            raise SystemExit(f"no FER2013 training faces of {name} in {cache}")
        medians[name], counts[name] = np.median(np.stack(logs), axis=0), len(logs)
        print(f"{name}: {len(logs)} faces", file=sys.stderr)
    return {name: medians[name] - medians["neutral"] for name in CLASS_NAMES}, counts


def measure(pairs: list[dict], texture: np.ndarray, mean: np.ndarray, direction: np.ndarray, size: int,
            scale: float) -> None:
    """Each pair's log ratio image, smile coefficient and skin contrast (in place)."""
    face = polygon_mask(texture[list(FACE_OVAL)], (size, size))
    for pair in pairs:
        neutral_photo, smiling_photo = read_rgb(pair["neutral_path"]), read_rgb(pair["smiling_path"])
        pair["ratio"] = log_ratio(to_texture(smiling_photo, pair["smiling"], texture, size, scale),
                                  to_texture(neutral_photo, pair["neutral"], texture, size, scale), face)
        pair["smile"] = smile_coefficient(pair["neutral"], pair["smiling"], direction, mean)
        pair["contrast"] = skin_contrast(neutral_photo, pair["neutral"], scale)


def explained(pairs: list[dict], maps: list[np.ndarray], skin: np.ndarray) -> float:
    """1 - (residual energy / ratio energy) on the skin, over all pairs (1: the maps are the real ratios)."""
    residual = sum(float((((pair["ratio"] - shading) * skin) ** 2).sum()) for pair, shading in zip(pairs, maps))
    total = sum(float(((pair["ratio"] * skin) ** 2).sum()) for pair in pairs)
    return 1.0 - residual / max(total, 1e-12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="checkpoints/expression_shading")
    parser.add_argument("--mesh-model", default="checkpoints/face_mesh")
    parser.add_argument("--mesh-motion", default="checkpoints/mesh_motion", help="its mean mesh is the texture's")
    parser.add_argument("--mesh-caches", type=Path, default=Path("prepared/meshes"),
                        help="the mesh helper's caches (train.tools.cache_meshes), used where present")
    parser.add_argument("--cache", default="prepared/meshes_photos", help="per-photo meshes made here when needed")
    parser.add_argument("--texture-size", type=int, default=256)
    parser.add_argument("--texture-scale", type=float, default=80.0)
    parser.add_argument("--class-texture-size", type=int, default=128)
    parser.add_argument("--class-faces", type=int, default=2000, help="FER2013 faces per expression for the furrows")
    parser.add_argument("--class-weight", type=float, default=1.5,
                        help="the furrow maps' scale at weight 1 (1.5: chosen on validation crops, SA-GAN success "
                             "over seven targets 38.5%% without, 41.1%% at 1, 42.1%% at 1.5)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if not Path(args.data, "fei").is_dir() and not Path(args.data, "london").is_dir():
        print(f"skipped: no FEI or London Set under {args.data}")
        return 0

    from expr_models.models.face_mesh import FaceMeshModel

    precomputed = load_mesh_caches(args.mesh_caches, Path(args.data), sets=SOURCES) \
        if args.mesh_caches.is_dir() else None
    mesher = PhotoMesher(FaceMeshModel.from_pretrained(args.mesh_model).eval(), cache=Path(args.cache),
                         refine=True, precomputed=precomputed)
    mean = MeshMotionModel.from_pretrained(args.mesh_motion).mean_mesh.detach().double().numpy()[:, :2]
    size, scale = args.texture_size, args.texture_scale
    texture = texture_points(mean, size, scale)

    with torch.inference_mode():
        train, validation = smile_pairs(mesher, args.data, "train"), smile_pairs(mesher, args.data, "validation")
    if not train:
        raise SystemExit("no neutral -> happy training pairs with face meshes")
    motions = [canonical_displacement(p["neutral"][:, :2], p["smiling"][:, :2], mean)[list(SMILE_POINTS)]
               for p in train]
    direction = np.median(np.stack(motions), axis=0)
    measure(train, texture, mean, direction, size, scale)
    measure(validation, texture, mean, direction, size, scale)

    # The median ratio per unit of smile, cut out of the lips and eyes.
    cutout = feature_cutout(texture, size, scale)
    smiles = np.array([p["smile"] for p in train])
    unit = np.median(np.stack([p["ratio"] for p in train]), axis=0) / np.median(smiles) * cutout
    skin = cutout > 0.5

    # The lighting law: per pair, how much of the map its ratio holds per unit of smile, against its skin contrast.
    def depth(pair):
        return float((pair["ratio"][skin] * unit[skin]).sum() / (unit[skin] ** 2).sum()) / pair["smile"]

    fit = [(depth(p), p["contrast"]) for p in train if p["smile"] > MIN_SMILE and np.isfinite(p["contrast"])]
    fit = np.array([(d, c) for d, c in fit if d > 0.05])
    reference = float(np.median(fit[:, 1]))
    power, offset = np.polyfit(np.log(fit[:, 1] / reference), np.log(fit[:, 0]), 1)
    # The other expressions' furrows, where the FER2013 mesh cache is there.
    cache = args.mesh_caches / f"{CLASS_CACHE}.npz"
    class_size = args.class_texture_size
    class_scale = scale * class_size / size
    if cache.is_file():
        furrows, class_counts = furrow_maps(Path(args.data), cache, texture_points(mean, class_size, class_scale),
                                            class_size, class_scale, args.class_faces)
        cutout = furrow_cutout(texture_points(mean, class_size, class_scale), class_size, class_scale)
        furrows = {name: furrow * cutout for name, furrow in furrows.items()}
    else:
        print(f"no {cache} (python -m train.tools.cache_meshes --sets {CLASS_CACHE}): the smile map alone",
              file=sys.stderr)
        furrows, class_counts = {}, {}
    config = ExpressionShadingConfig(texture_size=size, texture_scale=scale, contrast_reference=round(reference, 4),
                                     contrast_power=round(float(power), 3),
                                     people=len({(p["dataset"], p["subject"]) for p in train}),
                                     class_names=list(furrows), class_texture_size=class_size,
                                     class_weight=args.class_weight, class_faces=sum(class_counts.values()))
    model = ExpressionShadingModel(config)
    with torch.no_grad():
        model.log_ratio.copy_(torch.from_numpy(unit * np.exp(offset)).float())
        model.smile_direction.copy_(torch.from_numpy(direction).float())
        model.mean_mesh.copy_(torch.from_numpy(mean).float())
        if furrows:
            model.class_log_ratio.copy_(torch.from_numpy(np.stack(list(furrows.values()))).float())

    # Validation people: the share of their real ratio images the shading explains (pooled map alone, and with the
    # lighting law), on the skin, each given its own measured smile.
    lines = []
    for source in SOURCES:
        chosen = [p for p in validation if p["dataset"] == source]
        if not chosen:
            continue
        plain = [unit * p["smile"] for p in chosen]
        lit = [model.log_ratio.numpy() * p["smile"] * model.amount(read_rgb(p["neutral_path"]), p["neutral"])
               for p in chosen]
        lines.append(f"{source} ({len(chosen)} pairs): {explained(chosen, plain, skin):.3f} (one map), "
                     f"{explained(chosen, lit, skin):.3f} (with the lighting law)")
    counts = {source: sum(p["dataset"] == source for p in train) for source in SOURCES}
    furrow_data = (f" The furrows: FER2013 training faces (the project's split, seed 0), "
                   + ", ".join(f"{name} {count}" for name, count in class_counts.items())
                   + f", grey shape-free textures of {class_size} px." if furrows else "")
    model.card_info = {
        "training_data": (f"{len(train)} neutral -> smiling photo pairs of the training people of the project's "
                          f"subject split (seed 0): FEI {counts['fei']}, London Set {counts['london']}. Grey "
                          f"shape-free textures, {size} px, {scale:g} px per eye distance." + furrow_data),
        "training": ("No learning: the median log ratio image of the pairs per unit of smile; the lighting law "
                     f"amount = (skin contrast / {reference:.4f}) ** {power:.3f}, a least-squares line in log-log "
                     f"over {len(fit)} pairs with a clear smile."
                     + (" The furrows: per expression the median normalised log texture less the neutral faces', "
                        f"the eyes, mouth and chin cut out; scale {args.class_weight:g} at weight 1." if furrows
                        else "")),
        "evaluation": ("Share of the validation people's real ratio images (skin only) the shading explains "
                       "(1 = all, 0 = no better than none): " + "; ".join(lines) + "."),
        "notes": "Built by `python -m train.expression_shading`; used by the mesh methods' warp "
                 "(`expr_models.faces.mesh_warp.warp_face(..., shading=model)`).",
    }
    model.save_pretrained(args.out)
    print(f"{len(train)} pairs, smile {np.median(smiles):.3f}, contrast law ({reference:.4f}, {power:.3f}, "
          f"offset {offset:.3f}); validation: {'; '.join(lines)} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
