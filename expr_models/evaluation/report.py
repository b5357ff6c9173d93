"""The results of a run as ``evaluation.json`` and as ``evaluation.md``: Markdown tables to paste into the README."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .detection import markdown_table
from .realism import markdown_table as realism_table
from .realism import mesh_tables


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _whole_photo_success(row: dict) -> str:
    """``classifier / second reader (photos)`` read on the edited original photos, or ``–`` where none was read."""
    read = (row.get("whole_photos") or {}).get("read_as_target")
    if not read:
        return "–"
    second = f" / {_pct(read['second_reader'])}" if "second_reader" in read else ""
    return f"{_pct(read['classifier'])}{second} ({read['photos']})"


def _kid_text(kid: dict) -> str:
    """KID x 10^3 as ``mean ± std``; a std at float rounding level (identical subsets) shows as 0."""
    if "mean" not in kid:
        return "n/a"
    mean, std = 1e3 * kid["mean"], 1e3 * kid["std"]
    std = 0.0 if std <= 1e-9 * max(abs(mean), 1e-3) else std
    return f"{mean:.3g} ± {std:.2g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]


def _edit_label(row: dict) -> str:
    inputs = row.get("inputs", {})
    source = next(iter(inputs)) if len(inputs) == 1 else "others"
    return f"{source} → {row['target']}"


def markdown_report(results: dict) -> str:
    """The results as Markdown tables, ready to paste into the README."""
    machine = results["machine"]
    hardware = [machine.get("gpu") or machine["processor"] or machine["machine"], machine.get("vector_unit"),
                f"{machine['cpu_count']} CPUs", f"torch {machine['torch']}"]
    lines = [
        "## Evaluation",
        "",
        f"Held-out subjects (the `{results['settings']['split']}` split), {results['created']}, on "
        f"{machine['device']} ({', '.join(part for part in hardware if part)}).",
        "",
    ]
    if results.get("command"):
        lines += [f"`{results['command']}`", ""]
    names = {kind: ", ".join(f"`{c['name']}`" + (f" ({c['sha256']})" if c.get("sha256") else "") for c in found)
             for kind, found in results["checkpoints"].items()}
    lines += ["Checkpoints: " + ("; ".join(f"{kind} {value}" for kind, value in names.items()) or "none") + ".", ""]
    data_rows = []
    for name, dataset in results["datasets"].items():
        info = dataset["data"]
        per = ", ".join(f"{k} {v}" for k, v in info["per_expression"].items())
        data_rows.append([f"`{name}`", info["split"], f"{info['faces']} of {info['faces_in_split']}",
                          info["subjects"], ", ".join(f"{k} {v}" for k, v in info["per_source"].items()), per])
    lines += _table(["data", "split", "faces used", "subjects", "sources", "per expression"], data_rows)
    limit = results["settings"].get("limit_per_expression")
    if limit:
        lines += [f"At most {limit} faces per expression and dataset (`--limit {limit}`).", ""]

    if results.get("classifier_available"):
        lines += ["### The judge: expression classifier on real held-out faces", "",
                  "Its accuracy on all real held-out faces, and its recall per expression (the share of real faces "
                  "of that expression it reads correctly): the ceiling of the success rates below.", ""]
        rows = []
        for name, dataset in results["datasets"].items():
            judged = dataset.get("classifier", {})
            recall = ", ".join(f"{expression} {_pct(value)} ({judged['n_per_expression'][expression]})"
                               for expression, value in judged.get("recall", {}).items())
            rows.append([f"`{name}`", judged.get("n", 0), _pct(judged.get("accuracy")), recall or "n/a"])
        lines += _table(["data", "real faces", "accuracy", "recall per expression (faces)"], rows)

        lines += ["### Expression success", "",
                  "Share of edited faces the classifier reads as the target; *second reader*: the share the "
                  "independent reader (`checkpoints/second_reader`, facial-emotion-recognition's FER2013 network) "
                  "reads as the target, and *both*: read so by both at once. Beside them the ceiling: the classifier's "
                  "recall on real held-out faces of the target (their count in brackets) and its accuracy on all "
                  "real held-out faces. *Inputs*: share of the unedited inputs already read as the target. KID "
                  "between real faces of the target and the edits, on the classifier's penultimate features "
                  "(x10^3, mean ± std over subsets; lower = closer; n/a with fewer than 2 real faces). Methods that "
                  "edit a face from its own expression (the SA-GAN, the mesh motion) take it from the classifier's "
                  "reading of the input, as the editor does. *Whole photos*: the same edit made end to end, as a "
                  "user gets it: the held-out faces' original photos (the first `--max-photos` with one; FER2013 "
                  "and CK+ have none) edited by the editor and read on the edited photo as the Space reads them, by "
                  "the classifier / the second reader (photos in brackets).", ""]
        rows = []
        for name, dataset in results["datasets"].items():
            judged = dataset.get("classifier", {})
            for row in dataset["edits"]:
                if "success_rate" not in row:
                    continue
                target = row["target"]
                n_real = judged.get("n_per_expression", {}).get(target, 0)
                recall = f"{_pct(judged.get('recall', {}).get(target))} ({n_real})" if n_real else "no real faces"
                kid = row.get("kid", {})
                kid_text = _kid_text(kid)
                rows.append([f"`{name}`", row["method"], _edit_label(row), row["n"], _pct(row["success_rate"]),
                             _pct(row.get("success_second_reader")), _pct(row.get("success_both_readers")),
                             _whole_photo_success(row), recall, _pct(judged.get("accuracy")),
                             _pct(row.get("inputs_read_as_target")), kid_text])
        lines += _table(["data", "method", "edit", "faces", "success", "second reader", "both", "whole photos",
                         "ceiling: recall on real target", "ceiling: accuracy", "inputs", "KID x10^3"], rows)

    lines += ["### Preservation", "",
              "Upper face (top 45% of the aligned crop: eyes, brows, forehead): input vs. edit, SSIM (1 = identical) "
              "and L1 on [-1, 1]. Whole photos through the pipeline: pixels changed outside the blend mask (should "
              "be 0).", ""]
    rows = []
    for name, dataset in results["datasets"].items():
        for row in dataset["edits"]:
            if "upper_face" not in row:
                continue
            photos = row.get("whole_photos")
            photo_text = (f"{photos['changed_pixels_outside_mask']} of {photos['pixels_outside_mask']} "
                          f"({photos['photos']} photos)" if photos else "not run")
            rows.append([f"`{name}`", row["method"], _edit_label(row), row["n"], _num(row["upper_face"]["ssim"]),
                         _num(row["upper_face"]["l1"], 4), photo_text])
    lines += _table(["data", "method", "edit", "faces", "upper-face SSIM", "upper-face L1", "changed outside mask"],
                    rows)

    rows = []
    for name, dataset in results["datasets"].items():
        for row in dataset["edits"]:
            if "cycle_l1" in row:
                cycle = row["cycle_l1"]
                back = row["target"]
                source = _edit_label(row).split(" → ")[0]
                rows.append([f"`{name}`", row["method"], f"{source} → {back} → {source}", row["n"],
                             _num(cycle["[-1,1]"], 4), _num(cycle["[0,1]"], 4), _num(cycle["[0,255]"], 2)])
    if rows:
        lines += ["### Cycle reconstruction (CycleGAN)", "",
                  "mean |x − F(G(x))| on the model's [-1, 1] tensors, the scale of the reference CycleGAN code and "
                  "so the likely scale of the study's number; the same on [0, 1] (half of it), to compare with a "
                  "study number on that scale; and per pixel on [0, 255] (127.5 times it).", ""]
        lines += _table(["data", "method", "cycle", "faces", "L1 [-1,1]", "L1 [0,1]", "L1 [0,255]"], rows)

    rows = []
    for name, dataset in results["datasets"].items():
        for row in dataset["edits"]:
            if "paired" in row:
                paired = row["paired"]
                edited, unedited = paired["edited_vs_real"], paired["input_vs_real"]
                rows.append([f"`{name}`", row["method"], paired["n_pairs"],
                             f"{_num(edited['l1'], 4)} / {_num(unedited['l1'], 4)}",
                             f"{_num(edited['lower_face_l1'], 4)} / {_num(unedited['lower_face_l1'], 4)}",
                             f"{_num(edited['ssim'])} / {_num(unedited['ssim'])}",
                             f"{_num(edited['lower_face_ssim'])} / {_num(unedited['lower_face_ssim'])}"])
    if rows:
        lines += ["### Paired error on FEI (neutral → happy)", "",
                  "Each held-out FEI subject's neutral photo, edited to happy, against the same subject's real smile: "
                  "**edit / unedited input** (L1 on [-1, 1], lower = closer; SSIM, higher = closer). An edit that "
                  "moves towards the real smile beats the unedited input.", ""]
        lines += _table(["data", "method", "pairs", "L1", "lower-face L1", "SSIM", "lower-face SSIM"], rows)

    realism = results.get("realism")
    if realism is not None:
        lines += ["### Paired realism ratio (held-out people, whole photos through the editor)", ""]
        if "rows" in realism:
            lines += [realism["definition"] + " Below 1 the edit is closer to the person's real expression than the "
                      "unedited photo; the average edit is the no-learning baseline every method must beat.", ""]
        lines += realism_table(realism)
        mesh = mesh_tables(realism)
        if mesh:
            lines += ["### What a person sees: mesh motion, mouth opening, sharpness (the same edits)", ""]
            if realism.get("mesh_definition") and any("mesh" in row for row in realism.get("rows", [])):
                lines += [realism["mesh_definition"], ""]
            lines += mesh

    for name, detection in results.get("detection", {}).items():
        lines += [f"### Face detection on WIDER FACE (`{name}`)", "",
                  "AP over the interpolated precision-recall curve (PASCAL VOC matching), each detector above its "
                  "own score threshold. RetinaFace's own boxes are scored (the editor maps them to the Haar framing "
                  "for its crops). Haar boxes span brows to mouth and WIDER's the whole head, so IoU 0.3 is given "
                  "beside the usual 0.5.", ""]
        lines += markdown_table(detection) + [""]

    lines += ["Notes:", ""] + [f"- {note}" for note in results["notes"]] + [""]
    return "\n".join(lines)


def write_results(results: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "evaluation.json", out_dir / "evaluation.md"
    json_path.write_text(json.dumps(_jsonable(results), indent=2) + "\n")
    md_path.write_text(markdown_report(results))
    return json_path, md_path


def _jsonable(value: Any) -> Any:
    # JSON has no NaN: an undefined rate (no faces) becomes null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value
