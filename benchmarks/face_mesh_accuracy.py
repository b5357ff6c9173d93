"""The face mesh (``checkpoints/face_mesh``, ``expr_models.faces.mesh``): its error against the London Set's hand-placed
WebMorph templates, and its time per face.

    python benchmarks/face_mesh_accuracy.py                     # error on ../shared/data/london (skipped without it)
    python benchmarks/face_mesh_accuracy.py --plot /tmp/t.png   # also draw one template and the matched mesh points

1. Error. Every neutral London photo (``neutral/NNN_03.jpg``) has a 189-point template (``NNN_03.tem``). Faces are
   found by the committed RetinaFace; the mesh is run from its five landmarks (one pass, and ``refine=True``). Each
   template point below is matched to one mesh point: the nearest of the named mesh group in the median over the 67
   faces (``MATCHES`` lists them; the template's numbering was read off a plot of ``002_03`` with ``--plot``). The
   error is the distance over the template's own pupil distance (points 0 and 1), per group: mean, median, 90th
   percentile; the jaw is also scored as the distance to the mesh's face-oval line (contour points slide along it). Reads the research data at run time only; the JSON holds statistics, no image.
2. Time per face for the crop, the model and the mapping back (``face_mesh``), on scikit-image's astronaut (512 px)
   and Grace Hopper resized to 1 MP, on one and two torch threads; the anchor is the model's forward alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import bench_utils as bu

# template point -> mesh point. Template (WebMorph FRL 189): 0/1 pupils; 18 and 22 the image-left eye's outer and inner
# corners, 23 and 27 the image-right eye's inner and outer corners (20/25 upper lids, 29/32 lower lids); 71 and 76 the
# image-left brow's outer and inner ends, 77 and 82 the image-right brow's inner and outer ends; 87 and 93 the mouth
# corners; 88-92 the upper lip's outer edge (90 its midline), 94-98 its inner edge (96), 99-103 the lower lip's inner
# edge (101), 104-108 its outer edge (106); 126-132 the jaw from one angle to the other, 129 the chin.
MATCHES = {
    "mouth corners": {87: 61, 93: 291},
    "upper lip, outer midline": {90: 0},
    "lower lip, outer midline": {106: 17},
    "upper lip, inner midline": {96: 13},
    "lower lip, inner midline": {101: 14},
    "eye corners": {18: 33, 22: 133, 23: 362, 27: 263},
    "eyelid midlines": {20: 159, 29: 145, 25: 386, 32: 374},
    "brow ends": {71: 70, 76: 55, 77: 285, 82: 300},
    "jaw": {126: 172, 127: 150, 128: 176, 130: 400, 131: 379, 132: 397},
    "chin": {129: 152},
}


def read_template(path: Path) -> np.ndarray:
    """The ``189 x 2`` points of a WebMorph .tem file (first line the count, then ``x y`` per line)."""
    lines = path.read_text().split("\n")
    count = int(lines[0])
    return np.array([[float(v) for v in line.split()[:2]] for line in lines[1:count + 1]], np.float64)


def london_meshes(london: Path, model, limit: int | None = None) -> dict:
    from PIL import Image

    from expr_models.detection import make_detector
    from expr_models.faces.mesh import face_mesh_batch

    detector = make_detector("retinaface", bu.REPO_ROOT / "checkpoints")
    templates, photos, boxes, names, missed = [], [], [], [], []
    for tem in sorted((london / "neutral").glob("*.tem"))[:limit]:
        photo = np.asarray(Image.open(tem.with_suffix(".jpg")).convert("RGB"))
        faces = detector.detect(photo)
        if not faces:
            missed.append(tem.stem)
            continue
        templates.append(read_template(tem))
        photos.append(photo)
        boxes.append(faces[0])
        names.append(tem.stem)
    one_pass, presence = face_mesh_batch(photos, boxes, model, batch_size=8)
    refined, _ = face_mesh_batch(photos, boxes, model, refine=True, batch_size=8)
    return {"templates": np.array(templates), "one_pass": one_pass, "refined": refined, "presence": presence,
            "names": names, "missed": missed, "photos": photos}


# Contour points slide along their curve from one annotator's convention to another's, so the jaw is also scored by
# the distance from each template jaw point to the mesh's face-oval polyline.
JAW_POINTS = (126, 127, 128, 129, 130, 131, 132)


def distance_to_polyline(point: np.ndarray, line: np.ndarray) -> float:
    """The shortest distance from ``point`` to the closed polyline through ``line`` (``K x 2``)."""
    start, end = line, np.roll(line, -1, axis=0)
    along = end - start
    t = np.clip(((point - start) * along).sum(1) / np.maximum((along * along).sum(1), 1e-12), 0, 1)
    return float(np.linalg.norm(start + t[:, None] * along - point, axis=1).min())


def errors(templates: np.ndarray, meshes: np.ndarray) -> dict:
    from expr_models.faces.mesh import FACE_OVAL

    pupils = np.linalg.norm(templates[:, 0] - templates[:, 1], axis=1)
    table = {}
    for group, pairs in MATCHES.items():
        distance = np.concatenate([np.linalg.norm(meshes[:, m, :2] - templates[:, t], axis=1) / pupils
                                   for t, m in pairs.items()])
        table[group] = {"mean": float(distance.mean()), "median": float(np.median(distance)),
                        "p90": float(np.percentile(distance, 90)), "points": int(distance.size)}
    distance = np.array([distance_to_polyline(template[t], mesh[list(FACE_OVAL), :2]) / pupil
                         for template, mesh, pupil in zip(templates, meshes, pupils) for t in JAW_POINTS])
    table["jaw and chin, to the face oval's line"] = {
        "mean": float(distance.mean()), "median": float(np.median(distance)),
        "p90": float(np.percentile(distance, 90)), "points": int(distance.size)}
    return table


def plot(path: Path, photo: np.ndarray, template: np.ndarray, mesh: np.ndarray) -> None:
    """The template (red, numbered) and the matched mesh points (cyan) over the photo's face region, enlarged."""
    import cv2
    from PIL import Image

    low = np.floor(np.minimum(template.min(0), mesh[:, :2].min(0)) - 20).clip(0).astype(int)
    high = np.ceil(np.maximum(template.max(0), mesh[:, :2].max(0)) + 20).astype(int)
    scale = 1000 / (high - low).max()
    image = cv2.resize(photo[low[1]:high[1], low[0]:high[0]], None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_CUBIC).copy()
    for index, point in enumerate((template - low) * scale):
        cv2.circle(image, tuple(point.astype(int)), 3, (255, 0, 0), -1)
        cv2.putText(image, str(index), tuple(point.astype(int) + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 160, 0), 1)
    for pairs in MATCHES.values():
        for t, m in pairs.items():
            a, b = ((template[t] - low) * scale).astype(int), ((mesh[m, :2] - low) * scale).astype(int)
            cv2.line(image, tuple(a), tuple(b), (255, 255, 0), 1)
            cv2.circle(image, tuple(b), 4, (0, 255, 255), -1)
    Image.fromarray(image).save(path)


def timing(model, repeats: int) -> list[dict]:
    import torch

    from expr_models.detection import make_detector
    from expr_models.faces.mesh import face_mesh, mesh_crop

    detector = make_detector("retinaface", bu.REPO_ROOT / "checkpoints")
    rows = []
    for name, photo in (("astronaut 512x512", bu.astronaut()), ("Grace Hopper 1 MP", bu.photo_of_size(1.0))):
        box = detector.detect(photo)[0]
        crop = torch.from_numpy(mesh_crop(photo, box)[0]).permute(2, 0, 1)[None].float() / 127.5 - 1
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                forward = bu.measure(lambda: model(crop), repeats=repeats, warmup=3)
            one = bu.measure(lambda: face_mesh(photo, box, model), repeats=repeats, warmup=3)
            refined = bu.measure(lambda: face_mesh(photo, box, model, refine=True), repeats=repeats, warmup=3)
            rows.append({"photo": name, "threads": threads, "face_mesh_ms": 1000 * one["median_s"],
                         "refine_ms": 1000 * refined["median_s"], "forward_ms": 1000 * forward["median_s"],
                         "face_mesh_cpu_ms": 1000 * one["cpu_median_s"]})
    torch.set_num_threads(1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bu.SHARED_DATA)
    parser.add_argument("--checkpoint", type=Path, default=bu.REPO_ROOT / "checkpoints" / "face_mesh")
    parser.add_argument("--limit", type=int, default=None, help="at most this many London faces")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per setting")
    parser.add_argument("--no-timing", action="store_true", help="measure the error only")
    parser.add_argument("--plot", type=Path, default=None, help="draw the first face's template and matches here")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from expr_models.models.face_mesh import FaceMeshModel

    torch.set_num_threads(1)
    info = bu.machine()
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    model = FaceMeshModel.from_pretrained(args.checkpoint)
    result = {"benchmark": "face_mesh_accuracy", "machine": info, "matches": {g: {str(t): m for t, m in p.items()}
                                                                              for g, p in MATCHES.items()}}
    london = args.data / "london"
    if (london / "neutral").is_dir():
        found = london_meshes(london, model, args.limit)
        result["faces"] = len(found["names"])
        result["missed"] = found["missed"]
        result["presence_min"] = float(found["presence"].min())
        rows = []
        for setting in ("one_pass", "refined"):
            table = errors(found["templates"], found[setting])
            result[f"error_{setting}"] = table
            rows += [{"setting": setting, "group": g, **v} for g, v in table.items()]
        print(f"\n{len(found['names'])} London neutral faces ({len(found['missed'])} without a detection); error "
              "over the template's pupil distance:\n")
        print(bu.format_table(rows, [("setting", "crop"), ("group", "points"), ("points", "n"), ("mean", "mean"),
                                     ("median", "median"), ("p90", "90th pct")]))
        if args.plot:
            plot(args.plot, found["photos"][0], found["templates"][0], found["one_pass"][0])
            print(f"plot of {found['names'][0]}: {args.plot}")
    else:
        print(f"SKIP the error: no London Set under {london} (the research data is not on this machine)")
    if not args.no_timing:
        result["timing"] = timing(model, args.repeats)
        print("\nTime per face (median ms; crop + model + mapping, and the model's forward alone):\n")
        print(bu.format_table(result["timing"], [("photo", "photo"), ("threads", "torch threads"),
                                                 ("face_mesh_ms", "face_mesh"), ("refine_ms", "refine=True"),
                                                 ("forward_ms", "forward"), ("face_mesh_cpu_ms", "face_mesh CPU")]))
    if not args.no_save:
        print(f"\nwrote {bu.save_results('face_mesh_accuracy', result, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
