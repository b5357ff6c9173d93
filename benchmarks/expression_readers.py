"""How well each expression reader reads real held-out faces: the project's classifier and the second reader.

    python benchmarks/expression_readers.py                       # checkpoints/classifier and checkpoints/second_reader
    python benchmarks/expression_readers.py --readers runs/x/final checkpoints/second_reader --crop-fractions 0.8 0.9

Reads ``../shared/data`` at run time only (skips cleanly without it); the JSON holds numbers, no image or file name.
The faces are the project's held-out test split (``train.classifier_data.collect``, seed 0): FER2013's test split
(7,178 faces), CK+'s test subjects, and the JAFFE, FEI and London Set test people cut as the editor cuts them (default
detector, ``FaceImageProcessor``, luminance), each cut at the reader's own resolution (FER2013's own 48x48 pixels for a
48 px reader).

Per reader: accuracy and per-class recall on FER2013 test and on every held-out face; happy vs neutral on the FEI and
London test photos (the larger of the two probabilities decides); expected calibration error (15 bins) on every
held-out face; milliseconds to read one face (batch of 1, after the crop, median), on the torch threads given.
``--crop-fractions`` also reads the editor-framed faces (JAFFE, FEI, London) through their centre square, for a
reader whose own training crops were tighter (the second reader's MTCNN boxes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import bench_utils as bu

PHOTO_SOURCES = ("jaffe", "fei", "london")


def load_faces(data_root: Path, resolution: int) -> dict[str, np.ndarray]:
    from train.classifier_data import collect

    part = collect(data_root, resolution, splits=("test",))["test"]
    return {"images": np.stack(part["images"]), "labels": np.array(part["labels"]),
            "sources": np.array(part["sources"])}


def centre(images: torch.Tensor, fraction: float) -> torch.Tensor:
    side = images.shape[-1]
    keep = round(side * fraction)
    start = (side - keep) // 2
    return images[..., start:start + keep, start:start + keep]


def summarise(probs: torch.Tensor, labels: np.ndarray, sources: np.ndarray) -> dict:
    from expr_models.labels import EXPRESSIONS
    from expr_models.evaluation.metrics import per_class_recall
    from expr_models.evaluation.readings import expected_calibration_error

    labels_t = torch.as_tensor(labels)
    predicted = probs.argmax(-1)

    def block(mask: np.ndarray) -> dict:
        mask_t = torch.as_tensor(mask)
        if not mask_t.any():
            return {"faces": 0}
        recall = per_class_recall(predicted[mask_t], labels_t[mask_t], len(EXPRESSIONS))
        return {"faces": int(mask_t.sum()), "accuracy": float((predicted[mask_t] == labels_t[mask_t]).double().mean()),
                "recall": {name: r for name, r in zip(EXPRESSIONS, recall) if not np.isnan(r)}}

    result = {"fer2013_test": block(sources == "fer2013"), "all_held_out": block(np.ones(len(labels), bool))}
    result["per_source"] = {source: block(sources == source)["accuracy"] for source in sorted(set(sources.tolist()))}
    result["ece_all_held_out"] = expected_calibration_error(probs, labels_t)
    happy, neutral = EXPRESSIONS.index("happy"), EXPRESSIONS.index("neutral")
    pairs = np.isin(sources, ("fei", "london")) & np.isin(labels, (happy, neutral))
    if pairs.any():
        mask_t = torch.as_tensor(pairs)
        two_way = torch.where(probs[mask_t, happy] >= probs[mask_t, neutral], happy, neutral)
        result["happy_vs_neutral_fei_london"] = {"faces": int(pairs.sum()),
                                                 "accuracy": float((two_way == labels_t[mask_t]).double().mean()),
                                                 "seven_way_accuracy": block(pairs)["accuracy"]}
    return result


def read_time(reader, resolution: int, channels: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    pixels = torch.rand(1, channels, resolution, resolution) * 2 - 1
    with torch.inference_mode():
        timing = bu.measure(lambda: reader(pixels), repeats=50, warmup=5)
    torch.set_num_threads(1)
    return {"threads": threads, "ms_median": 1000 * timing["median_s"], "ms_q3": 1000 * timing["q3_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=Path, nargs="+",
                        default=[bu.REPO_ROOT / "checkpoints/classifier", bu.REPO_ROOT / "checkpoints/second_reader"])
    parser.add_argument("--data", type=Path, default=bu.SHARED_DATA)
    parser.add_argument("--crop-fractions", type=float, nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the per-face time")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "fer2013").is_dir():
        print(f"skipped: no FER2013 at {args.data / 'fer2013'} (the research data is not on this machine)")
        return 0

    import expr_models  # noqa: F401  (registers the model types)
    from transformers import AutoModel

    from expr_models.evaluation.readings import probabilities

    torch.set_num_threads(1)
    cut: dict[int, dict] = {}  # resolution -> the faces cut at it
    result = {"machine": bu.machine(), "readers": {}}
    for folder in args.readers:
        reader = AutoModel.from_pretrained(folder).eval()
        config = reader.config
        if config.resolution not in cut:
            cut[config.resolution] = load_faces(args.data, config.resolution)
        faces = cut[config.resolution]
        result["faces"] = {s: int((faces["sources"] == s).sum()) for s in sorted(set(faces["sources"].tolist()))}
        images = torch.from_numpy(faces["images"]).float()[:, None] / 127.5 - 1.0
        photos = torch.as_tensor(np.isin(faces["sources"], PHOTO_SOURCES))
        row = summarise(probabilities(reader, images), faces["labels"], faces["sources"])
        row["config"] = {k: getattr(config, k, None) for k in ("model_type", "resolution", "in_channels",
                                                               "temperature", "flip_average")}
        row["read_time"] = read_time(reader, config.resolution, config.in_channels, args.threads)
        for fraction in args.crop_fractions:
            cropped = images.clone()
            inner = centre(images[photos], fraction)
            cropped_photos = torch.nn.functional.interpolate(inner, size=images.shape[-1], mode="bicubic",
                                                             align_corners=False).clamp(-1, 1)
            cropped[photos] = cropped_photos
            probs = probabilities(reader, cropped)
            photo_rows = summarise(probs[photos], faces["labels"][photos.numpy()], faces["sources"][photos.numpy()])
            row.setdefault("photo_crop_fractions", {})[str(fraction)] = {
                "accuracy": photo_rows["all_held_out"]["accuracy"],
                "happy_vs_neutral": photo_rows.get("happy_vs_neutral_fei_london", {}).get("accuracy")}
        result["readers"][str(folder)] = row
        fer, everything = row["fer2013_test"], row["all_held_out"]
        print(f"{folder}: FER2013 test {fer['accuracy']:.4f} ({fer['faces']}); all held-out "
              f"{everything['accuracy']:.4f} ({everything['faces']}); ECE {row['ece_all_held_out']:.4f}; "
              f"{row['read_time']['ms_median']:.2f} ms/face")
        print("  FER2013 recall: " + ", ".join(f"{k} {v:.3f}" for k, v in fer["recall"].items()))
        print("  held-out recall: " + ", ".join(f"{k} {v:.3f}" for k, v in everything["recall"].items()))
        print("  per source: " + ", ".join(f"{k} {v:.3f}" for k, v in row["per_source"].items()))
        if "happy_vs_neutral_fei_london" in row:
            hn = row["happy_vs_neutral_fei_london"]
            print(f"  happy vs neutral, FEI + London test: {hn['accuracy']:.4f} ({hn['faces']} faces; 7-way "
                  f"{hn['seven_way_accuracy']:.4f})")
        for fraction, values in row.get("photo_crop_fractions", {}).items():
            print(f"  editor photos through the centre {fraction}: accuracy {values['accuracy']:.4f}, happy vs "
                  f"neutral {values['happy_vs_neutral']}")
    if not args.no_save:
        print(f"Saved {bu.save_results('expression_readers', result, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
