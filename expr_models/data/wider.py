"""WIDER FACE: in-the-wild photos with the official face boxes and their attribute flags.

The dataset has the columns ``image``, ``file`` (``<event>/<name>.jpg``), ``event`` and ``faces`` (one row per box).
The gt files of real copies have defects; :func:`parse_wider_gt` keeps the complete entries and reports the rest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

from .cards import source_info
from .records import BuildReport, read_image, warn_if_unreported, with_features
from .sources import has_image_extension, require_dir, visible_files

# WIDER FACE attribute values, from wider_face_split/readme.txt.
WIDER_ATTRIBUTES = {
    "blur": ("clear", "normal", "heavy"),
    "expression": ("typical", "exaggerate"),
    "illumination": ("normal", "extreme"),
    "occlusion": ("none", "partial", "heavy"),
    "pose": ("typical", "atypical"),
}
WIDER_BOX_FIELDS = ("x1", "y1", "w", "h", "blur", "expression", "illumination", "invalid", "occlusion", "pose")
WIDER_FEATURES = Features(
    {
        "image": Image(),
        "file": Value("string"),  # <event>/<name>.jpg, as in the gt files
        "event": Value("string"),
        "faces": List(
            {
                "x1": Value("int32"),
                "y1": Value("int32"),
                "w": Value("int32"),
                "h": Value("int32"),
                **{name: ClassLabel(names=list(values)) for name, values in WIDER_ATTRIBUTES.items()},
                "invalid": Value("bool"),
            }
        ),
    }
)


@dataclass
class WiderEntry:
    """One complete gt entry: the image's ``<event>/<name>.jpg`` and its kept boxes."""

    file: str
    faces: list[dict]
    # Box lines left out of ``faces``: ("zero-size boxes dropped" | "malformed box lines dropped", line).
    dropped: list[tuple[str, str]] = field(default_factory=list)


def _parse_wider_box(fields: list[str]) -> dict | None:
    """A box line's ten integers as a ``faces`` row, or ``None`` if it is malformed or out of range."""
    if len(fields) != len(WIDER_BOX_FIELDS):
        return None
    try:
        values = dict(zip(WIDER_BOX_FIELDS, (int(v) for v in fields)))
    except ValueError:
        return None
    for name, names in WIDER_ATTRIBUTES.items():
        if not 0 <= values[name] < len(names):
            return None
    if values["invalid"] not in (0, 1):
        return None
    values["invalid"] = bool(values["invalid"])
    return values


def parse_wider_gt(lines: Iterable[str], report: BuildReport, gt_name: str = "gt") -> list[WiderEntry]:
    """Parse an official ``wider_face_*_bbx_gt.txt``: image name, box count, then that many box lines.

    Robust to the defects of real files: a truncated last entry, an entry cut short by the next image name, a
    count that is not a number, malformed box lines and duplicates. Complete entries are returned; the rest are
    reported. Zero-size and malformed boxes are left out of ``faces`` and listed in the entry's ``dropped`` (the
    builder counts them for the images it keeps); boxes flagged invalid are kept with ``invalid=True``.
    An image with 0 faces is followed by a dummy all-zero box line, which is consumed.
    """
    lines = [line.strip() for line in lines]
    entries: dict[str, WiderEntry] = {}
    i, n = 0, len(lines)
    while i < n:
        line, line_number = lines[i], i + 1
        i += 1
        if not line:
            continue
        if not has_image_extension(line):
            report.skip(f"{gt_name}:{line_number}", "unexpected line in the gt file (expected an image name)",
                        line[:80])
            continue
        name = line
        if i >= n or not lines[i]:
            report.skip(name, "truncated gt entry", "the file ends after the image name")
            continue
        if not lines[i].isdigit():
            if not has_image_extension(lines[i]):
                i += 1  # a garbled count line belongs to this entry
            report.skip(name, "gt entry without a box count", f"line {i}: {lines[i - 1][:40]!r}")
            continue
        expected = int(lines[i])
        i += 1
        if expected == 0 and i < n and lines[i].split() == ["0"] * len(WIDER_BOX_FIELDS):
            i += 1  # the official placeholder box of a face-less image

        faces, dropped, read, complete = [], [], 0, True
        while read < expected:
            if i >= n or has_image_extension(lines[i]):
                where = "the file ends" if i >= n else "the next entry starts"
                report.skip(name, "truncated gt entry", f"{where} after {read} of {expected} boxes")
                complete = False
                break
            box = _parse_wider_box(lines[i].split())
            i += 1
            read += 1
            if box is None and i >= n:  # the file was cut inside this box line
                report.skip(name, "truncated gt entry", f"the file ends inside box {read} of {expected}")
                complete = False
                break
            if box is None:
                dropped.append(("malformed box lines dropped", repr(lines[i - 1][:60])))
            elif box["w"] <= 0 or box["h"] <= 0:
                dropped.append(("zero-size boxes dropped", lines[i - 1]))
            else:
                faces.append(box)
        if not complete:
            continue
        if name in entries:
            report.skip(name, "duplicate gt entry (the first one is kept)")
            continue
        entries[name] = WiderEntry(name, faces, dropped)
    return list(entries.values())


def build_wider(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """WIDER FACE: ``WIDER_{train,val}/images/<event>/*.jpg`` with the boxes of ``wider_face_split/*_bbx_gt.txt``.

    Only images with a complete gt entry that are present here are kept; gt entries for absent images and present
    images without a complete entry are reported. ``seed`` is unused (the official split is kept).
    """
    given, report = report, report or BuildReport("wider")
    root = require_dir(root, "WIDER FACE")
    dsd = DatasetDict()
    for folder_split, split in (("train", "train"), ("val", "validation")):
        image_root = root / f"WIDER_{folder_split}" / "images"
        gt_path = root / "wider_face_split" / f"wider_face_{folder_split}_bbx_gt.txt"
        if gt_path.is_file():
            gt_lines = gt_path.read_text(encoding="utf-8", errors="replace").splitlines()
            entries = parse_wider_gt(gt_lines, report, gt_path.name)
        else:
            report.skip(gt_path.relative_to(root), "gt file missing")
            entries = []
        present = {}
        if image_root.is_dir():
            for event_dir in sorted(p for p in image_root.iterdir() if p.is_dir()):
                for path in visible_files(event_dir):
                    present[f"{event_dir.name}/{path.name}"] = path
        elif entries:
            report.skip(image_root.relative_to(root), "image folder missing")

        reported = {record.path for record in report.bad}  # incomplete entries, already reported by the parser
        columns = defaultdict(list)
        for entry in entries:
            path = present.pop(entry.file, None)
            if path is None:
                report.skip(entry.file, f"listed in {gt_path.name} but not in this subset")
                continue
            loaded = read_image(path, entry.file, report, "wider")
            if loaded is None:
                continue
            report.note("boxes flagged invalid (kept, invalid=True)", count=sum(f["invalid"] for f in entry.faces))
            for what, line in entry.dropped:
                report.note(what, f"{entry.file}: {line}")
            columns["image"].append({"bytes": loaded[0], "path": entry.file})
            columns["file"].append(entry.file)
            columns["event"].append(entry.file.split("/")[0])
            columns["faces"].append(entry.faces)
            report.kept[split] += 1
        for name in sorted(set(present) - reported):
            report.skip(f"WIDER_{folder_split}/images/{name}", "image present but without a complete gt entry")
        if columns:
            info = with_features(source_info("wider"), WIDER_FEATURES)
            dsd[split] = Dataset.from_dict(dict(columns), features=WIDER_FEATURES, info=info, split=split)
    warn_if_unreported(report, given)
    return dsd
