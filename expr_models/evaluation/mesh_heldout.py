"""Mesh-motion edits measured on held-out people's photo pairs (FEI, London Set, JAFFE), and their contact sheet.

    python -m expr_models.evaluation.mesh_heldout --model checkpoints/mesh_motion --data ../shared/data \
        --split test --json runs/mesh_heldout.json --sheet runs/contact_mesh.jpg

For each pair of ``expr_models.data.paired_faces`` in the split: the source photo's face is found by the committed
RetinaFace and meshed (``expr_models.faces.mesh``, refined once); the model moves the mesh points
(``MeshMotionModel.target_points`` at ``--intensity``); the photo is warped once at full resolution
(``expr_models.faces.mesh_warp``); the edited photo is meshed again in the same box; the real target photo is meshed
on its own. Scores (``expr_models.evaluation.mesh_metrics``): gain and cosine of the edit's motion against the real
one, the mouth openings, the mouth sharpness. Photos are read at run time; nothing is copied.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from ..faces.mesh import face_mesh
from ..faces.mesh_topology import EYE_TRIANGLES, FACE_OVAL, LIPS_INNER, MOUTH_TRIANGLES, TRIANGLES
from ..faces.mesh_warp import warp_crop, warp_face
from .mesh_metrics import mesh_scores, motion_gain_cosine, mouth_sharpness

INNER_LIPS = np.array(LIPS_INNER)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and palette TIFFs come back as three equal channels
    if image is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_mesh_caches(folder: Path, data_root: Path, sets: tuple[str, ...] = ("fei", "london", "jaffe")) -> dict:
    """The mesh helper's caches (``train.tools.cache_meshes``: ``<folder>/<set>.npz`` with ``ids`` relative to the
    data root, ``points``, ``boxes``, ``landmarks``, ``presence``) of ``sets`` as ``{resolved photo path: (box,
    mesh)}``; faces the mesh model scored under 0.5 map to ``(None, None)``."""
    from ..faces.geometry import FaceBox

    meshes = {}
    for name in sets:
        file = Path(folder) / f"{name}.npz"
        if not file.is_file():
            continue
        with np.load(file) as stored:  # each array read once (indexing the NpzFile re-reads the whole array)
            ids, points, boxes = stored["ids"], stored["points"], stored["boxes"]
            landmarks, presence = stored["landmarks"], stored["presence"]
        for i, photo_id in enumerate(ids):
            marks = None if np.isnan(landmarks[i]).any() else landmarks[i].astype(np.float64)
            box = FaceBox(*map(float, boxes[i]), landmarks=marks)
            meshes[str((Path(data_root) / str(photo_id)).resolve())] = \
                (box, points[i].astype(np.float64)) if presence[i] >= 0.5 else (None, None)
    return meshes


class PhotoMesher:
    """Box and mesh of a photo's largest face (RetinaFace, then the face mesh; ``refine``: re-cropped once around the
    first mesh), cached per file in an ``.npz`` under ``cache`` (a folder under ``prepared/``). ``precomputed``:
    ``{resolved path: (box, mesh)}`` (:func:`load_mesh_caches`) used first."""

    def __init__(self, mesh_model, detector=None, cache: Path | None = None, refine: bool = True,
                 precomputed: dict | None = None):
        from ..faces.detection import default_detector

        self.model = mesh_model
        self.detector = detector or default_detector()
        self.cache = Path(cache) if cache else None
        self.refine = refine
        self.memory: dict[str, tuple] = dict(precomputed or {})

    def _file(self, path: Path) -> Path | None:
        name = "_".join(Path(path).resolve().parts[-3:]).replace(".", "_")
        return self.cache / f"{name}{'' if self.refine else '_one_pass'}.npz" if self.cache else None

    def photo(self, path: Path):
        """``(box, mesh)`` for the photo at ``path`` (``None, None`` where no face is found)."""
        key = str(Path(path).resolve())
        if key in self.memory:
            return self.memory[key]
        file = self._file(path)
        if file is not None and file.is_file():
            from ..faces.geometry import FaceBox

            stored = np.load(file)
            box = FaceBox(*stored["box"][:5].tolist(), landmarks=stored["landmarks"]) if len(stored["box"]) else None
            result = (box, stored["mesh"] if len(stored["mesh"]) else None)
        else:
            result = self.mesh_of(read_rgb(path))
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                box, mesh = result
                np.savez(file, box=[] if box is None else [box.x0, box.y0, box.x1, box.y1, box.score],
                         landmarks=[] if box is None else box.landmarks, mesh=[] if mesh is None else mesh)
        self.memory[key] = result
        return result

    def mesh_of(self, photo: np.ndarray, box=None):
        """``(box, mesh)`` of a photo array; ``box`` given: mesh that face (no detection)."""
        if box is None:
            from ..faces.detection import detect_faces

            boxes = detect_faces(photo, detector=self.detector)
            if not boxes:
                return None, None
            box = boxes[0]
        import torch

        with torch.inference_mode():
            return box, face_mesh(photo, box, self.model, refine=self.refine).astype(np.float64)


def edit_photo(photo: np.ndarray, mesh: np.ndarray, motion_model, source: str, target: str, intensity: float = 1.0,
               controls: dict | None = None, fill_mouth: bool = True):
    """The photo with its face moved by the mesh motion, warped once (the whole photo is the crop: only the moved
    region is touched). ``fill_mouth=False``: no cavity in a newly opened mouth (the bare warp). Returns
    ``(edited, target_points)``."""
    target_points = motion_model.target_points(mesh, source, target, intensity, controls)
    if fill_mouth:
        return warp_face(photo, mesh, target_points).image, target_points
    triangles = np.array(TRIANGLES + MOUTH_TRIANGLES + EYE_TRIANGLES)
    return warp_crop(photo, mesh, target_points, triangles=triangles, boundary=np.array(FACE_OVAL)).image, \
        target_points


def evaluate_pairs(pairs, motion_model, mesher: PhotoMesher, intensity: float = 1.0, keep_images: int = 0):
    """One row of scores per pair; the first ``keep_images`` pairs' (input, edit, real) photos in ``images``."""
    rows, images = [], []
    for pair in pairs:
        box, mesh = mesher.photo(pair.source_path)
        _, real = mesher.photo(pair.target_path)
        if mesh is None or real is None:
            rows.append({"dataset": pair.dataset, "subject": pair.subject, "pair": pair.pair, "missing": True})
            continue
        photo = read_rgb(pair.source_path)
        edited, intended = edit_photo(photo, mesh, motion_model, pair.source_expression, pair.target_expression,
                                      intensity)
        _, edit_mesh = mesher.mesh_of(edited, box)
        # How much of the motion the warp was given the re-mesh finds (the gain's ceiling with this protocol).
        tracked = motion_gain_cosine(mesh, edit_mesh, intended)[0]
        row = {"dataset": pair.dataset, "subject": pair.subject, "pair": pair.pair,
               **mesh_scores(mesh, edit_mesh, real), "tracked": tracked,
               "sharpness": mouth_sharpness(photo, edited, mesh, edit_mesh),
               "sharpness_half": mouth_sharpness(photo, edited, mesh, edit_mesh, scale=0.5),
               # the bare warp's sharpness (no cavity, whose flat dark patch and edges change the measure)
               "sharpness_warp": mouth_sharpness(photo, edit_photo(photo, mesh, motion_model, pair.source_expression,
                                                                   pair.target_expression, intensity, None, False)[0],
                                                 mesh, edit_mesh)}
        rows.append(row)
        if len(images) < keep_images:
            images.append((pair, photo, edited, read_rgb(pair.target_path), box))
    return rows, images


def summarise(rows: list[dict]) -> dict:
    """Medians (and means of gain/cosine) per dataset and pair."""
    groups = defaultdict(list)
    for row in rows:
        if not row.get("missing"):
            groups[f"{row['dataset']} {row['pair']}"].append(row)
    summary = {}
    for name, group in sorted(groups.items()):
        summary[name] = {"pairs": len(group), "missing": sum(1 for r in rows if r.get("missing") and
                                                            f"{r['dataset']} {r['pair']}" == name)}
        for key in ("gain", "cosine", "gap_source", "gap_edit", "gap_real", "sharpness", "sharpness_half",
                    "sharpness_warp", "tracked"):
            values = np.array([r[key] for r in group], np.float64)
            summary[name][key] = float(np.nanmedian(values))
        summary[name]["gain_mean"] = float(np.nanmean([r["gain"] for r in group]))
        summary[name]["cosine_mean"] = float(np.nanmean([r["cosine"] for r in group]))
    return summary


def face_square(photo: np.ndarray, box, scale: float = 1.6) -> np.ndarray:
    """The photo's square around the face box at full resolution (no resampling), clipped to the photo."""
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    half = scale * max(box.x1 - box.x0, box.y1 - box.y0) / 2
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, photo.shape[1])), int(min(cy + half, photo.shape[0]))
    return photo[y0:y1, x0:x1]


def contact_sheet(images, path: Path, footer: str | None = None) -> None:
    """Rows of input | edit | the same person's real photo, each the face square at its photo's resolution (rows of
    different sizes are padded, never scaled)."""
    rows = []
    for pair, photo, edited, real, box in images:
        real_box = box  # the real photo's face is near the same place (same session, same framing)
        tiles = [face_square(photo, box), face_square(edited, box), face_square(real, real_box)]
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
        row = np.concatenate(tiles, 1)
        label = f"{pair.dataset} {pair.subject} {pair.pair}: input | edit | real"
        cv2.putText(row, label, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(row, label, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    if footer:
        strip = np.full((40, sheet.shape[1], 3), 255, np.uint8)
        cv2.putText(strip, footer, (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([sheet, strip])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


def main(argv: list[str] | None = None) -> int:
    from ..models.face_mesh import FaceMeshModel
    from ..models.mesh_motion import MeshMotionModel
    from ..data.paired_faces import photo_pairs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="checkpoints/mesh_motion")
    parser.add_argument("--mesh-model", default="checkpoints/face_mesh")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sources", nargs="+", default=["fei", "london", "jaffe"])
    parser.add_argument("--intensity", type=float, default=1.0)
    parser.add_argument("--cache", default="prepared/meshes_photos", help="per-photo mesh cache (git-ignored)")
    parser.add_argument("--one-pass", action="store_true", help="mesh without the refining second pass")
    parser.add_argument("--mesh-caches", type=Path, default=None,
                        help="the mesh helper's prepared/meshes folder: source and real photos' meshes from it "
                             "(needs --one-pass, the protocol they were made with)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, default=None, help="contact sheet of London and FEI people")
    parser.add_argument("--sheet-people", type=int, default=6)
    args = parser.parse_args(argv)

    motion_model = MeshMotionModel.from_pretrained(args.model)
    precomputed = load_mesh_caches(args.mesh_caches, Path(args.data)) if args.mesh_caches else None
    mesher = PhotoMesher(FaceMeshModel.from_pretrained(args.mesh_model).eval(), cache=Path(args.cache),
                         refine=not args.one_pass, precomputed=precomputed)
    pairs = photo_pairs(args.data, args.split, sources=tuple(args.sources))
    rows, _ = evaluate_pairs(pairs, motion_model, mesher, args.intensity)
    summary = summarise(rows)
    for name, values in summary.items():
        print(f"{name:32s} n={values['pairs']:3d} gain {values['gain']:.2f} (mean {values['gain_mean']:.2f}) "
              f"cos {values['cosine']:.2f} gap src {values['gap_source']:.3f} edit {values['gap_edit']:.3f} "
              f"real {values['gap_real']:.3f} sharp {values['sharpness']:.2f} (half-res {values['sharpness_half']:.2f}, "
              f"warp-only {values['sharpness_warp']:.2f}) tracked {values['tracked']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"intensity": args.intensity, "split": args.split, "summary": summary,
                                         "rows": rows}, indent=1))
    if args.sheet:
        chosen = []
        for dataset in ("london", "fei"):
            subjects = list(dict.fromkeys(p.subject for p in pairs if p.dataset == dataset))
            per = args.sheet_people // 2
            for subject in subjects[:per]:
                chosen += [p for p in pairs if p.dataset == dataset and p.subject == subject and
                           p.source_expression == ("neutral" if len(chosen) % 2 == 0 else "happy")][:1]
        _, images = evaluate_pairs(chosen, motion_model, mesher, args.intensity, keep_images=len(chosen))
        contact_sheet(images, args.sheet, footer="London Set faces: Face Research Lab London Set, DeBruine & Jones "
                                                 "(2017), CC BY 4.0. FEI face database (research use).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
