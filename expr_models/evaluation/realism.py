"""The paired realism ratio of each editing method on held-out people, through the editor a user gets.

For every held-out person photographed in two expressions (``expr_models.data.paired_faces``: FEI neutral <-> happy, the
London Set neutral <-> happy in colour, JAFFE neutral -> each other expression), the whole source photo is edited with
``ExpressionEditor.edit`` (default detector, paste-back and all) towards the target, and the edit's mouth region is
compared with the same person's real photo of the target (``expr_models.evaluation.realism_ratio``: the real photo
aligned on the upper face, grey, blurred; ratio = error(edit, real) / error(unedited, real); below 1 = closer to the
real expression). The face box and landmarks that place the region come from RetinaFace on the unedited photos, so every
method is measured on the same region. Per person the ratio is the median over its photo pairs (JAFFE has several takes
per expression); the report gives the median over people and their count.

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


def realism_pairs(raw_data: str | Path, split: str = "test") -> list[PhotoPair]:
    """The photo pairs measured: FEI and London Set neutral <-> happy, JAFFE neutral -> each other expression."""
    pairs = photo_pairs(raw_data, split)
    pairs = [pair for pair in pairs if pair.dataset != "jaffe" or pair.source_expression == "neutral"]
    return sorted(pairs, key=lambda p: (DATASET_ORDER.index(p.dataset), p.pair, p.subject, p.target_path.name))


def read_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def summarise(records: Sequence[dict]) -> list[dict]:
    """Rows of the realism table from one record per (photo pair, method): ``{"dataset", "pair", "method",
    "subject", "ratio"}``. Per subject the median over its pairs; per row the median over subjects."""
    grouped: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[(record["dataset"], record["pair"], record["method"])][record["subject"]].append(record["ratio"])
    rows = []
    for (dataset, pair, method), by_subject in grouped.items():
        per_subject = {subject: float(np.median(values)) for subject, values in sorted(by_subject.items())}
        rows.append({"dataset": dataset, "pair": pair, "method": method,
                     "median_ratio": median_ratio(list(per_subject.values())), "subjects": len(per_subject),
                     "photo_pairs": sum(len(values) for values in by_subject.values()), "per_subject": per_subject})
    order = {name: number for number, name in enumerate(DATASET_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r["dataset"], len(order)), _pair_key(r["pair"]),
                                       r["method"] != "average", r["method"]))


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
            scores = paired_realism_ratio(photo, np.asarray(result.image.convert("RGB")), real, box,
                                          input_points=points, target_points=found_real[1])
            records.append({"dataset": pair.dataset, "pair": pair.pair, "method": method, "subject": pair.subject,
                            "ratio": scores["ratio"], "photo": pair.source_path.name, "real": pair.target_path.name})
    return {"split": split, "raw_data": str(raw_data), "methods": measured, "rows": summarise(records),
            "photo_pairs": len(pairs), "skipped_pairs": skipped,
            "seconds_per_photo": {m: round(float(np.median(v)), 3) for m, v in seconds.items()},
            "limit_per_edit": limit}


def markdown_table(realism: dict) -> list[str]:
    """The realism section of the report: one row per (data, edit), one column per method."""
    if "rows" not in realism:
        return [f"Skipped: {realism.get('skipped', 'not run')}.", ""]
    methods = realism["methods"]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for row in realism["rows"]:
        ratio = row["median_ratio"]
        text = "n/a" if ratio is None or not np.isfinite(ratio) else f"{ratio:.2f} ({row['subjects']})"
        cells.setdefault((row["dataset"], row["pair"]), {})[row["method"]] = text
    header = ["data", "edit"] + [("average edit (baseline)" if m == "average" else m) for m in methods]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (dataset, pair), by_method in cells.items():
        source, target = pair.split("->")
        lines.append("| " + " | ".join([dataset, f"{source} → {target}"] + [by_method.get(m, "–") for m in methods])
                     + " |")
    lines.append("")
    if realism.get("skipped_pairs"):
        lines += [f"Left out: {len(realism['skipped_pairs'])} photo pairs where no face was found "
                  f"({'; '.join(realism['skipped_pairs'][:5])}{'; …' if len(realism['skipped_pairs']) > 5 else ''}).",
                  ""]
    return lines
