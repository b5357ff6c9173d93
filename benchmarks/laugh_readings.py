"""A smile with the mouth opened: is it read as happy, with a laugh's whole upper teeth or with a gasp's edges?

    python benchmarks/laugh_readings.py [--split validation test] [--methods cyclegan sagan] [--mouth-open 0.5 1]

Held-out London Set people's neutral photos (colour, 1024 px) are edited whole by the editor to happy with the
``mouth_open`` control at each value, once as the editor does it (a dark opening no stored smile fits gets the whole
upper teeth of the nearest clean stored smile, ``mesh_warp.LAUGHING_TARGETS``) and once with the gasp's edges of the
upper teeth instead (the editor before 2026-12-07), in the same run. Each edited photo is read as the evaluation reads
whole photos (the largest face's square, by the classifier and by the second reader). Prints and writes
benchmarks/results/laugh_readings.json: per method, control value and variant, the share read as happy by each
reader, and how many photos got a dark opening at all (the rest were filled by a stored smile, alike in both).
Skips cleanly without ../shared/data/london.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import bench_utils as bench
from contact_sheet import chosen_pairs

import expr_models.faces.mesh_warp as mesh_warp
from expr_models.evaluation.readings import success_by_readers
from expr_models.pipeline import ExpressionEditor

VARIANTS = {"laugh teeth": ("happy",), "gasp edges": ()}


def edited_crops(editor: ExpressionEditor, photos: list[np.ndarray], method: str, opening: float
                 ) -> tuple[list[np.ndarray], int, int]:
    """The edited photos' face squares (as the Space reads them), how many edits drew a dark opening, and how many
    photos were left out (no face)."""
    crops, dark, missed = [], 0, 0
    calls = []
    original = mesh_warp.exemplar_gasp_teeth

    def counting(bank, laugh=False):
        teeth = original(bank, laugh)

        def drawn(*args):
            calls.append(1)
            return teeth(*args)
        return drawn

    mesh_warp.exemplar_gasp_teeth = counting
    try:
        for photo in photos:
            before = len(calls)
            result = editor.edit(Image.fromarray(photo), method=method, target="happy", mouth_open=opening,
                                 read_expressions=False)
            if not result.faces:
                missed += 1
                continue
            dark += len(calls) > before
            crops.append(editor.processor.crop(np.asarray(result.image), result.faces[0].box)[0])
    finally:
        mesh_warp.exemplar_gasp_teeth = original
    return crops, dark, missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=bench.SHARED_DATA)
    parser.add_argument("--checkpoints", type=Path, default=bench.REPO_ROOT / "checkpoints")
    parser.add_argument("--split", nargs="+", default=["validation", "test"], help="London Set people of these splits")
    parser.add_argument("--methods", nargs="+", default=["cyclegan", "sagan"])
    parser.add_argument("--mouth-open", type=float, nargs="+", default=[0.5, 1.0])
    args = parser.parse_args(argv)
    if not (args.data / "london").is_dir():
        print(f"skipped: no london under {args.data}")
        return 0

    photos = []
    for split in args.split:
        for pair in chosen_pairs(args.data, "london", split, "neutral->happy", 10_000, None):
            with Image.open(pair.source_path) as image:
                photos.append(np.asarray(image.convert("RGB")))
    editor = ExpressionEditor.from_pretrained(args.checkpoints)
    readers = {"classifier": editor.model("classifier")}
    if editor.has("second_reader"):
        readers["second_reader"] = editor.model("second_reader")
    config = readers["classifier"].config
    results = {"machine": bench.machine(), "splits": args.split, "photos": len(photos), "rows": []}
    print(bench.machine_line(results["machine"]))
    laughing = mesh_warp.LAUGHING_TARGETS
    try:
        for method in args.methods:
            for opening in args.mouth_open:
                for variant, targets in VARIANTS.items():
                    mesh_warp.LAUGHING_TARGETS = targets
                    crops, dark, missed = edited_crops(editor, photos, method, opening)
                    pixels = editor.processor.to_tensor(crops, config.resolution, config.in_channels)
                    shares = success_by_readers(readers, pixels, ["happy"] * len(crops))
                    row = {"method": method, "mouth_open": opening, "variant": variant, "photos": len(crops),
                           "dark_openings": dark, "no_face": missed,
                           **{f"read_as_happy_{name}": round(share["success"], 3) for name, share in shares.items()}}
                    results["rows"].append(row)
                    print(f"{method} mouth_open {opening:+g} {variant:11s}: read as happy "
                          + " / ".join(f"{row[f'read_as_happy_{name}']:.0%}" for name in readers)
                          + f" ({len(crops)} photos, {dark} with a dark opening)", flush=True)
    finally:
        mesh_warp.LAUGHING_TARGETS = laughing
    print(f"wrote {bench.save_results('laugh_readings', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
