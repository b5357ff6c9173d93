"""How RetinaFace's boxes relate to the Haar boxes every training crop was framed from, and whether the mapping in
``expr_models.faces.detection.retinaface`` (``framing="haar"``) gives crops the committed classifier reads as well as
Haar's.

    python benchmarks/face_framing.py                  # needs ../shared/data (JAFFE, FEI; WIDER for the cross-check)
    python benchmarks/face_framing.py --wider-photos 0 # JAFFE and FEI only

Reads the research data at run time only; the JSON holds statistics and counts, no image or file name.

1. Calibration: every JAFFE and FEI photo where both ``HaarFaceDetector()`` and ``RetinaFaceDetector(framing="raw")``
   find exactly one face. In units of the RetinaFace box (width w, height h): the Haar box centre's offset from the
   RetinaFace box centre, and from the eyes' midpoint along the eyes-to-mouth line; the Haar side against w, h, and
   the landmark distances. Median, IQR, 5-95% and per source. The medians of the landmark form are the constants
   committed in ``expr_models/retinaface.py``; the script prints them next to the committed ones.
2. Agreement: IoU between the Haar box and the mapped RetinaFace square (committed constants), and the raw RetinaFace
   box, on those photos and on the WIDER FACE val faces both detectors find (IoU >= 0.3 pairs; a check in the wild,
   not used for fitting).
3. The classifier (``checkpoints/classifier``, 7 classes, 64 px) on crops framed from Haar boxes, from mapped
   RetinaFace boxes and from raw RetinaFace boxes, cut and scaled as the editor does (``crop_face`` at full
   resolution, area-resized, luminance): JAFFE photos of the subjects the classifier did not train on (the
   validation and test subjects of the seed-0 subject split) and all FEI photos (FEI is not in its training data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from expr_models.evaluation.metrics import box_iou

import bench_utils as bu


def _stats(values: np.ndarray, sources: np.ndarray | None = None) -> dict:
    q5, q25, q50, q75, q95 = np.percentile(values, [5, 25, 50, 75, 95])
    row = {"median": float(q50), "q1": float(q25), "q3": float(q75), "p5": float(q5), "p95": float(q95),
           "std": float(values.std())}
    if sources is not None:
        for source in sorted(set(sources.tolist())):
            row[f"median_{source}"] = float(np.median(values[sources == source]))
    return row


def _xyxy(boxes) -> np.ndarray:
    return np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], np.float32).reshape(-1, 4)


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([box_iou(a[i:i + 1], b[i:i + 1])[0, 0] for i in range(len(a))], np.float32)


def calibration(haar: np.ndarray, raw: np.ndarray, landmarks: np.ndarray, sources: np.ndarray) -> dict:
    """Statistics of the Haar box against the raw RetinaFace box and landmarks (one row per face)."""
    hx, hy = (haar[:, 0] + haar[:, 2]) / 2, (haar[:, 1] + haar[:, 3]) / 2
    side = haar[:, 2] - haar[:, 0]
    rx, ry = (raw[:, 0] + raw[:, 2]) / 2, (raw[:, 1] + raw[:, 3]) / 2
    rw, rh = raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]
    eyes = (landmarks[:, 0] + landmarks[:, 1]) / 2
    mouth = (landmarks[:, 3] + landmarks[:, 4]) / 2
    down = (mouth - eyes) / np.linalg.norm(mouth - eyes, axis=1, keepdims=True)
    across = np.stack([-down[:, 1], down[:, 0]], axis=1)
    offset = np.stack([hx, hy], axis=1) - eyes
    eye_distance = np.linalg.norm(landmarks[:, 1] - landmarks[:, 0], axis=1)
    eye_mouth = np.linalg.norm(mouth - eyes, axis=1)
    return {
        "faces": int(len(haar)),
        "box_aspect_w_over_h": _stats(rw / rh, sources),
        "centre_dx_over_w": _stats((hx - rx) / rw, sources),
        "centre_dy_over_h": _stats((hy - ry) / rh, sources),
        "centre_below_eyes_over_w": _stats((offset * down).sum(1) / rw, sources),
        "centre_sideways_of_eyes_over_w": _stats((offset * across).sum(1) / rw, sources),
        "side_over_w": _stats(side / rw, sources),
        "side_over_h": _stats(side / rh, sources),
        "side_over_eye_distance": _stats(side / eye_distance, sources),
        "side_over_eye_to_mouth": _stats(side / eye_mouth, sources),
    }


def agreement(haar: np.ndarray, raw: np.ndarray, mapped: np.ndarray, sources: np.ndarray | None = None) -> dict:
    mapped_iou, raw_iou = _paired_iou(haar, mapped), _paired_iou(haar, raw)
    hs, ms = haar[:, 2] - haar[:, 0], mapped[:, 2] - mapped[:, 0]
    return {"faces": int(len(haar)), "iou_mapped": _stats(mapped_iou, sources), "iou_raw": _stats(raw_iou, sources),
            "mean_iou_mapped": float(mapped_iou.mean()), "mean_iou_raw": float(raw_iou.mean()),
            "haar_side_over_mapped_side": _stats(hs / ms, sources),
            "centre_distance_over_haar_side": _stats(
                np.linalg.norm((haar[:, :2] + haar[:, 2:]) / 2 - (mapped[:, :2] + mapped[:, 2:]) / 2, axis=1) / hs,
                sources)}


def held_out_photos(data: Path) -> list[tuple[np.ndarray, str, str]]:
    """(RGB photo, expression, source) for the classifier's held-out JAFFE subjects and every FEI photo."""
    from PIL import Image

    from expr_models.data import BuildReport, scan_fei, scan_jaffe, split_subjects

    jaffe = scan_jaffe(data / "jaffe", BuildReport("jaffe"))
    # The classifier's recipe splits JAFFE by subject with seed 0 (train/tools/prepare_data.py's default).
    split = split_subjects((r.subject for r in jaffe), seed=0)
    records = [r for r in jaffe if split[r.subject] != "train"] + scan_fei(data / "fei", BuildReport("fei"))
    photos = []
    for record in records:
        with Image.open(record.path) as image:
            photos.append((np.asarray(image.convert("RGB")), record.expression, record.source))
    return photos


def classifier_check(photos, framings: dict[str, list], classifier) -> dict:
    """Accuracy of ``classifier`` on each framing's crops (7 classes; and happy vs neutral on those photos)."""
    import cv2
    import torch

    from expr_models.faces.geometry import crop_face
    from expr_models.faces.processing import rgb_to_ycbcr

    config = classifier.config
    names = list(config.class_names)
    truth = np.array([names.index(expression) for _, expression, _ in photos])
    sources = np.array([source for _, _, source in photos])
    pair = [names.index("happy"), names.index("neutral")]
    happy_or_neutral = np.isin(truth, pair)
    result: dict = {"photos": int(len(photos)), "per_source": {str(s): int((sources == s).sum()) for s in sorted(set(sources.tolist()))}}
    predictions = {}
    for framing, boxes in framings.items():
        batch = []
        for (photo, _, _), box in zip(photos, boxes):
            crop, _ = crop_face(photo, box)
            small = cv2.resize(crop, (config.resolution, config.resolution), interpolation=cv2.INTER_AREA)
            batch.append(rgb_to_ycbcr(small)[..., 0] / 127.5 - 1.0)
        with torch.inference_mode():
            logits = classifier(torch.from_numpy(np.stack(batch)[:, None]).float()).logits.numpy()
        predicted = logits.argmax(1)
        binary = np.array(pair)[logits[:, pair].argmax(1)]
        predictions[framing] = predicted
        row = {"accuracy_7": float((predicted == truth).mean()),
               "happy_vs_neutral_accuracy": float((binary == truth)[happy_or_neutral].mean()),
               "happy_neutral_photos": int(happy_or_neutral.sum())}
        for source in sorted(set(sources.tolist())):
            row[f"accuracy_7_{source}"] = float((predicted == truth)[sources == source].mean())
        result[framing] = row
    first = next(iter(predictions))
    for framing in list(predictions)[1:]:
        result[f"same_prediction_{framing}_vs_{first}"] = float((predictions[framing] == predictions[first]).mean())
    return result


def wider_pairs(data: Path, photos: int):
    """(haar, raw, landmarks) for WIDER val faces both detectors find: mutually best pairs at IoU >= 0.3."""
    from PIL import Image

    from detector_recall import read_wider_boxes
    from expr_models.faces.detection import HaarFaceDetector, RetinaFaceDetector, detect_faces

    haar_detector, raw_detector = HaarFaceDetector(), RetinaFaceDetector(framing="raw")
    haar, raw, landmarks = [], [], []
    entries = read_wider_boxes(data, photos)
    for path, _ in entries:
        photo = np.asarray(Image.open(path).convert("RGB"))
        found_haar = _xyxy(detect_faces(photo, min_size=32, detector=haar_detector))
        found = raw_detector.detect(photo)
        if not len(found_haar) or not found:
            continue
        found_raw = _xyxy(found)
        overlaps = box_iou(found_haar, found_raw)
        for i in range(len(found_haar)):
            j = int(overlaps[i].argmax())
            if overlaps[i, j] >= 0.3 and int(overlaps[:, j].argmax()) == i:
                haar.append(found_haar[i])
                raw.append(found_raw[j])
                landmarks.append(found[j].landmarks)
    return len(entries), np.array(haar).reshape(-1, 4), np.array(raw).reshape(-1, 4), np.array(landmarks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bu.SHARED_DATA)
    parser.add_argument("--classifier", type=Path, default=bu.REPO_ROOT / "checkpoints" / "classifier")
    parser.add_argument("--wider-photos", type=int, default=351, help="WIDER val photos for the cross-check (0: none)")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    if not (args.data / "jaffe").is_dir() or not (args.data / "fei").is_dir():
        print(f"SKIP: no JAFFE/FEI under {args.data} (the research data is not on this machine)")
        return 0

    from PIL import Image

    from expr_models.data import BuildReport, scan_fei, scan_jaffe
    from expr_models.faces.detection import retinaface
    from expr_models.faces.detection import HaarFaceDetector, detect_faces

    info = bu.machine()
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    haar_detector, raw_detector = HaarFaceDetector(), retinaface.RetinaFaceDetector(framing="raw")
    records = scan_jaffe(args.data / "jaffe", BuildReport("jaffe")) + scan_fei(args.data / "fei", BuildReport("fei"))
    haar, raw, landmarks, sources, counts = [], [], [], [], {"photos": len(records), "haar_one": 0, "retinaface_one": 0}
    for record in records:
        with Image.open(record.path) as image:
            photo = np.asarray(image.convert("RGB"))
        found_haar = detect_faces(photo, detector=haar_detector)
        found_raw = detect_faces(photo, detector=raw_detector)
        counts["haar_one"] += len(found_haar) == 1
        counts["retinaface_one"] += len(found_raw) == 1
        if len(found_haar) == 1 and len(found_raw) == 1:
            haar.append(_xyxy(found_haar)[0])
            raw.append(_xyxy(found_raw)[0])
            landmarks.append(found_raw[0].landmarks)
            sources.append(record.source)
    haar, raw, landmarks, sources = np.array(haar), np.array(raw), np.array(landmarks), np.array(sources)
    counts["both_one"] = int(len(haar))
    stats = calibration(haar, raw, landmarks, sources)
    fitted = {"HAAR_CENTRE_BELOW_EYES": stats["centre_below_eyes_over_w"]["median"],
              "HAAR_SIDE": stats["side_over_w"]["median"],
              "HAAR_CENTRE_UP_FROM_BOX": -stats["centre_dy_over_h"]["median"]}
    committed = {name: getattr(retinaface, name) for name in fitted}
    mapped = retinaface.haar_framing_arrays(raw, landmarks)
    result = {"benchmark": "face_framing", "machine": info, "counts": counts, "calibration": stats,
              "fitted_constants": fitted, "committed_constants": committed,
              "agreement_jaffe_fei": agreement(haar, raw, mapped, sources)}
    print(f"{counts['photos']} JAFFE+FEI photos; one face: Haar {counts['haar_one']}, RetinaFace "
          f"{counts['retinaface_one']}, both {counts['both_one']}")
    for name, row in stats.items():
        if isinstance(row, dict):
            extra = ", ".join(f"{k[7:]} {v:.4f}" for k, v in row.items() if k.startswith("median_"))
            print(f"  {name:32s} median {row['median']:+.4f}  IQR {row['q1']:+.4f}..{row['q3']:+.4f}  "
                  f"5-95% {row['p5']:+.4f}..{row['p95']:+.4f}  ({extra})")
    print("fitted: " + ", ".join(f"{k} {v:.4f}" for k, v in fitted.items()))
    print("committed: " + ", ".join(f"{k} {v}" for k, v in committed.items()))
    check = result["agreement_jaffe_fei"]
    print(f"IoU with the Haar box, JAFFE+FEI: mapped mean {check['mean_iou_mapped']:.3f} (median "
          f"{check['iou_mapped']['median']:.3f}, 5% {check['iou_mapped']['p5']:.3f}); raw mean {check['mean_iou_raw']:.3f}")

    if args.wider_photos and (args.data / "wider_face" / "wider_face_split").is_dir():
        photos, w_haar, w_raw, w_landmarks = wider_pairs(args.data / "wider_face", args.wider_photos)
        if len(w_haar):
            check = agreement(w_haar, w_raw, retinaface.haar_framing_arrays(w_raw, w_landmarks))
            result["agreement_wider"] = {"photos": photos, **check}
            print(f"IoU with the Haar box, {check['faces']} WIDER val faces found by both in {photos} photos: mapped "
                  f"mean {check['mean_iou_mapped']:.3f} (median {check['iou_mapped']['median']:.3f}); raw mean "
                  f"{check['mean_iou_raw']:.3f}; Haar side / mapped side median "
                  f"{check['haar_side_over_mapped_side']['median']:.3f}")

    if (args.classifier / "config.json").is_file():
        from expr_models.faces.detection import RetinaFaceDetector
        from expr_models.models.classifier import ExpressionClassifier

        classifier = ExpressionClassifier.from_pretrained(args.classifier).float().eval()
        photos = held_out_photos(args.data)
        mapped_detector = RetinaFaceDetector()
        framings: dict[str, list] = {"haar": [], "retinaface_mapped": [], "retinaface_raw": []}
        kept = []
        for photo in photos:
            found = [detect_faces(photo[0], detector=d) for d in (haar_detector, mapped_detector, raw_detector)]
            if all(len(f) == 1 for f in found):
                kept.append(photo)
                for name, boxes in zip(framings, found):
                    framings[name].append(boxes[0])
        check = classifier_check(kept, framings, classifier)
        check["photos_without_exactly_one_face"] = len(photos) - len(kept)
        result["classifier"] = check
        print(f"Classifier on {check['photos']} held-out photos ({check['per_source']}):")
        for framing in framings:
            row = check[framing]
            print(f"  {framing:18s} 7-class accuracy {row['accuracy_7']:.3f} (jaffe {row.get('accuracy_7_jaffe', 0):.3f}, "
                  f"fei {row.get('accuracy_7_fei', 0):.3f}); happy vs neutral {row['happy_vs_neutral_accuracy']:.3f} "
                  f"on {row['happy_neutral_photos']}")
        for key, value in check.items():
            if key.startswith("same_prediction"):
                print(f"  {key}: {value:.3f}")

    info["load_average_at_end"] = bu.load_average()
    if not args.no_save:
        path = bu.save_results("face_framing", result, args.output)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
