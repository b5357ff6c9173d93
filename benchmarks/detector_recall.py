"""What detecting on a downscaled copy costs in faces found: the recall of the default RetinaFace detector and of the
Haar cascade on WIDER FACE (val) against their time, for several ``max_side`` settings, at the photos' own size and at
twice it.

    python benchmarks/detector_recall.py                 # needs ../shared/data/wider_face; skips cleanly without it
    python benchmarks/detector_recall.py --images 60 --detectors retinaface

Reads the research data at run time only (nothing from it is written anywhere but the JSON's counts). A ground-truth
face counts as found when a detection overlaps it with IoU >= 0.3 (Haar's box runs from the eyebrows to the mouth,
WIDER's round the whole head, so the usual 0.5 would count good detections as misses; RetinaFace is scored on its own
boxes, ``framing="raw"``, at any roll, and also at IoU 0.5). Recall is given per face size (the longer side of the
ground-truth box, in photo pixels) for faces of at least ``--min-face`` pixels, the editor's default smallest face;
"extra" counts detections that match no ground-truth face at IoU 0.3 (false positives, or faces WIDER marked
invalid or left out).

The anchor is Haar with ``max_side=1024``, the setting before issue 8; times are medians per photo (the whole of
``detect_faces``: downscaling, the detector, and for RetinaFace its decoding) and ratios are against the anchor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from expr_models.evaluation.metrics import box_iou

import bench_utils as bu

SIZE_BINS = [(32, 48), (48, 72), (72, 128), (128, 100_000)]


def read_wider_boxes(root: Path, limit: int) -> list[tuple[Path, np.ndarray]]:
    """(image path, N x 4 xyxy boxes of valid faces) for val images listed in full and present on disk."""
    text = (root / "wider_face_split" / "wider_face_val_bbx_gt.txt").read_text().splitlines()
    entries, index = [], 0
    while index < len(text) and len(entries) < limit:
        name = text[index].strip()
        if not name.endswith(".jpg") or index + 1 >= len(text):
            index += 1
            continue
        try:
            count = int(text[index + 1])
        except ValueError:
            index += 1
            continue
        lines = text[index + 2:index + 2 + max(count, 1)]
        index += 2 + max(count, 1)
        if len(lines) < max(count, 1):
            break  # the file is cut short
        path = root / "WIDER_val" / "images" / name
        if not path.is_file():
            continue
        boxes = []
        for line in lines[:count]:
            values = line.split()
            if len(values) < 8:
                continue
            x, y, w, h, invalid = float(values[0]), float(values[1]), float(values[2]), float(values[3]), values[7]
            if w > 0 and h > 0 and invalid == "0":
                boxes.append((x, y, x + w, y + h))
        entries.append((path, np.array(boxes, np.float32).reshape(-1, 4)))
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bu.SHARED_DATA / "wider_face")
    parser.add_argument("--images", type=int, default=120, help="WIDER val images to use (default 120)")
    parser.add_argument("--max-sides", nargs="+", type=int, default=[1024, 640, 512])
    parser.add_argument("--detectors", nargs="+", choices=["haar", "retinaface"], default=["haar", "retinaface"],
                        help="the first detector's first max_side is the anchor")
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 2.0], help="photo upscaling factors")
    parser.add_argument("--min-face", type=float, default=32)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    if not (args.data / "wider_face_split").is_dir():
        print(f"SKIP: no WIDER FACE at {args.data} (the research data is not on this machine)")
        return 0

    import cv2
    from PIL import Image

    from expr_models.faces.detection import HaarFaceDetector, RetinaFaceDetector, detect_faces

    def make_detector(name: str, side: int):
        if name == "haar":
            return HaarFaceDetector(max_side=side)
        return RetinaFaceDetector(max_side=side, framing="raw", max_roll=None)

    info = bu.machine()
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    entries = read_wider_boxes(args.data, args.images)
    rows = []
    settings = [(name, side) for name in args.detectors for side in args.max_sides]
    detectors = {setting: make_detector(*setting) for setting in settings}
    for scale in args.scales:
        stats = {setting: {"times": [], "found": np.zeros(len(SIZE_BINS)), "found_50": 0, "extra": 0}
                 for setting in settings}
        totals = np.zeros(len(SIZE_BINS))
        for path, truth in entries:
            photo = np.asarray(Image.open(path).convert("RGB"))
            if scale != 1.0:
                photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            truth = truth * scale
            sides = np.maximum(truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1])
            bins = np.full(len(truth), -1)
            for number, (low, high) in enumerate(SIZE_BINS):
                bins[(sides >= low) & (sides < high)] = number
            for number in range(len(SIZE_BINS)):
                totals[number] += (bins == number).sum()
            for setting in settings:
                tick = time.perf_counter()
                boxes = detect_faces(photo, min_size=args.min_face, detector=detectors[setting])
                stats[setting]["times"].append(time.perf_counter() - tick)
                found = np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], np.float32).reshape(-1, 4)
                overlaps = box_iou(truth, found)
                best = overlaps.max(1) if len(found) else np.zeros(len(truth), np.float32)
                matched = best >= 0.3
                for number in range(len(SIZE_BINS)):
                    stats[setting]["found"][number] += (matched & (bins == number)).sum()
                stats[setting]["found_50"] += int(((best >= 0.5) & (bins >= 0)).sum())
                used = overlaps.max(0) >= 0.3 if len(truth) else np.zeros(len(found), bool)
                stats[setting]["extra"] += int((~used).sum())
        anchor = float(np.median(stats[settings[0]]["times"]))
        for setting in settings:
            entry = stats[setting]
            median = float(np.median(entry["times"]))
            row = {"detector": setting[0], "photo_scale": scale, "max_side": setting[1], "median_detect_s": median,
                   "ratio_to_anchor": median / anchor, "extra_detections": entry["extra"],
                   "recall_all": float(entry["found"].sum() / max(totals.sum(), 1)),
                   "recall_all_iou50": float(entry["found_50"] / max(totals.sum(), 1))}
            for number, (low, high) in enumerate(SIZE_BINS):
                label = f"recall_{low}_{high if high < 100_000 else 'up'}px"
                row[label] = float(entry["found"][number] / totals[number]) if totals[number] else None
            row["faces"] = int(totals.sum())
            rows.append(row)
        print(f"scale {scale}: {len(entries)} photos, {int(totals.sum())} faces >= {args.min_face:.0f} px", flush=True)

    columns = [("detector", "detector"), ("photo_scale", "photo scale"), ("max_side", "max_side"),
               ("median_detect_s", "detect s (median)"), ("ratio_to_anchor", "/ anchor"), ("recall_all", "recall"),
               ("recall_all_iou50", "recall @0.5"), ("recall_32_48px", "32-48 px"),
               ("recall_48_72px", "48-72 px"), ("recall_72_128px", "72-128 px"), ("recall_128_uppx", ">=128 px"),
               ("extra_detections", "extra")]
    table = bu.format_table(rows, columns)
    print(table)
    if not args.no_save:
        path = bu.save_results("detector_recall", {"benchmark": "detector_recall", "machine": info,
                                                   "settings": vars(args) | {"data": str(args.data), "output": None},
                                                   "photos": len(entries), "rows": rows, "table": table}, args.output)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
