"""A contact sheet of held-out London Set people: input | average edit | CycleGAN edit | the same person's real
expression, each the face's region of the full-resolution colour photo (no resizing).

    python benchmarks/contact_london.py --out /tmp/contact_london.png [--people 3] [--direction neutral->happy]

Face Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0, doi:10.6084/m9.figshare.5047666.v5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from expr_models.alignment import retinaface_face  # noqa: E402
from expr_models.average_edit import AverageEditModel  # noqa: E402
from expr_models.paired_faces import photo_pairs  # noqa: E402
from expr_models.realism import align_upper_face  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--direction", default="neutral->happy", choices=("neutral->happy", "happy->neutral"))
    args = parser.parse_args(argv)
    if not (args.data / "london").is_dir():
        print(f"Skipped: no London Set under {args.data}")
        return 0
    from expr_models.pipeline import ExpressionEditor

    average = AverageEditModel.from_pretrained(args.checkpoints / "average")
    editor = ExpressionEditor.from_pretrained(str(args.checkpoints))
    pairs = [p for p in photo_pairs(args.data, "test", ("london",)) if p.pair == args.direction][:args.people]
    rows = []
    for pair in pairs:
        photo = np.asarray(Image.open(pair.source_path).convert("RGB"))
        real = np.asarray(Image.open(pair.target_path).convert("RGB"))
        (box, points), (_, real_points) = retinaface_face(photo), retinaface_face(real)
        edited_average = average.edit_photo(photo, pair.source_expression, pair.target_expression, points=points)
        edited_gan = np.asarray(editor.edit(Image.fromarray(photo), "cyclegan", pair.target_expression).image)
        # The real photo, moved onto the input's upper face as the realism ratio sees it (each channel alike).
        aligned_real = np.stack([align_upper_face(real[..., c], photo[..., c], box, real_points, points)
                                 for c in range(3)], axis=2).clip(0, 255).astype(np.uint8)
        x0, y0, x1, y1 = box.astype(int)
        pad = int(0.1 * (x1 - x0))
        window = (slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad))
        tiles = [image[window] for image in (photo, edited_average, edited_gan, aligned_real)]
        rows.append(np.concatenate(tiles, axis=1))
    width = min(row.shape[1] for row in rows)
    sheet = np.concatenate([row[:, :width] for row in rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"Wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}): input | average | CycleGAN | real "
          f"({args.direction}), people {[p.subject for p in pairs]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
