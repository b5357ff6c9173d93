"""Cache the 468-point face mesh of every training photo in prepared/meshes/, one .npz per set (resumable, one thread).

    nohup python -m train.tools.cache_meshes > runs/cache_meshes.log 2>&1 &      # every set, in the order below
    python -m train.tools.cache_meshes --sets fei london jaffe                    # some sets

Sets (``--data``, default ../shared/data): ``fei`` (every ``Na``/``Nb`` photo), ``london`` (``neutral/NNN_03`` and
``smiling/NNN_08``), ``jaffe`` (all), ``genki4k`` (all), ``ckplus48``, ``fer2013_train``, ``fer2013_test``.

Whole photos (FEI, London, JAFFE, GENKI-4K): the largest face RetinaFace finds (the committed detector, boxes in the
editor's Haar framing) and one mesh pass from its five landmarks. Where no face is found the whole photo is used as
the box, as for the 48x48 sets. CK+ and FER2013 are 48x48 face crops: the whole image is the box
(``expr_models.faces.mesh.roi_from_box`` enlarges it), and the mesh is refined once around its first pass.

Each ``<set>.npz`` holds, for N photos in file order:
  ``ids``        N strings: the path under the data folder, e.g. ``fei/107a.jpg``, ``fer2013/train/happy/Training_1.jpg``
  ``points``     N x 468 x 3 float32: the mesh in photo pixels (x, y; z the depth on the same scale, smaller nearer)
  ``boxes``      N x 4 float32: the face box (x0, y0, x1, y1; photo pixels) the crop was placed from
  ``landmarks``  N x 5 x 2 float32: RetinaFace's eyes, nose tip, mouth corners (NaN where the box is the whole photo)
  ``presence``   N float32: the mesh model's face-presence score (below 0.5: no face it recognises; drop those)
  ``detected``   N bool: RetinaFace found the face (False: the whole photo was the box)
  ``sizes``      N x 2 int32: the photo's height and width
Work goes in chunks to prepared/meshes/parts/<set>/ and is merged when a set is complete; a rerun skips done chunks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

SETS = ("fei", "london", "jaffe", "genki4k", "ckplus48", "fer2013_train", "fer2013_test")
WHOLE_IMAGE_SETS = ("ckplus48", "fer2013_train", "fer2013_test")
CHUNK = 500


def list_files(data: Path, name: str) -> list[Path]:
    patterns = {
        "fei": ["fei/*.jpg"], "london": ["london/neutral/*_03.jpg", "london/smiling/*_08.jpg"],
        "jaffe": ["jaffe/*.tiff"], "genki4k": ["genki4k/files/*.jpg"], "ckplus48": ["ckplus48/*/*.png"],
        "fer2013_train": ["fer2013/train/*/*.jpg"], "fer2013_test": ["fer2013/test/*/*.jpg"],
    }[name]
    return sorted(path for pattern in patterns for path in data.glob(pattern))


def run_chunk(paths: list[Path], data: Path, whole_image: bool, model, detector) -> dict:
    from PIL import Image

    from expr_models.faces.detection import detect_faces
    from expr_models.faces.geometry import FaceBox
    from expr_models.faces.mesh import face_mesh_batch

    photos, boxes, detected = [], [], []
    for path in paths:
        with Image.open(path) as image:
            photo = np.asarray(image.convert("RGB"))
        faces = [] if whole_image else detect_faces(photo, min_size=0, detector=detector)
        height, width = photo.shape[:2]
        photos.append(photo)
        boxes.append(faces[0] if faces else FaceBox(0.0, 0.0, float(width), float(height)))
        detected.append(bool(faces))
    points = np.zeros((len(paths), 468, 3), np.float32)
    presence = np.zeros(len(paths), np.float32)
    detected = np.array(detected)
    for flag, refine in ((True, False), (False, True)):  # landmarks: one pass; a bare box: refined once
        chosen = np.flatnonzero(detected == flag)
        if chosen.size:
            points[chosen], presence[chosen] = face_mesh_batch([photos[i] for i in chosen],
                                                               [boxes[i] for i in chosen], model, refine=refine)
    landmarks = np.full((len(paths), 5, 2), np.nan, np.float32)
    for i, box in enumerate(boxes):
        if box.landmarks is not None:
            landmarks[i] = box.landmarks
    return {"ids": np.array([path.relative_to(data).as_posix() for path in paths]), "points": points,
            "boxes": np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], np.float32), "landmarks": landmarks,
            "presence": presence, "detected": detected,
            "sizes": np.array([photo.shape[:2] for photo in photos], np.int32)}


def cache_set(name: str, data: Path, out: Path, model, detector, limit: int | None = None) -> Path | None:
    paths = list_files(data, name)[:limit]
    if not paths:
        print(f"{name}: no files under {data}; skipped", flush=True)
        return None
    target = out / f"{name}.npz"
    if target.is_file():
        print(f"{name}: {target} exists; skipped", flush=True)
        return target
    parts = out / "parts" / name
    parts.mkdir(parents=True, exist_ok=True)
    started = time.time()
    chunks = range(0, len(paths), CHUNK)
    for number, start in enumerate(chunks):
        part = parts / f"{number:05d}.npz"
        if part.is_file():
            continue
        result = run_chunk(paths[start:start + CHUNK], data, name in WHOLE_IMAGE_SETS, model, detector)
        np.savez(parts / f"{number:05d}.tmp.npz", **result)
        os.replace(parts / f"{number:05d}.tmp.npz", part)  # a chunk is either whole or absent
        print(f"{name}: {min(start + CHUNK, len(paths))}/{len(paths)} photos, {time.time() - started:.0f} s",
              flush=True)
    loaded = [np.load(parts / f"{number:05d}.npz") for number in range(len(chunks))]
    merged = {key: np.concatenate([part[key] for part in loaded]) for key in loaded[0].files}
    if merged["ids"].tolist() != [path.relative_to(data).as_posix() for path in paths]:
        raise SystemExit(f"{name}: the chunks in {parts} do not match the files now under {data}; delete them")
    np.savez(out / f"{name}.tmp.npz", **merged)
    os.replace(out / f"{name}.tmp.npz", target)
    for part in parts.glob("*.npz"):
        part.unlink()
    parts.rmdir()
    print(f"{name}: wrote {target}: {len(paths)} photos, RetinaFace found {int(merged['detected'].sum())}, presence "
          f"below 0.5 for {int((merged['presence'] < 0.5).sum())}", flush=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("prepared/meshes"))
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--limit", type=int, default=None, help="the first N photos of each set only (a trial)")
    args = parser.parse_args(argv)

    import cv2
    import torch

    from expr_models.faces.detection.retinaface import MODEL_FILENAME, RetinaFaceDetector
    from expr_models.models.face_mesh import FaceMeshModel

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    model = FaceMeshModel.from_pretrained(args.checkpoints / "face_mesh")
    # min_size 0 and max_side None: JAFFE/FEI/GENKI photos are small, so search them whole.
    detector = RetinaFaceDetector(args.checkpoints / "face_detector" / MODEL_FILENAME, max_side=None, num_threads=1)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        cache_set(name, args.data, args.out, model, detector, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
