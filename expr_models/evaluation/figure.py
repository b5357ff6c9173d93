"""The README figure: input and result of each editing method for a few targets, and the mouth at full resolution.

    python -m expr_models figure                       # writes docs/figure.jpg
    python -m expr_models figure --out docs/figure.jpg --models checkpoints --raw-data ../shared/data --people 2

Faces: scikit-image's astronaut, matplotlib's Grace Hopper and ``--people`` held-out people of the London Set (the test
split of ``expr_models.data.paired_faces``; CC BY 4.0, "Face Research Lab London Set, DeBruine & Jones (2017), CC BY
4.0, doi:10.6084/m9.figshare.5047666.v5"), never a research-only photo. Without ``../shared/data`` the figure has the
two packaged photos only. Each row is one face, edited through ``ExpressionEditor.edit`` on the whole photo (the path a
user gets); the first panel row shows the head, the second the mouth region cut from the full-resolution photo and
enlarged with nearest-neighbour sampling, so every pixel the edit changed shows as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..components import editing_method

# (method, target) of each column after the input; a column is left out when the editor lacks the method.
COLUMNS = (("average", "happy"), ("mesh", "happy"), ("cyclegan", "happy"), ("sagan", "happy"), ("cyclegan", "neutral"),
           ("mesh", "surprise"), ("sagan", "surprise"), ("sagan", "sad"), ("sagan", "angry"))
PANEL = 220  # pixels per panel side
LABEL_HEIGHT = 26
LONDON_ATTRIBUTION = ("London Set faces: Face Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0, "
                      "doi:10.6084/m9.figshare.5047666.v5")


def packaged_photos() -> list[tuple[str, np.ndarray]]:
    """The photos that ship in installed packages: scikit-image's astronaut and matplotlib's Grace Hopper."""
    import matplotlib.cbook
    from skimage import data as skimage_data

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as hopper:
        hopper_rgb = np.asarray(hopper.convert("RGB"))
    return [("astronaut (scikit-image)", skimage_data.astronaut()), ("Grace Hopper (matplotlib)", hopper_rgb)]


def london_photos(raw_data: Path, people: int) -> list[tuple[str, np.ndarray]]:
    """The neutral photos of the first ``people`` held-out London Set people (the test split)."""
    from ..data.paired_faces import photo_pairs

    pairs = [p for p in photo_pairs(raw_data, "test", sources=("london",)) if p.source_expression == "neutral"]
    photos = []
    for pair in pairs[:people]:
        with Image.open(pair.source_path) as image:
            photos.append((f"London Set {pair.subject}", np.asarray(image.convert("RGB"))))
    return photos


def _square(box: tuple[float, float, float, float], scale: float, centre_y: float, shape: tuple[int, ...]):
    """A square of ``scale`` times the box's larger side, centred on the box (vertically at ``centre_y`` of it),
    shifted to stay inside the photo."""
    x0, y0, x1, y1 = box
    side = int(round(min(max(x1 - x0, y1 - y0) * scale, shape[0], shape[1])))
    cx, cy = (x0 + x1) / 2, y0 + centre_y * (y1 - y0)
    left = int(round(min(max(cx - side / 2, 0), shape[1] - side)))
    top = int(round(min(max(cy - side / 2, 0), shape[0] - side)))
    return left, top, left + side, top + side


def face_panels(photo: np.ndarray, box) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The head square (shown resized) and the mouth square (cut at full resolution) of one face box."""
    head = _square(box, 1.6, 0.5, photo.shape)
    mouth = _square(box, 0.55, 0.78, photo.shape)
    return head, mouth


def _panel(photo: np.ndarray, square, nearest: bool) -> Image.Image:
    crop = Image.fromarray(photo).crop(square)
    return crop.resize((PANEL, PANEL), Image.NEAREST if nearest else Image.LANCZOS)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def make_figure(editor: Any, photos: list[tuple[str, np.ndarray]], columns=COLUMNS,
                footer: str | None = None) -> Image.Image:
    """One row pair (head, mouth) per photo; columns: the input, then each (method, target) the editor has."""
    columns = [(m, t) for m, t in columns  # NST needs a reference photo: not drawn here
               if not editing_method(m).needs_reference and m in editor.available_methods()
               and t in editor.supported_targets(m)]
    titles = ["input"] + [f"{editing_method(m).label} to {t}" for m, t in columns]
    width = PANEL * len(titles)
    blocks = []
    font, small = _font(17), _font(14)
    for name, photo in photos:
        detection = editor.detect(Image.fromarray(photo))
        if not detection.boxes:
            raise ValueError(f"no face found in {name}")
        box = detection.boxes[0]
        head, mouth = face_panels(photo, (box.x0, box.y0, box.x1, box.y1))
        results = [photo] + [np.asarray(editor.edit(detection, method=m, target=t, max_faces=1).image.convert("RGB"))
                             for m, t in columns]
        block = Image.new("RGB", (width, LABEL_HEIGHT + 2 * PANEL), "white")
        draw = ImageDraw.Draw(block)
        draw.text((6, 4), f"{name}: {photo.shape[1]}x{photo.shape[0]} px photo; below, the mouth "
                          f"({mouth[2] - mouth[0]} px square of the photo) enlarged pixel for pixel", fill="black",
                  font=small)
        for number, result in enumerate(results):
            block.paste(_panel(result, head, nearest=False), (number * PANEL, LABEL_HEIGHT))
            block.paste(_panel(result, mouth, nearest=True), (number * PANEL, LABEL_HEIGHT + PANEL))
        blocks.append(block)
    header = Image.new("RGB", (width, 34), "white")
    draw = ImageDraw.Draw(header)
    for number, title in enumerate(titles):
        draw.text((number * PANEL + 8, 8), title, fill="black", font=font)
    parts = [header] + blocks
    if footer:
        strip = Image.new("RGB", (width, 24), "white")
        ImageDraw.Draw(strip).text((6, 4), footer, fill="black", font=small)
        parts.append(strip)
    figure = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    top = 0
    for part in parts:
        figure.paste(part, (0, top))
        top += part.height
    return figure


def add_figure_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("figure", help="draw the README figure (docs/figure.jpg)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("checkpoints"), help="editor folder (default: checkpoints)")
    parser.add_argument("--raw-data", type=Path, default=None,
                        help="the raw data, for the London Set (default: ../shared/data beside the repository)")
    parser.add_argument("--people", type=int, default=2, help="held-out London Set people (default: 2)")
    parser.add_argument("--out", type=Path, default=Path("docs/figure.jpg"), help="default: docs/figure.jpg")
    parser.set_defaults(func=run_figure)


def run_figure(args: argparse.Namespace) -> int:
    from ..pipeline import ExpressionEditor
    from .cli import default_raw_data

    raw_data = args.raw_data if args.raw_data is not None else default_raw_data()
    photos = london_photos(raw_data, args.people) if (raw_data / "london").is_dir() else []
    if not photos:
        print(f"note: no London Set at {raw_data / 'london'}; the figure has the packaged photos only")
    editor = ExpressionEditor(args.models)
    figure = make_figure(editor, photos + packaged_photos(), footer=LONDON_ATTRIBUTION if photos else None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() in (".jpg", ".jpeg"):
        figure.save(args.out, quality=88, optimize=True)
    else:
        figure.save(args.out)
    print(f"wrote {args.out} ({figure.width}x{figure.height}, {args.out.stat().st_size / 1e6:.2f} MB)")
    return 0
