"""Build the average-edit baseline (``expr_models.models.average_edit``): median optical flow and median residual of
real photo pairs in the aligned face frame. Not a GAN and no training: a few seconds per hundred pairs on one core.

    python train/average_edit.py --data ../shared/data --out checkpoints/average

For every training subject's pair (``expr_models.data.paired_faces``: FEI neutral <-> smiling, JAFFE neutral -> the six
other expressions and happy -> neutral, the London Set neutral <-> smiling):
1. the source photo is aligned to the frame by its five landmarks; the target photo is put into the *source's* frame
   by its eyes and nose tip only (``alignment.align_to``), so head motion between the photos is removed and the
   expression's own motion (mouth corners, cheeks, brows) stays;
2. OpenCV's DIS optical flow from the target crop to the source crop (grey): target(p) ~ source(p + flow(p));
3. per pair (expression -> expression), the per-pixel median flow over all its photo pairs, Gaussian-smoothed;
4. each source crop warped by that median flow, and the per-pixel median of target minus warped, less each pair's
   median over the face (the photos' exposure differs, the expression does not change the face's mean): the residual;
5. both faded to zero outside the face (``alignment.frame_face_mask``), so hair, neck and borders never move.
Grey sources (FEI, JAFFE) give the same residual in every channel, so it acts as a luminance change on colour faces.
Landmarks: RetinaFace on every photo; the London Set's neutrals may use their .tem points instead
(``--london-neutral-points``; RetinaFace is the default: it aligned the pairs' upper faces as well or better, see
``--compare-london-points``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch


from expr_models.data.paired_faces import GRAYSCALE_SOURCES, SOURCES, PhotoPair, photo_pairs  # noqa: E402
from expr_models.faces.alignment import (align_face, align_to, frame_face_mask, retinaface_points,  # noqa: E402
                                         tem_points, warp_to_frame)
from expr_models.models.average_edit import AverageEditConfig, AverageEditModel  # noqa: E402

LONDON_TERMS = ("Face Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0, doi:10.6084/m9.figshare.5047666.v5")


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # palette and grey TIFFs come back as 3 equal channels
    if image is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class PointCache:
    """Five landmarks per photo, computed once (RetinaFace, or the .tem file where asked)."""

    def __init__(self, london_neutral: str = "retinaface"):
        self.london_neutral = london_neutral
        self.cache: dict[Path, np.ndarray | None] = {}

    def __call__(self, path: Path, photo: np.ndarray, tem: Path | None) -> np.ndarray | None:
        use_tem = tem is not None and self.london_neutral == "tem"
        key = Path(str(path) + (".tem" if use_tem else ""))
        if key not in self.cache:
            self.cache[key] = tem_points(tem) if use_tem else retinaface_points(photo)
        return self.cache[key]


def pair_crops(pair: PhotoPair, size: int, points: PointCache) -> tuple[np.ndarray, np.ndarray] | None:
    """The source and target photos of a pair in the source's aligned frame (RGB uint8), or None without a face."""
    source, target = read_rgb(pair.source_path), read_rgb(pair.target_path)
    source_points = points(pair.source_path, source, pair.source_tem)
    target_points = points(pair.target_path, target, pair.target_tem)
    if source_points is None or target_points is None:
        return None
    frame = align_face(source_points, size)
    return warp_to_frame(source, frame), warp_to_frame(target, align_to(target_points, frame))


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def remap_by_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p) (flow in pixels)."""
    height, width = flow.shape[:2]
    map_x = np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]
    map_y = np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def upper_face_error(source: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute grey difference over the brows and eyes band of two aligned crops (how well they align)."""
    size = source.shape[0]
    rows, cols = slice(int(0.22 * size), int(0.45 * size)), slice(int(0.2 * size), int(0.8 * size))
    a = cv2.GaussianBlur(_grey(source).astype(np.float32), (0, 0), size / 128)
    b = cv2.GaussianBlur(_grey(target).astype(np.float32), (0, 0), size / 128)
    return float(np.abs(a - b)[rows, cols].mean())


def build(pairs: list[PhotoPair], flow_size: int, resolution: int, flow_sigma: float, residual_sigma: float,
          points: PointCache) -> tuple[AverageEditModel, dict]:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    crops: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    flows: dict[str, list[np.ndarray]] = defaultdict(list)
    subjects: dict[str, set] = defaultdict(set)
    skipped = []
    for pair in pairs:
        made = pair_crops(pair, flow_size, points)
        if made is None:
            skipped.append(f"{pair.dataset}:{pair.source_path.name}->{pair.target_path.name} (no face)")
            continue
        source, target = made
        if pair.dataset in GRAYSCALE_SOURCES:  # the grey photos' colour channels are equal; keep them exactly so
            source, target = (np.repeat(_grey(c)[..., None], 3, axis=2) for c in (source, target))
        flows[pair.pair].append(dis.calc(_grey(target), _grey(source), None))
        crops[pair.pair].append((source, target))
        subjects[pair.pair].add((pair.dataset, pair.subject))

    names = sorted(crops, key=lambda name: (name.split("->")[0] != "neutral", name))
    config = AverageEditConfig(resolution=resolution, channels=3, pairs=names,
                               subjects=[len(subjects[name]) for name in names])
    model = AverageEditModel(config)
    # The edit is the face's: outside it (hair, neck, the photo's replicated border) the fields fade to zero.
    window = frame_face_mask(flow_size, feather=0.3)[..., None]
    face = frame_face_mask(flow_size) > 0.5
    for index, name in enumerate(names):
        flow = np.median(np.stack(flows[name]), axis=0)
        flow = cv2.GaussianBlur(flow, (0, 0), flow_sigma * flow_size / resolution)
        residuals = []
        for source, target in crops[name]:
            residual = target.astype(np.float32) - remap_by_flow(source, flow).astype(np.float32)
            # Exposure differs between some pairs' photos; the expression does not change the face's mean level.
            residual -= np.median(residual[face], axis=0)
            residuals.append(residual)
        residual = np.median(np.stack(residuals), axis=0)
        if residual_sigma > 0:
            residual = cv2.GaussianBlur(residual, (0, 0), residual_sigma * flow_size / resolution)
        flow, residual = flow * window, residual * window
        small_flow = cv2.resize(flow, (resolution, resolution), interpolation=cv2.INTER_AREA) / flow_size
        small_residual = cv2.resize(residual, (resolution, resolution), interpolation=cv2.INTER_AREA) / 127.5
        model.flows.data[index] = torch.from_numpy(small_flow).permute(2, 0, 1)
        model.residuals.data[index] = torch.from_numpy(small_residual).permute(2, 0, 1)
    counts = {name: {"photo_pairs": len(crops[name]), "subjects": len(subjects[name])} for name in names}
    return model, {"pairs": counts, "skipped": skipped}


def compare_london_points(data: Path, size: int) -> None:
    """Print how well the London pairs' upper faces align with RetinaFace or .tem points for the neutral."""
    pairs = [p for p in photo_pairs(data, "train", ("london",)) if p.source_tem is not None]
    for mode in ("retinaface", "tem"):
        points = PointCache(mode)
        errors = [upper_face_error(*made) for pair in pairs if (made := pair_crops(pair, size, points)) is not None]
        print(f"London neutral points from {mode}: upper-face grey error median {np.median(errors):.2f}, mean "
              f"{np.mean(errors):.2f} over {len(errors)} pairs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/average"), help="where to save the model")
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--split", default="train", help="the subjects the medians are taken over (default: train)")
    parser.add_argument("--resolution", type=int, default=128, help="side of the stored fields")
    parser.add_argument("--flow-size", type=int, default=256, help="side of the aligned crops the flow is measured on")
    parser.add_argument("--flow-sigma", type=float, default=2.0, help="smoothing of the median flow, in stored px")
    parser.add_argument("--residual-sigma", type=float, default=0.5, help="smoothing of the median residual")
    parser.add_argument("--london-neutral-points", choices=("retinaface", "tem"), default="retinaface")
    parser.add_argument("--compare-london-points", action="store_true", help="only print the alignment comparison")
    parser.add_argument("--fp32", action="store_true", help="save in float32 (default: float16, half the size)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"No data folder at {args.data}", file=sys.stderr)
        return 2
    if args.compare_london_points:
        compare_london_points(args.data, args.flow_size)
        return 0

    start = time.perf_counter()
    pairs = photo_pairs(args.data, args.split, tuple(args.sources))
    if not pairs:
        print(f"No photo pairs of split {args.split!r} under {args.data}", file=sys.stderr)
        return 2
    model, record = build(pairs, args.flow_size, args.resolution, args.flow_sigma, args.residual_sigma,
                          PointCache(args.london_neutral_points))
    used = sorted({pair.dataset for pair in pairs})
    model.card_info = {
        "training_data": (
            f"Median optical flow and residual over the {args.split} subjects' photo pairs of {', '.join(used)} "
            "(subject split of `expr_models.data.paired_faces`; FEI and JAFFE as in `expr_models.data`). Pairs and "
            "subjects: " + "; ".join(f"{name}: {c['subjects']} subjects, {c['photo_pairs']} photo pairs"
                                     for name, c in record["pairs"].items()) + "."),
        "terms": ("FEI and JAFFE are research-only (non-commercial) and their images may not be redistributed; these "
                  "fields are per-pixel medians over the subjects counted above (6 JAFFE subjects for the six "
                  "non-happy targets) and are shared for research only. The London Set: " + LONDON_TERMS + "."),
        "training": (
            f"`python train/average_edit.py --data {args.data} --out {args.out}` ({time.perf_counter() - start:.0f} s). "
            f"Aligned frame {args.flow_size} px (expr_models.faces.alignment), DIS flow (medium preset) target -> "
            f"source, per-pixel median, flow smoothed with sigma {args.flow_sigma} px and residual with sigma "
            f"{args.residual_sigma} px at the stored {args.resolution} px. London neutral landmarks: "
            f"{args.london_neutral_points}. Skipped: {len(record['skipped'])} {record['skipped'][:5]}."),
        "notes": "Deterministic: the same data gives the same fields. Grey sources give a luminance residual.",
    }
    if not args.fp32:
        model = model.half()
    model.save_pretrained(args.out)
    print(f"Saved {args.out}: " + ", ".join(f"{n} ({c['subjects']} subjects)" for n, c in record["pairs"].items())
          + f"; skipped {len(record['skipped'])}; {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
