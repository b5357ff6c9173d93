"""The paired realism ratio of each editing method on held-out people, through the editor a user gets.

For every held-out person photographed in two expressions (``expr_models.data.paired_faces``: FEI neutral <-> happy, the
London Set neutral <-> happy in colour, JAFFE neutral -> each other expression), the whole source photo is edited with
``ExpressionEditor.edit`` (default detector, paste-back and all) towards the target, and the edit's mouth region is
compared with the same person's real photo of the target (``expr_models.evaluation.realism_ratio``: the real photo
aligned on the upper face, grey, blurred; ratio = error(edit, real) / error(unedited, real); below 1 = closer to the
real expression). The face box and landmarks that place the region come from RetinaFace on the unedited photos, so every
method is measured on the same region. Per person the ratio is the median over its photo pairs (JAFFE has several takes
per expression); the report gives the median over people and their count.

The same edits are measured as a person sees them (``expr_models.evaluation.mesh_metrics``): the input, the edit and
the real photo are meshed with the editor's face mesh, giving the mesh-motion gain and cosine against the real motion,
the mouth opening of the edit and of the real photo, and the mouth's sharpness, summarised the same way. The pixels
each edit changed outside its blend mask are counted too (paste-back promises none).

    result = evaluate_realism(editor, ["cyclegan", "sagan", "average"], Path("../shared/data"), split="test")
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..components import editing_method
from ..data.paired_faces import PhotoPair, photo_pairs
from ..errors import NoFaceError
from ..faces.alignment import retinaface_face
from ..faces.geometry import FaceBox
from ..faces.mesh import face_mesh
from .metrics import changed_pixels_outside_mask
from .mesh_metrics import photo_scores
from .realism_ratio import median_ratio, paired_realism_ratio

DATASET_ORDER = ("fei", "london", "jaffe")
DEFINITION = (
    "Paired realism ratio: a held-out person's photo in the source expression, edited whole by the editor "
    "(`ExpressionEditor.edit`, default detector) towards the target, against the same person's real photo of the "
    "target, aligned to the input on the upper face (eye landmarks, then ECC on brows and forehead). Region: the mouth, "
    "25-75% of the width and 58-95% of the height of the input's RetinaFace box; grey, Gaussian blur sigma 2 px per "
    "200 px of box width. Ratio = mean |edit - real| / mean |unedited - real| there: 0 = the real expression, 1 = no "
    "closer than leaving the face alone, above 1 = further. Per person the median over its photo pairs (JAFFE: each "
    "take of the target); the table gives the median over people (their count in brackets). Definition in "
    "expr_models/evaluation/realism_ratio.py."
)
MESH_DEFINITION = (
    "What a person sees, on the same edits: the input, the edit and the real photo of the target are each meshed "
    "with the editor's face mesh (468 MediaPipe points, the square from RetinaFace's landmarks, refined once; the "
    "edit in the input's face). Mesh-motion gain: the edit's motion (input mesh -> edit's mesh) projected on the real "
    "motion (input mesh -> real photo's mesh) over the real motion's length, both in the canonical frame with each "
    "mesh fitted on its stable points, so a head move between the two photos does not count (1 = as far as the real "
    "expression, 0 = no move towards it). Cosine: between the two motions (1 = the same direction). Cheek gain: the "
    "gain on the cheek and lower-eyelid points alone. Mouth opening: the inner-lip gap over the eye distance (about "
    "0.02 closed); edit over real = the edit's gap over the real photo's. Mouth sharpness: Laplacian variance of the luminance in the mouth (the outer lips' box widened by 20% "
    "of the mouth's width on each side), edit over input (1 = as sharp). Per person the median over its photo pairs, "
    "then the median over people (their count in brackets); a photo the mesh scores below 0.5 face presence is left "
    "out. Definitions in expr_models/evaluation/mesh_metrics.py."
)
# What the mesh measures record per edit, and the presence score below which a mesh is not trusted.
MESH_MEASURES = ("gain", "cosine", "cheek_gain", "gap_edit", "gap_real", "gap_ratio", "sharpness", "sharpness_real")
MIN_MESH_PRESENCE = 0.5


def realism_pairs(raw_data: str | Path, split: str = "test") -> list[PhotoPair]:
    """The photo pairs measured: FEI and London Set neutral <-> happy, JAFFE neutral -> each other expression."""
    pairs = photo_pairs(raw_data, split)
    pairs = [pair for pair in pairs if pair.dataset != "jaffe" or pair.source_expression == "neutral"]
    return sorted(pairs, key=lambda p: (DATASET_ORDER.index(p.dataset), p.pair, p.subject, p.target_path.name))


def read_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def summarise(records: Sequence[dict]) -> list[dict]:
    """Rows of the realism tables from one record per (photo pair, method): ``{"dataset", "pair", "method",
    "subject", "ratio"}`` and, where measured, the mesh measures (``MESH_MEASURES``) and the pixels changed outside
    the blend mask (``changed_outside_mask``, ``pixels_outside_mask``). Per subject the median over its pairs; per
    row the median over subjects (``mesh``: each measure's ``{"median", "subjects"}``); the pixel counts are summed."""
    grouped: dict[tuple[str, str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[(record["dataset"], record["pair"], record["method"])][record["subject"]].append(record)
    rows = []
    for (dataset, pair, method), by_subject in grouped.items():
        per_subject = {subject: float(np.median([r["ratio"] for r in found]))
                       for subject, found in sorted(by_subject.items())}
        row = {"dataset": dataset, "pair": pair, "method": method,
               "median_ratio": median_ratio(list(per_subject.values())), "subjects": len(per_subject),
               "photo_pairs": sum(len(found) for found in by_subject.values()), "per_subject": per_subject}
        mesh = mesh_summary(by_subject)
        if mesh:
            row["mesh"] = mesh
        read = [r for found in by_subject.values() for r in found if r.get("read_as_target") is not None]
        if read:  # the Space's reading of every edited photo, and of the real photos of the target beside it
            row["read_as_target"] = {"share": float(np.mean([r["read_as_target"] for r in read])),
                                     "real_share": float(np.mean([r["real_read_as_target"] for r in read])),
                                     "photo_pairs": len(read)}
        counted = [r for found in by_subject.values() for r in found if "changed_outside_mask" in r]
        if counted:
            row["changed_outside_mask"] = int(sum(r["changed_outside_mask"] for r in counted))
            row["pixels_outside_mask"] = int(sum(r["pixels_outside_mask"] for r in counted))
        rows.append(row)
    order = {name: number for number, name in enumerate(DATASET_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r["dataset"], len(order)), _pair_key(r["pair"]),
                                       r["method"] != "average", r["method"]))


def mesh_summary(by_subject: dict[str, list[dict]]) -> dict:
    """Each mesh measure's median over subjects of their median over pairs (undefined values, NaN or missing, left
    out) and the number of subjects behind it; ``photo_pairs``: the pairs with a mesh measure; empty when none."""
    measured = {subject: [r for r in found if r.get("gain") is not None] for subject, found in by_subject.items()}
    measured = {subject: found for subject, found in sorted(measured.items()) if found}
    if not measured:
        return {}
    summary: dict[str, Any] = {"photo_pairs": sum(len(found) for found in measured.values())}
    for measure in MESH_MEASURES:
        per_subject = {}
        for subject, found in measured.items():
            values = [r[measure] for r in found if r.get(measure) is not None and np.isfinite(r[measure])]
            if values:
                per_subject[subject] = float(np.median(values))
        summary[measure] = {"median": float(np.median(list(per_subject.values()))) if per_subject else None,
                            "subjects": len(per_subject)}
    return summary


def _pair_key(pair: str) -> tuple[int, str]:
    # neutral -> happy first, then happy -> neutral, then JAFFE's other targets alphabetically
    return ({"neutral->happy": 0, "happy->neutral": 1}.get(pair, 2), pair)


def _first_of_each_edit(pairs: list[PhotoPair], limit: int) -> list[PhotoPair]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    kept = []
    for pair in pairs:
        counts[(pair.dataset, pair.pair)] += 1
        if counts[(pair.dataset, pair.pair)] <= limit:
            kept.append(pair)
    return kept


def realism_methods(editor: Any, methods: Sequence[str]) -> list[str]:
    """The methods measured: those evaluated that the editor has, plus the average edit. Methods that need a reference
    photo are left out (NST: there is none here, and it takes minutes per photo on a CPU)."""
    wanted = [m for m in methods if not editing_method(m).needs_reference] + ["average"]
    return [m for m in dict.fromkeys(wanted) if m in editor.available_methods()]


def evaluate_realism(editor: Any, methods: Sequence[str], raw_data: str | Path | None, split: str = "test",
                     limit: int | None = None, log: Callable[[str], None] = print,
                     find_face: Callable[[np.ndarray], Any] = retinaface_face) -> dict:
    """The realism ratio of each method in ``methods`` (and the average edit) on the ``split`` people of
    ``raw_data``; ``limit``: at most that many photo pairs per dataset and edit (a quick check). ``find_face``:
    ``photo -> (box, five landmarks)`` or ``None``, the measuring frame (RetinaFace's own box by default).
    Returns ``{"skipped": reason}`` when there is nothing to measure."""
    if raw_data is None or not Path(raw_data).is_dir():
        return {"skipped": f"no raw data at {raw_data}: the realism ratio needs the photos of ../shared/data"}
    pairs = realism_pairs(raw_data, split)
    if limit:
        pairs = _first_of_each_edit(pairs, limit)
    measured = realism_methods(editor, methods)
    if not pairs or not measured:
        reason = (f"no photo pairs of {split} people in {raw_data}" if not pairs
                  else f"the editor has none of {', '.join(methods)} or the average edit")
        return {"skipped": reason}

    records: list[dict] = []
    skipped: list[str] = []
    seconds: dict[str, list[float]] = defaultdict(list)
    meshing = editor.has("face_mesh")
    for number, pair in enumerate(pairs):
        if number % 20 == 0:
            log(f"[realism] {number + 1}/{len(pairs)}: {pair.dataset} {pair.pair} {pair.subject}")
        photo, real = read_rgb(pair.source_path), read_rgb(pair.target_path)
        found, found_real = find_face(photo), find_face(real)
        if found is None or found_real is None:
            skipped.append(f"{pair.dataset} {pair.source_path.name} -> {pair.target_path.name}: no face to measure")
            continue
        box, points = found
        detection = editor.detect(Image.fromarray(photo))  # once per photo; every method edits the same faces
        # the input's and the real photo's meshes, once per pair (None where the mesh sees no face)
        meshes = (photo_mesh(editor, photo, found), photo_mesh(editor, real, found_real)) if meshing else (None, None)
        real_reading = read_largest_face(editor, real)
        for method in measured:
            if pair.target_expression not in editor.supported_targets(method):
                continue
            tick = time.perf_counter()
            try:
                result = editor.edit(detection, method=method, target=pair.target_expression)
            except NoFaceError:
                skipped.append(f"{pair.dataset} {pair.source_path.name}: the editor found no face")
                break
            seconds[method].append(time.perf_counter() - tick)
            edited = np.asarray(result.image.convert("RGB"))
            scores = paired_realism_ratio(photo, edited, real, box, input_points=points, target_points=found_real[1])
            counted = changed_pixels_outside_mask(np.asarray(result.original.convert("RGB")), edited,
                                                  np.asarray(result.mask_image()))
            record = {"dataset": pair.dataset, "pair": pair.pair, "method": method, "subject": pair.subject,
                      "ratio": scores["ratio"], "photo": pair.source_path.name, "real": pair.target_path.name,
                      "changed_outside_mask": counted["changed"], "pixels_outside_mask": counted["outside"]}
            record.update(edit_mesh_scores(editor, photo, edited, found, *meshes, real_image=real))
            reading = result.faces[0].reading_after if result.faces else None
            if reading and real_reading:
                record["read_as_target"] = max(reading, key=reading.get) == pair.target_expression
                record["real_read_as_target"] = max(real_reading, key=real_reading.get) == pair.target_expression
            records.append(record)
    return {"split": split, "raw_data": str(raw_data), "methods": measured, "rows": summarise(records),
            "photo_pairs": len(pairs), "skipped_pairs": skipped,
            "seconds_per_photo": {m: round(float(np.median(v)), 3) for m, v in seconds.items()},
            "limit_per_edit": limit,
            **({} if meshing else {"mesh_skipped": "the editor has no face_mesh checkpoint"})}


def read_largest_face(editor: Any, photo: np.ndarray) -> dict[str, float] | None:
    """The editor's classifier reading of the photo's largest face, as the Space shows it; None without a classifier
    or a face."""
    detection = editor.detect(Image.fromarray(photo))
    readings = editor.read_expressions(detection.pixels, detection.boxes[:1]) if detection.boxes else None
    return readings[0] if readings else None


def photo_mesh(editor: Any, photo: np.ndarray, found: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """The 468 x 3 mesh (photo pixels) of the face RetinaFace found (``(box, five landmarks)``), with the editor's
    face mesh refined once; None where the mesh model scores the crop below ``MIN_MESH_PRESENCE``."""
    box, points = found
    face = FaceBox(*(float(v) for v in box[:4]), landmarks=np.asarray(points, np.float64))
    with editor.generating():
        mesh, presence = face_mesh(photo, face, editor.model("face_mesh"), refine=True, return_presence=True)
    return mesh.astype(np.float64) if presence >= MIN_MESH_PRESENCE else None


def edit_mesh_scores(editor: Any, photo: np.ndarray, edited: np.ndarray, found: tuple[np.ndarray, np.ndarray],
                     source_mesh: np.ndarray | None, real_mesh: np.ndarray | None,
                     real_image: np.ndarray | None = None) -> dict[str, float]:
    """The mesh measures of one edit (:func:`~expr_models.evaluation.mesh_metrics.photo_scores`); the edit is meshed
    in the input's face (it has the input's geometry). ``real_image``: also the real photo's mouth sharpness.
    Empty where a mesh is missing."""
    if source_mesh is None or real_mesh is None:
        return {}
    edit_mesh = photo_mesh(editor, edited, found)
    if edit_mesh is None:
        return {}
    scores = photo_scores(photo, edited, source_mesh, edit_mesh, real_mesh, real_image)
    return {measure: scores[measure] for measure in (*MESH_MEASURES, "gap_source") if measure in scores}


def markdown_table(realism: dict) -> list[str]:
    """The realism section of the report: one row per (data, edit), one column per method."""
    if "rows" not in realism:
        return [f"Skipped: {realism.get('skipped', 'not run')}.", ""]
    lines = _grid(realism, lambda row: _ratio_text(row["median_ratio"], row["subjects"]))
    if realism.get("skipped_pairs"):
        lines += [f"Left out: {len(realism['skipped_pairs'])} photo pairs where no face was found "
                  f"({'; '.join(realism['skipped_pairs'][:5])}{'; …' if len(realism['skipped_pairs']) > 5 else ''}).",
                  ""]
    return lines


def mesh_tables(realism: dict) -> list[str]:
    """The mesh measures of the same edits: gain / cosine, mouth opening edit over real, mouth sharpness; and the
    pixels each method changed outside its blend masks."""
    rows = realism.get("rows", [])
    lines: list[str] = []
    if any("mesh" in row for row in rows):
        def measure(row: dict, name: str) -> dict:
            return row.get("mesh", {}).get(name, {})

        def gain_cosine(row: dict) -> str:
            gain, cosine = measure(row, "gain"), measure(row, "cosine")
            if gain.get("median") is None:
                return "n/a"
            return f"{_value(gain['median'])} / {_value(cosine.get('median'))} ({gain['subjects']})"

        def opening(row: dict) -> str:
            ratio, gap = measure(row, "gap_ratio"), measure(row, "gap_edit")
            return "n/a" if gap.get("median") is None else f"{_value(ratio.get('median'))} ({gap['median']:.3f})"

        def real_gap(by_method: dict[str, dict]) -> str:
            found = [measure(row, "gap_real").get("median") for row in by_method.values()]
            found = [value for value in found if value is not None]
            return f"{found[0]:.3f}" if found else "n/a"

        lines += ["**Mesh-motion gain / cosine** against the same person's real photo (people in brackets):", ""]
        lines += _grid(realism, gain_cosine)
        lines += ["**Cheek gain**: the gain on the cheek and lower-eyelid points alone (a real smile lifts the cheeks "
                  "and narrows the eyes; people in brackets):", ""]
        lines += _grid(realism, lambda row: _ratio_text(measure(row, "cheek_gain").get("median"),
                                                         measure(row, "cheek_gain").get("subjects", 0)))
        lines += ["**Mouth opening, edit over real** (the edit's inner-lip gap in eye distances in brackets; the real "
                  "photo's beside the edit):", ""]
        lines += _grid(realism, opening, ("real gap", real_gap))
        def real_sharpness(by_method: dict[str, dict]) -> str:
            found = [measure(row, "sharpness_real").get("median") for row in by_method.values()]
            found = [value for value in found if value is not None]
            return _value(found[0]) if found else "n/a"

        lines += ["**Mouth sharpness**, Laplacian variance of the edit's mouth over the input's (people in brackets; "
                  "*real photo*: the same for the person's real photo of the target, the reference):", ""]
        lines += _grid(realism, lambda row: _ratio_text(measure(row, "sharpness").get("median"),
                                                         measure(row, "sharpness").get("subjects", 0)),
                       ("real photo", real_sharpness))
    elif realism.get("mesh_skipped"):
        lines += [f"Mesh measures skipped: {realism['mesh_skipped']}.", ""]
    if any("read_as_target" in row for row in rows):
        def read(row: dict) -> str:
            found = row.get("read_as_target")
            return "n/a" if not found else f"{100 * found['share']:.0f}% ({found['photo_pairs']})"

        def real_read(by_method: dict[str, dict]) -> str:
            found = [row["read_as_target"] for row in by_method.values() if "read_as_target" in row]
            return f"{100 * found[0]['real_share']:.0f}%" if found else "n/a"

        lines += ["**Read as the target** by the classifier, as the Space shows it, on the same edited photos (photo "
                  "pairs in brackets; *real photos*: the same people's real photos of the target, read the same "
                  "way):", ""]
        lines += _grid(realism, read, ("real photos", real_read))
    changed: dict[str, list[int]] = {}
    for row in rows:
        if "changed_outside_mask" in row:
            total = changed.setdefault(row["method"], [0, 0, 0])
            total[0] += row["changed_outside_mask"]
            total[1] += row["pixels_outside_mask"]
            total[2] += row["photo_pairs"]
    if changed:
        lines += ["Pixels these edits changed outside the blend mask (should be 0): " + "; ".join(
            f"{_method_name(method)} {c} of {n} ({photos} photos)" for method, (c, n, photos) in changed.items())
            + ".", ""]
    return lines


def _value(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _ratio_text(value: float | None, subjects: int) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f} ({subjects})"


def _method_name(method: str) -> str:
    return "average edit (baseline)" if method == "average" else method


def _grid(realism: dict, cell: Callable[[dict], str],
          extra: tuple[str, Callable[[dict[str, dict]], str]] | None = None) -> list[str]:
    """One row per (data, edit) of ``realism["rows"]``, one column per method, ``cell(row)`` in each; ``extra``:
    a column (header, ``{method: row} -> text``) before the methods'."""
    methods = realism["methods"]
    by_edit: dict[tuple[str, str], dict[str, dict]] = {}
    for row in realism["rows"]:
        by_edit.setdefault((row["dataset"], row["pair"]), {})[row["method"]] = row
    header = ["data", "edit"] + ([extra[0]] if extra else []) + [_method_name(m) for m in methods]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (dataset, pair), by_method in by_edit.items():
        source, target = pair.split("->")
        cells = [dataset, f"{source} → {target}"] + ([extra[1](by_method)] if extra else [])
        cells += [cell(by_method[m]) if m in by_method else "–" for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
