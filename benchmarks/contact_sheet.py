"""A contact sheet of held-out people: input | each method's edit through the editor | the same person's real photo of
the target, each the face's region of the full-resolution photo (no resizing; London in colour; the real photo's own
face region, scaled to the same size).

    python benchmarks/contact_sheet.py --out runs/contact_london.jpg --dataset london --people 4
    python benchmarks/contact_sheet.py --out runs/contact_fei.jpg --dataset fei --direction "happy->neutral"
    python benchmarks/contact_sheet.py --out runs/contact_jaffe.jpg --dataset jaffe --direction "neutral->each" \
        --methods sagan mesh --people 2
    python benchmarks/contact_sheet.py --out runs/mouths_london.jpg --mouth-only --methods mesh \
        --mouths mouth_inpainter+mouth_exemplars mouth_inpainter mouth_exemplars   # the mouth only, per mouth

``--mouth-only``: the mouth's square of the full-resolution photo (pixel for pixel), not the face. ``--mouths``: one
column per method and mouth component (each editor has that mouth alone; default: the editor's own choice).
``--unshaded``: beside each method's edit, the same edit without the expression shading (the warp and mouth alone);
``--without-brows``: the same edit without the learned brows; ``--without-lower-face``: without the learned lower face;
``--without-eyes``: without the learned eyes.
``--eye-distance PX``: each photo (and the real one) first shrunk so that its eyes are about PX apart, as a face in a
crowd or a FER2013 crop is (the learned brows and lower face redraw only faces whose eyes are up to 60 px apart);
``--zoom N`` enlarges the sheet's panels N times, pixel for pixel (nearest), so that small faces can be seen.
``--eyes-only``: the eyes' and brows' square of the full-resolution photo. ``--plain-irises``: beside each method's
edit, the same with the irises stretched by the warp as before 2026-12-05 (``faces.eye_interior`` off).
``--targets``: each input edited to these expressions instead, one row each, with no real photo (the London Set has
only smiles), e.g. ``--direction "neutral->happy" --targets angry sad surprise --methods sagan --unshaded``.
``--mouth-open V [V ...]``: each method's edit once per value of the ``mouth_open`` control, e.g. the control alone:
``--subjects 005 062 --methods mesh --targets neutral --intensity 0 --mouth-open 0 0.5 1 --mouth-only``.

``--people`` takes the first held-out people of the split (``--subjects`` names them instead); ``--direction
neutral->each``: per person, the first take of each other expression. Face Research Lab London Set, DeBruine & Jones
(2017), CC BY 4.0, doi:10.6084/m9.figshare.5047666.v5. Other sets are research-only: keep their sheets out of the repo.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import expr_models.faces.mesh_warp as mesh_warp
from expr_models.data.paired_faces import photo_pairs
from expr_models.faces.alignment import retinaface_face
from expr_models.methods.mesh import (BROWS_COMPONENT, EYES_COMPONENT, LOWER_FACE_COMPONENT, MOUTH_COMPONENTS,
                                      SHADING_COMPONENT)
from expr_models.pipeline import ExpressionEditor

ROOT = Path(__file__).resolve().parents[1]
LABEL = 22
# The GANs' own mouths (train/mouth_cycle.py, train/mouth_sagan.py) are mouths too.
MOUTHS = (*MOUTH_COMPONENTS, "cyclegan_mouth", "sagan_mouth")


def chosen_pairs(data: Path, dataset: str, split: str, direction: str, people: int, subjects: list[str] | None):
    pairs = [p for p in photo_pairs(data, split, sources=(dataset,))]
    if direction == "neutral->each":
        seen, kept = set(), []
        for pair in pairs:
            if pair.source_expression == "neutral" and (pair.subject, pair.target_expression) not in seen:
                seen.add((pair.subject, pair.target_expression))
                kept.append(pair)
        pairs = kept
    else:
        source, target = direction.split("->")
        pairs = [p for p in pairs if (p.source_expression, p.target_expression) == (source, target)]
    order = subjects or list(dict.fromkeys(p.subject for p in pairs))[:people]
    return [p for s in order for p in pairs if p.subject == s]


def square_in(photo: np.ndarray, side: float, centre: tuple[float, float]) -> tuple[int, int, int, int]:
    """The square of ``side`` px around ``centre`` (x, y), moved inside ``photo`` (and no larger than it)."""
    side = int(min(side, photo.shape[0], photo.shape[1]))
    left = int(min(max(centre[0] - side / 2, 0), photo.shape[1] - side))
    top = int(min(max(centre[1] - side / 2, 0), photo.shape[0] - side))
    return left, top, left + side, top + side


def face_square(photo: np.ndarray, box, scale: float = 1.5) -> tuple[int, int, int, int]:
    """A square 1.5 times the face box's larger side, on its centre."""
    x0, y0, x1, y1 = box[:4]
    return square_in(photo, max(x1 - x0, y1 - y0) * scale, ((x0 + x1) / 2, (y0 + y1) / 2))


def shrunk(photo: np.ndarray, eye_distance: float | None) -> np.ndarray:
    """``photo`` area-resized so that its largest face's eyes are about ``eye_distance`` px apart (RetinaFace's eye
    landmarks); as it is without ``eye_distance``, without a face, or where that would enlarge it."""
    found = retinaface_face(photo) if eye_distance else None
    if found is None:
        return photo
    factor = eye_distance / max(float(np.linalg.norm(found[1][1] - found[1][0])), 1e-6)
    if factor >= 1:
        return photo
    size = (max(1, round(photo.shape[1] * factor)), max(1, round(photo.shape[0] * factor)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.LANCZOS))


def mouth_square(photo: np.ndarray, box) -> tuple[int, int, int, int]:
    """A square around the mouth: half the face box wide, centred three quarters of the way down the box."""
    x0, y0, x1, y1 = box[:4]
    return square_in(photo, (x1 - x0) * 0.55, ((x0 + x1) / 2, y0 + 0.78 * (y1 - y0)))


def eyes_square(photo: np.ndarray, box) -> tuple[int, int, int, int]:
    """A square around both eyes and the brows: the face box's width, centred 35% of the way down the box."""
    x0, y0, x1, y1 = box[:4]
    return square_in(photo, (x1 - x0) * 0.95, ((x0 + x1) / 2, y0 + 0.35 * (y1 - y0)))


@contextlib.contextmanager
def plain_irises():
    """The mesh warp without its held irises, for the block's length."""
    held = mesh_warp.steady_irises
    mesh_warp.steady_irises = lambda *args, **kwargs: []
    try:
        yield
    finally:
        mesh_warp.steady_irises = held


def editors_by_mouth(checkpoints: Path, mouths: list[str] | None, unshaded: bool = False,
                     without_brows: bool = False, without_lower_face: bool = False,
                     without_eyes: bool = False) -> dict[str, ExpressionEditor]:
    """One editor per mouth choice (``+``-joined mouth components: it holds those and no other mouth), or the editor
    as it is (key ""); ``unshaded``: and one without the expression shading (key "unshaded"); ``without_brows``: and
    one without the learned brows (key "without brows"); ``without_lower_face``: and one without the learned lower
    face (key "without lower face"); ``without_eyes``: and one without the learned eyes (key "without eyes")."""
    folders = {path.name: path for path in sorted(checkpoints.iterdir()) if (path / "config.json").is_file()}
    left_out = {"unshaded": SHADING_COMPONENT if unshaded else None,
                "without brows": BROWS_COMPONENT if without_brows else None,
                "without lower face": LOWER_FACE_COMPONENT if without_lower_face else None,
                "without eyes": EYES_COMPONENT if without_eyes else None}
    extra = {key: ExpressionEditor.from_pretrained({name: path for name, path in folders.items() if name != component},
                                                   num_threads=1)
             for key, component in left_out.items() if component}
    if not mouths:
        return {"": ExpressionEditor.from_pretrained(checkpoints, num_threads=1), **extra}
    editors = {}
    for choice in mouths:
        unknown = set(choice.split("+")) - set(MOUTHS)
        if unknown:
            raise SystemExit(f"--mouths: unknown mouth component(s) {', '.join(sorted(unknown))}; expected "
                             f"{', '.join(MOUTHS)}, or several joined by +")
        editors[choice] = ExpressionEditor.from_pretrained(
            {name: path for name, path in folders.items() if name in choice.split("+") or name not in MOUTHS},
            num_threads=1)
    return {**editors, **extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", default="london", choices=("london", "fei", "jaffe"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--direction", default="neutral->happy")
    parser.add_argument("--methods", nargs="+", default=["average", "cyclegan", "sagan", "mesh"])
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--subjects", nargs="+", default=None)
    parser.add_argument("--intensity", type=float, default=1.0)
    parser.add_argument("--mouth-only", action="store_true", help="the mouth's square at full resolution")
    parser.add_argument("--mouths", nargs="+", default=None,
                        help="compare these mouths (one column each per method): mouth_inpainter, mouth_exemplars, "
                             "cyclegan_mouth, sagan_mouth, or several joined by + (e.g. the learned mouth with the "
                             "exemplars' teeth)")
    parser.add_argument("--unshaded", action="store_true",
                        help="beside each edit, the same without the expression shading")
    parser.add_argument("--without-brows", action="store_true",
                        help="beside each edit, the same without the learned brows")
    parser.add_argument("--without-lower-face", action="store_true",
                        help="beside each edit, the same without the learned lower face")
    parser.add_argument("--without-eyes", action="store_true",
                        help="beside each edit, the same without the learned eyes")
    parser.add_argument("--eye-distance", type=float, default=None,
                        help="shrink each photo first so that its eyes are about this many px apart")
    parser.add_argument("--zoom", type=int, default=1, help="enlarge the panels this many times (nearest)")
    parser.add_argument("--eyes-only", action="store_true", help="the eyes' and brows' square at full resolution")
    parser.add_argument("--plain-irises", action="store_true",
                        help="beside each edit, the same with the irises stretched by the warp (before 2026-12-05)")
    parser.add_argument("--targets", nargs="+", default=None,
                        help="edit each input to these expressions instead (one row each, no real photo)")
    parser.add_argument("--mouth-open", nargs="+", type=float, default=None,
                        help="each method's edit once per value of the mouth_open control (-1 to 1)")
    args = parser.parse_args(argv)
    if not (args.data / args.dataset).is_dir():
        print(f"skipped: no {args.dataset} under {args.data}")
        return 0

    editors = editors_by_mouth(args.checkpoints, args.mouths, args.unshaded, args.without_brows,
                               args.without_lower_face, args.without_eyes)
    editor = next(iter(editors.values()))
    cut = mouth_square if args.mouth_only else eyes_square if args.eyes_only else face_square
    rows = []
    for pair in chosen_pairs(args.data, args.dataset, args.split, args.direction, args.people, args.subjects):
        with Image.open(pair.source_path) as image:
            photo = shrunk(np.asarray(image.convert("RGB")), args.eye_distance)
        found = retinaface_face(photo)
        real = real_found = None
        if not args.targets:
            with Image.open(pair.target_path) as image:
                real = shrunk(np.asarray(image.convert("RGB")), args.eye_distance)
            real_found = retinaface_face(real)
        if found is None or (real is not None and real_found is None):
            print(f"{pair.source_path.name}: no face, left out", file=sys.stderr)
            continue
        square = cut(photo, found[0])
        side = square[2] - square[0]
        detection = editor.detect(Image.fromarray(photo))
        for target in args.targets or [pair.target_expression]:
            panels = [("input", photo)]
            for method in args.methods:
                for mouth, mouth_editor in editors.items():
                    if target in mouth_editor.supported_targets(method):
                        intensity = min(args.intensity, mouth_editor.max_intensity(method))
                        name = f"{method} {mouth.replace('mouth_', '')}" if mouth else method
                        for opening in args.mouth_open or [None]:
                            controls = {} if opening is None else {"mouth_open": opening}
                            result = mouth_editor.edit(detection, method=method, target=target, intensity=intensity,
                                                       **controls)
                            shown_name = name if opening is None else f"{name}, mouth_open {opening:+g}"
                            panels.append((shown_name, np.asarray(result.image.convert("RGB"))))
                        if args.plain_irises and not mouth:
                            with plain_irises():
                                result = mouth_editor.edit(detection, method=method, target=target,
                                                           intensity=intensity)
                            panels.append((f"{method} plain irises", np.asarray(result.image.convert("RGB"))))
            if real is not None:
                panels.append(("real", np.asarray(Image.fromarray(real).crop(cut(real, real_found[0]))
                                                  .resize((side, side), Image.LANCZOS))))
            shown = side * args.zoom  # labels are drawn on the enlarged panels, so that small faces keep them legible
            row = Image.new("RGB", (shown * len(panels), shown + LABEL), "white")
            draw = ImageDraw.Draw(row)
            for number, (name, image) in enumerate(panels):
                face = Image.fromarray(image)
                face = face if face.size == (side, side) else face.crop(square)
                if args.zoom > 1:
                    face = face.resize((shown, shown), Image.NEAREST)
                row.paste(face, (number * shown, LABEL))
                label = f"{pair.dataset} {pair.subject} {pair.source_expression}->{target}: {name}" \
                    if number == 0 else name
                draw.text((number * shown + 4, 4), label, fill="black")
            rows.append(row)
    if not rows:
        print("no pairs")
        return 1
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    top = 0
    for row in rows:
        sheet.paste(row, (0, top))
        top += row.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=92)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
