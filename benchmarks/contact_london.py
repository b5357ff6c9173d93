"""A contact sheet of held-out people: input | average edit | CycleGAN (SA-GAN for JAFFE) edit | warp-and-refine edit |
the same person's real expression, each the face's region of the full-resolution photo (no resizing; London in colour).

    python benchmarks/contact_london.py --out /tmp/contact_london.png [--people 3] [--direction neutral->happy]
    python benchmarks/contact_london.py --out /tmp/sheet.png --warp runs/warp_e/final --no-cyclegan \
        --dataset fei --split test
    python benchmarks/contact_london.py --out /tmp/sagan_warp.png --dataset jaffe --direction "neutral->each" \
        --people 2 --sagan-warp runs/sagan_warp/final

Columns: the committed CycleGAN through the editor (unless ``--no-cyclegan``), a warp_refine CycleGAN (``--warp``)
through ``CycleGANModel.edit_photo`` (``edit_aligned`` at the photo's resolution); for JAFFE the committed SA-GAN
through the editor and a warp_refine SA-GAN (``--sagan-warp``) through ``SAGANModel.edit_photo``. ``--direction
neutral->each``: per person, the first take of each other expression.

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

from expr_models.data.paired_faces import photo_pairs  # noqa: E402
from expr_models.evaluation.realism_ratio import align_upper_face  # noqa: E402
from expr_models.faces.alignment import retinaface_face  # noqa: E402
from expr_models.models.average_edit import AverageEditModel  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--direction", default="neutral->happy", choices=("neutral->happy", "happy->neutral", "neutral->each"))
    parser.add_argument("--dataset", default="london", choices=("london", "fei", "jaffe"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N people of the split")
    parser.add_argument("--warp", type=Path, default=None, help="a warp_refine CycleGAN checkpoint: one more column")
    parser.add_argument("--sagan-warp", type=Path, default=None, help="a warp_refine SA-GAN checkpoint: one more "
                                                                     "column")
    parser.add_argument("--no-cyclegan", action="store_true", help="leave out the committed GAN's column")
    args = parser.parse_args(argv)
    if not (args.data / args.dataset).is_dir():
        print(f"Skipped: no {args.dataset} under {args.data}")
        return 0
    average = AverageEditModel.from_pretrained(args.checkpoints / "average")
    editor = warp = None
    gan = "sagan" if args.dataset == "jaffe" else "cyclegan"
    if not args.no_cyclegan:
        from expr_models.pipeline import ExpressionEditor

        editor = ExpressionEditor.from_pretrained(str(args.checkpoints))
    if args.warp is not None:
        from expr_models.models.cyclegan import CycleGANModel

        warp = CycleGANModel.from_pretrained(args.warp).float().eval()
    if args.sagan_warp is not None:
        from expr_models.models.sagan import SAGANModel

        warp = SAGANModel.from_pretrained(args.sagan_warp).float().eval()
    pairs = photo_pairs(args.data, args.split, (args.dataset,))
    people = sorted(dict.fromkeys(p.subject for p in pairs))[args.skip:args.skip + args.people]
    if args.direction == "neutral->each":  # the first take of each target
        firsts = {}
        for p in pairs:
            if p.source_expression == "neutral":
                firsts.setdefault((p.subject, p.target_expression), p)
        pairs = list(firsts.values())
    else:
        pairs = [p for p in pairs if p.pair == args.direction]
    pairs = [p for p in pairs if p.subject in people]
    rows = []
    for pair in pairs:
        photo = np.asarray(Image.open(pair.source_path).convert("RGB"))
        real = np.asarray(Image.open(pair.target_path).convert("RGB"))
        (box, points), (_, real_points) = retinaface_face(photo), retinaface_face(real)
        edited_average = average.edit_photo(photo, pair.source_expression, pair.target_expression, points=points)
        columns = [photo, edited_average]
        if editor is not None:
            columns.append(np.asarray(editor.edit(Image.fromarray(photo), gan, pair.target_expression).image
                                      .convert("RGB")))
        if warp is not None:
            columns.append(warp.edit_photo(photo, pair.target_expression, points=points))
        # The real photo, moved onto the input's upper face as the realism ratio sees it (each channel alike).
        aligned_real = np.stack([align_upper_face(real[..., c], photo[..., c], box, real_points, points)
                                 for c in range(3)], axis=2).clip(0, 255).astype(np.uint8)
        x0, y0, x1, y1 = box.astype(int)
        pad = int(0.1 * (x1 - x0))
        window = (slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad))
        tiles = [image[window] for image in (*columns, aligned_real)]
        rows.append(np.concatenate(tiles, axis=1))
    width = min(row.shape[1] for row in rows)
    sheet = np.concatenate([row[:, :width] for row in rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    names = ["input", "average"] + ([gan] if editor is not None else []) + (["warp"] if warp is not None else [])
    print(f"Wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}): {' | '.join(names)} | real "
          f"({args.dataset} {args.split}, {args.direction}), rows {[(p.subject, p.pair) for p in pairs]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
