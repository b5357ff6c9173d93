"""Package the project's face data (JAFFE, FEI, FER2013, CK+, WIDER FACE) as Hugging Face ``datasets``.

Each ``build_*`` function reads one source in its own layout and naming and returns a ``DatasetDict``:

    report = BuildReport("jaffe")
    dsd = build_jaffe("../shared/data/jaffe", seed=0, report=report)
    print(report.summary())
    print(subject_disjoint_check(dsd))

Expression sets have the columns ``image``, ``expression`` (a ``ClassLabel`` over
``EXPRESSIONS_WITH_CONTEMPT``), ``subject`` ("" where unknown) and ``source``. WIDER FACE has ``image``, ``file``,
``event`` and ``faces`` (the official boxes with their attribute flags).

Real data has defects (see ``../shared/data/README.md``). A builder never crashes on one and never drops a good record
silently: whatever it leaves out goes into the :class:`BuildReport` with the reason, and whatever it changes on a kept
record (a zero-size box dropped, a face crop that fell back to the centre) is counted there too.

Images are stored as the source's own file bytes (checked by decoding once) unless a builder has to change them
(JAFFE to 8-bit grayscale, the recipes' face crops), which are stored as PNG.
"""

from __future__ import annotations

import copy
import io
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Image, List, Value
from PIL import Image as PILImage

from .labels import EXPRESSIONS, EXPRESSIONS_WITH_CONTEMPT, canonical_expression

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# Fractions of subjects (or of FER2013's train images, for validation) per split.
SUBJECT_SPLIT_FRACTIONS = {"validation": 0.15, "test": 0.15}
FER_VALIDATION_FRACTION = 0.1
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}

# Folder names of the sources inside ../shared/data.
SOURCE_DIRS = {"jaffe": "jaffe", "fei": "fei", "fer2013": "fer2013", "ckplus": "ckplus48", "wider": "wider_face"}

EXPRESSION_FEATURES = Features(
    {
        "image": Image(),
        "expression": ClassLabel(names=list(EXPRESSIONS_WITH_CONTEMPT)),
        "subject": Value("string"),
        "source": Value("string"),
    }
)
# The recipes mix sources at one resolution; ``upscaled`` marks images enlarged to reach it (FER2013/CK+ 48x48).
RECIPE_FEATURES = Features({**EXPRESSION_FEATURES, "upscaled": Value("bool")})

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

CITATIONS = {
    "jaffe": "Michael J. Lyons, Shigeru Akamatsu, Miyuki Kamachi, Jiro Gyoba. Coding Facial Expressions with Gabor "
    "Wavelets. 3rd IEEE International Conference on Automatic Face and Gesture Recognition, 1998, pp. 200-205.",
    "fei": "Carlos E. Thomaz, Gilson A. Giraldi. A new ranking method for Principal Components Analysis and its "
    "application to face image analysis. Image and Vision Computing 28(6), 2010, pp. 902-913.",
    "fer2013": "Ian J. Goodfellow et al. Challenges in Representation Learning: A report on three machine learning "
    "contests. ICONIP 2013 (arXiv:1307.0414).",
    "ckplus": "Patrick Lucey, Jeffrey F. Cohn, Takeo Kanade, Jason Saragih, Zara Ambadar, Iain Matthews. The Extended "
    "Cohn-Kanade Dataset (CK+): A complete dataset for action unit and emotion-specified expression. CVPR Workshops "
    "2010. Takeo Kanade, Jeffrey F. Cohn, Yingli Tian. Comprehensive database for facial expression analysis. FG 2000.",
    "wider": "Shuo Yang, Ping Luo, Chen Change Loy, Xiaoou Tang. WIDER FACE: A Face Detection Benchmark. CVPR 2016.",
}
DESCRIPTIONS = {
    "jaffe": "JAFFE: 10 Japanese female subjects posing 7 expressions, 256x256 grayscale.",
    "fei": "FEI face database, frontal subset: one neutral and one smiling (happy) image per subject, grayscale.",
    "fer2013": "FER2013: 48x48 grayscale face crops in 7 expression classes (known label noise).",
    "ckplus": "CK+ 48x48 grayscale crops of the last frames of posed expression sequences (near-duplicates).",
    "wider": "WIDER FACE subset: in-the-wild photos with face boxes and attribute flags.",
}
TERMS = (
    "Research-only and non-commercial. None of these images may be redistributed; some of the licences forbid "
    "redistribution outright. Never push any of this data to a public Hub repository. Use it under the terms of "
    "each original dataset's licence, and cite the original authors."
)


# --------------------------------------------------------------------------------------------------------------------
# The report


@dataclass
class BadRecord:
    """A record left out of the dataset, and why."""

    path: str
    reason: str
    detail: str = ""
    source: str = ""


@dataclass
class BuildReport:
    """What a build kept, what it left out and why, and what it changed on kept records.

    ``kept`` counts good records per split; ``bad`` lists every record left out with its reason; ``notes`` counts
    things done to kept records (``zero-size boxes dropped``, ``crop fell back to the centre square``, ...) with a
    few example paths in ``note_examples``.
    """

    source: str
    kept: Counter = field(default_factory=Counter)
    bad: list[BadRecord] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    note_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def skip(self, path: str | Path, reason: str, detail: str = "", source: str = "") -> None:
        self.bad.append(BadRecord(str(path), reason, detail, source or self.source))

    def note(self, what: str, path: str | Path | None = None, count: int = 1) -> None:
        self.notes[what] += count
        if path is not None and len(self.note_examples[what]) < 3:
            self.note_examples[what].append(str(path))

    def bad_by_reason(self) -> Counter:
        return Counter(record.reason for record in self.bad)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kept": dict(self.kept),
            "bad_by_reason": dict(self.bad_by_reason()),
            "bad": [vars(record) for record in self.bad],
            "notes": dict(self.notes),
            "note_examples": dict(self.note_examples),
        }

    def summary(self, examples: int = 3) -> str:
        kept = ", ".join(f"{split} {n}" for split, n in _in_split_order(self.kept))
        lines = [f"{self.source}: kept {sum(self.kept.values())} records ({kept or 'none'}); "
                 f"left out {len(self.bad)}"]
        for reason, count in self.bad_by_reason().most_common():
            paths = [r.path + (f" [{r.detail}]" if r.detail else "") for r in self.bad if r.reason == reason]
            lines.append(f"  left out {count} x {reason}: e.g. {'; '.join(paths[:examples])}")
        for what, count in self.notes.most_common():
            shown = self.note_examples.get(what) or []
            lines.append(f"  note: {count} x {what}" + (f" (e.g. {'; '.join(shown[:examples])})" if shown else ""))
        return "\n".join(lines)


def _in_split_order(counts: dict) -> list[tuple[str, int]]:
    order = {name: i for i, name in enumerate(SPLITS)}
    return sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


# --------------------------------------------------------------------------------------------------------------------
# Records and splits


@dataclass
class ExpressionRecord:
    """One labelled image file, before its bytes are read."""

    path: Path
    name: str  # path relative to the source's root, for reports and the stored image path
    expression: str
    subject: str
    source: str
    split: str = ""


def split_subjects(subjects: Iterable[str], seed: int = 0, fractions: dict[str, float] | None = None) -> dict[str, str]:
    """Assign whole subjects to train/validation/test: a seeded shuffle of the sorted subject ids.

    With fewer than three subjects everything goes to train (a held-out split would be meaningless).
    """
    fractions = SUBJECT_SPLIT_FRACTIONS if fractions is None else fractions
    subjects = sorted(set(subjects))
    random.Random(seed).shuffle(subjects)
    if len(subjects) < 3:
        return {subject: "train" for subject in subjects}
    # Conventional rounding, at least one subject per held-out split.
    n_validation = max(1, int(len(subjects) * fractions["validation"] + 0.5))
    n_test = max(1, int(len(subjects) * fractions["test"] + 0.5))
    assignment = {}
    for i, subject in enumerate(subjects):
        assignment[subject] = "validation" if i < n_validation else "test" if i < n_validation + n_test else "train"
    return assignment


def _split_by_subject(records: list[ExpressionRecord], seed: int, report: BuildReport) -> list[ExpressionRecord]:
    placeable = []
    for record in records:
        if record.subject:
            placeable.append(record)
        else:  # without a subject id it could leak across splits
            report.skip(record.name, "no subject id in the file name, cannot split by subject", source=record.source)
    assignment = split_subjects((r.subject for r in placeable), seed)
    for record in placeable:
        record.split = assignment[record.subject]
    return placeable


def _stratified_split(records: list[ExpressionRecord], seed: int, held_out: dict[str, float]) -> None:
    """Per class, a seeded shuffle; the first ``fraction`` of each class moves to each held-out split in turn."""
    by_class = defaultdict(list)
    for record in records:
        by_class[record.expression].append(record)
    rng = random.Random(seed)
    for expression in sorted(by_class):
        group = sorted(by_class[expression], key=lambda r: r.name)
        rng.shuffle(group)
        start = 0
        for split, fraction in held_out.items():
            count = int(len(group) * fraction + 0.5)
            for record in group[start:start + count]:
                record.split = split
            start += count


# --------------------------------------------------------------------------------------------------------------------
# Scanning the sources (file names only, no image decoding)

JAFFE_NAME = re.compile(r"^(?P<subject>[A-Z]{2})\.(?P<code>[A-Z]{2})(?P<take>\d+)\.(?P<id>\d+)\.tiff?$", re.IGNORECASE)
FEI_NAME = re.compile(r"^(?P<subject>\d+)(?P<pose>[ab])\.jpe?g$", re.IGNORECASE)
FEI_EXPRESSIONS = {"a": "neutral", "b": "happy"}
CKPLUS_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<sequence>\d+)_(?P<frame>\d+)\.png$", re.IGNORECASE)
SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                      "val": "validation", "test": "test", "testing": "test"}


def _require_dir(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {root}")
    return root


def _visible_files(folder: Path) -> list[Path]:
    # Hidden files (.DS_Store, ._foo) are file-system clutter, not records.
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def scan_jaffe(root: str | Path, report: BuildReport) -> list[ExpressionRecord]:
    """JAFFE: ``SS.XXn.id.tiff`` with subject ``SS`` and expression code ``XX`` (AN DI FE HA NE SA SU)."""
    root = _require_dir(root, "JAFFE")
    records = []
    for path in _visible_files(root):
        match = JAFFE_NAME.match(path.name)
        if not match:
            report.skip(path.name, "file name not in the JAFFE pattern SS.XXn.id.tiff", source="jaffe")
            continue
        try:
            expression = canonical_expression(match["code"])
        except ValueError:
            report.skip(path.name, "unknown expression label", match["code"], source="jaffe")
            continue
        records.append(ExpressionRecord(path, path.name, expression, match["subject"].upper(), "jaffe"))
    return records


def scan_fei(root: str | Path, report: BuildReport) -> list[ExpressionRecord]:
    """FEI frontal: ``Na.jpg`` is subject N neutral, ``Nb.jpg`` subject N smiling (happy)."""
    root = _require_dir(root, "FEI")
    records = []
    for path in _visible_files(root):
        match = FEI_NAME.match(path.name)
        if not match:
            report.skip(path.name, "file name not in the FEI pattern Na.jpg / Nb.jpg", source="fei")
            continue
        expression = FEI_EXPRESSIONS[match["pose"].lower()]
        records.append(ExpressionRecord(path, path.name, expression, match["subject"], "fei"))
    return records


def scan_class_folders(folder: Path, source: str, report: BuildReport, name_prefix: str = "") -> list[ExpressionRecord]:
    """``<class>/<image>`` folders; the class name goes through ``canonical_expression``."""
    records = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            expression = canonical_expression(class_dir.name)
        except ValueError:
            expression = None
        for path in _visible_files(class_dir):
            name = f"{name_prefix}{class_dir.name}/{path.name}"
            if expression is None:
                report.skip(name, "unknown expression label", class_dir.name, source=source)
            elif not _is_image_name(path):
                report.skip(name, "not an image file", source=source)
            else:
                records.append(ExpressionRecord(path, name, expression, "", source))
    for path in _visible_files(folder):
        report.skip(f"{name_prefix}{path.name}", "file outside any class folder", source=source)
    return records


def scan_fer2013(root: str | Path, report: BuildReport, seed: int = 0) -> list[ExpressionRecord]:
    """FER2013: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``; validation is carved from train (seeded)."""
    root = _require_dir(root, "FER2013")
    records = []
    for split in ("train", "test"):
        if not (root / split).is_dir():
            report.skip(f"{split}/", "split folder missing", source="fer2013")
            continue
        for record in scan_class_folders(root / split, "fer2013", report, name_prefix=f"{split}/"):
            record.split = split
            records.append(record)
    _stratified_split([r for r in records if r.split == "train"], seed, {"validation": FER_VALIDATION_FRACTION})
    return records


def scan_ckplus(root: str | Path, report: BuildReport, seed: int = 0) -> list[ExpressionRecord]:
    """CK+ crops: ``<class>/S005_001_00000009.png``; the ``S005`` prefix is the subject, so split by subject."""
    root = _require_dir(root, "CK+")
    records = scan_class_folders(root, "ckplus", report)
    for record in records:
        match = CKPLUS_NAME.match(record.path.name)
        record.subject = match["subject"].upper() if match else ""
    return _split_by_subject(records, seed, report)


# --------------------------------------------------------------------------------------------------------------------
# Reading images and building datasets

# process(record, image) -> (image to store, extra columns)
ImageProcess = Callable[[ExpressionRecord, PILImage.Image], tuple[PILImage.Image, dict]]


def _read_image(path: Path, name: str, report: BuildReport, source: str) -> tuple[bytes, PILImage.Image] | None:
    """The file's bytes and the decoded image, or ``None`` (reported) if it cannot be read.

    Decoding once here is cheap (about 4 s for all five sources) and catches truncated files before training does.
    """
    try:
        data = path.read_bytes()
        image = PILImage.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
        report.skip(name, "unreadable image", f"{type(error).__name__}: {error}"[:200], source=source)
        return None
    return data, image


def _png_bytes(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast; these images are small
    return buffer.getvalue()


def _records_to_dataset_dict(records: list[ExpressionRecord], report: BuildReport, features: Features,
                             process: ImageProcess | None = None, info: DatasetInfo | None = None) -> DatasetDict:
    """Read, check and (optionally) transform each record's image; one ``Dataset`` per split."""
    columns = defaultdict(lambda: defaultdict(list))
    for record in sorted(records, key=lambda r: (r.source, r.name)):
        loaded = _read_image(record.path, record.name, report, record.source)
        if loaded is None:
            continue
        data, image = loaded
        extra = {}
        if process is not None:
            try:
                image, extra = process(record, image)
            except Exception as error:  # one bad image must not stop the build
                report.skip(record.name, "image processing failed", f"{type(error).__name__}: {error}"[:200],
                            source=record.source)
                continue
            data = _png_bytes(image)
        row = {"image": {"bytes": data, "path": record.name}, "expression": record.expression,
               "subject": record.subject, "source": record.source, **extra}
        for key, value in row.items():
            columns[record.split][key].append(value)
        report.kept[record.split] += 1

    dsd = DatasetDict()
    for split in sorted(columns, key=lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS)):
        dsd[split] = Dataset.from_dict(dict(columns[split]), features=features, info=_with_features(info, features),
                                       split=split)
    return dsd


def _info(source: str) -> DatasetInfo:
    return DatasetInfo(description=f"{DESCRIPTIONS[source]} {TERMS}", citation=CITATIONS[source], license="other")


def _with_features(info: DatasetInfo | None, features: Features) -> DatasetInfo | None:
    # from_dict insists that info.features equals features; each split gets its own copy.
    if info is None:
        return None
    info = copy.deepcopy(info)
    info.features = features
    return info


def _warn_if_unreported(report: BuildReport, given: BuildReport | None) -> None:
    # A caller that passes no report still hears about left-out records.
    if given is None and (report.bad or report.notes):
        logger.warning("%s", report.summary())


def _to_grayscale(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
    # JAFFE mixes palette-mode (gray palette) and 'L' TIFFs; convert('L') maps the palette to its gray values.
    return image.convert("L"), {}


def build_jaffe(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """JAFFE as 8-bit grayscale PNGs, split by subject (train/validation/test)."""
    given, report = report, report or BuildReport("jaffe")
    records = _split_by_subject(scan_jaffe(root, report), seed, report)
    dsd = _records_to_dataset_dict(records, report, EXPRESSION_FEATURES, _to_grayscale, _info("jaffe"))
    _warn_if_unreported(report, given)
    return dsd


def build_fei(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """FEI neutral/happy pairs, split by subject."""
    given, report = report, report or BuildReport("fei")
    records = _split_by_subject(scan_fei(root, report), seed, report)
    dsd = _records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=_info("fei"))
    _warn_if_unreported(report, given)
    return dsd


def build_fer2013(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """FER2013 with its own train/test and a seeded 10% validation split carved from train (no subject ids)."""
    given, report = report, report or BuildReport("fer2013")
    records = scan_fer2013(root, report, seed)
    dsd = _records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=_info("fer2013"))
    _warn_if_unreported(report, given)
    return dsd


def build_ckplus(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """CK+ 48x48 crops, split by the subject id in the file names (S005_001_... -> S005)."""
    given, report = report, report or BuildReport("ckplus")
    records = scan_ckplus(root, report, seed)
    dsd = _records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=_info("ckplus"))
    _warn_if_unreported(report, given)
    return dsd


def build_imagefolder(root: str | Path, seed: int = 0, report: BuildReport | None = None,
                      source: str = "imagefolder") -> DatasetDict:
    """Any ``[<split>/]<class>/<image>`` folder with expression class names.

    Split folders (train, val/valid/validation, test) are kept as they are. Without them the images get a seeded,
    class-stratified 80/10/10 split. Subjects are unknown ("").
    """
    given, report = report, report or BuildReport(source)
    root = _require_dir(root, "Image")
    split_dirs = {SPLIT_FOLDER_NAMES[p.name.lower()]: p for p in sorted(root.iterdir())
                  if p.is_dir() and p.name.lower() in SPLIT_FOLDER_NAMES}
    records = []
    if split_dirs:
        for split, folder in split_dirs.items():
            for record in scan_class_folders(folder, source, report, name_prefix=f"{folder.name}/"):
                record.split = split
                records.append(record)
        for path in sorted(root.iterdir()):
            if path.name.startswith(".") or path.name.lower() in SPLIT_FOLDER_NAMES:
                continue
            if path.is_dir():
                report.skip(f"{path.name}/", "folder is not a split (train, validation, test)", source=source)
            else:
                report.skip(path.name, "file outside any split folder", source=source)
    else:
        records = scan_class_folders(root, source, report)
        for record in records:
            record.split = "train"
        _stratified_split(records, seed, {"validation": 0.1, "test": 0.1})
    info = DatasetInfo(description=f"Image folder {root.name}. {TERMS}", license="other")
    dsd = _records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=info)
    _warn_if_unreported(report, given)
    return dsd


# --------------------------------------------------------------------------------------------------------------------
# WIDER FACE


@dataclass
class WiderEntry:
    file: str
    faces: list[dict]
    # Box lines left out of ``faces``: ("zero-size boxes dropped" | "malformed box lines dropped", line).
    dropped: list[tuple[str, str]] = field(default_factory=list)


def _looks_like_image_line(text: str) -> bool:
    return Path(text).suffix.lower() in IMAGE_EXTENSIONS


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
        if not _looks_like_image_line(line):
            report.skip(f"{gt_name}:{line_number}", "unexpected line in the gt file (expected an image name)",
                        line[:80])
            continue
        name = line
        if i >= n or not lines[i]:
            report.skip(name, "truncated gt entry", "the file ends after the image name")
            continue
        if not lines[i].isdigit():
            if not _looks_like_image_line(lines[i]):
                i += 1  # a garbled count line belongs to this entry
            report.skip(name, "gt entry without a box count", f"line {i}: {lines[i - 1][:40]!r}")
            continue
        expected = int(lines[i])
        i += 1
        if expected == 0 and i < n and lines[i].split() == ["0"] * len(WIDER_BOX_FIELDS):
            i += 1  # the official placeholder box of a face-less image

        faces, dropped, read, complete = [], [], 0, True
        while read < expected:
            if i >= n or _looks_like_image_line(lines[i]):
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
    root = _require_dir(root, "WIDER FACE")
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
                for path in _visible_files(event_dir):
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
            loaded = _read_image(path, entry.file, report, "wider")
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
            info = _with_features(_info("wider"), WIDER_FEATURES)
            dsd[split] = Dataset.from_dict(dict(columns), features=WIDER_FEATURES, info=info, split=split)
    _warn_if_unreported(report, given)
    return dsd


# --------------------------------------------------------------------------------------------------------------------
# Recipes: training sets mixing sources at one resolution


def _centre_square(image: PILImage.Image) -> PILImage.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


class FaceCropper:
    """Aligned grayscale face crops with the editor's own framing (``expr_models.face``).

    The boxes come from the Haar cascade (``HaarFaceDetector``), not the editor's default detector: every committed
    model was trained on Haar-framed crops, and the editor maps RetinaFace's boxes to that framing. If no face is found
    the centre square is used instead, and counted in the report.
    """

    def __init__(self, size: int, report: BuildReport):
        from . import face  # OpenCV is only needed when cropping

        self.face = face
        self.detector = face.HaarFaceDetector()
        self.size = size
        self.report = report

    def __call__(self, record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
        rgb = np.asarray(image.convert("RGB"))
        boxes = self.face.detect_faces(rgb, detector=self.detector)
        if boxes:
            crop, transform = self.face.crop_face(rgb, boxes[0], self.size)
            return PILImage.fromarray(crop).convert("L"), {"upscaled": transform.side < self.size}
        self.report.note("no face found, centre square used", f"{record.source}/{record.name}")
        square = _centre_square(image.convert("L"))
        upscaled = square.size[0] < self.size
        return square.resize((self.size, self.size), PILImage.Resampling.BICUBIC), {"upscaled": upscaled}


def _resizer(size: int) -> ImageProcess:
    """Resize an (already cropped) face to ``size x size`` grayscale; marks enlargements as ``upscaled``."""

    def resize(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
        image = _centre_square(image.convert("L"))
        upscaled = image.size[0] < size
        if image.size != (size, size):
            image = image.resize((size, size), PILImage.Resampling.BICUBIC)
        return image, {"upscaled": upscaled}

    return resize


def _keep_expressions(records: list[ExpressionRecord], keep: Iterable[str],
                      report: BuildReport) -> list[ExpressionRecord]:
    keep = set(keep)
    kept = [r for r in records if r.expression in keep]
    for record in records:
        if record.expression not in keep:
            report.note(f"{record.source} images of other expressions, not in this recipe")
    return kept


def _recipe_dataset_dict(records: list[ExpressionRecord], report: BuildReport,
                         process_by_source: dict[str, ImageProcess], description: str) -> DatasetDict:
    def process(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
        return process_by_source[record.source](record, image)

    sources = sorted({r.source for r in records})
    info = DatasetInfo(description=f"{description} {TERMS}", license="other",
                       citation="\n".join(CITATIONS[s] for s in sources if s in CITATIONS))
    return _records_to_dataset_dict(records, report, RECIPE_FEATURES, process, info)


def build_paper(data_root: str | Path, seed: int = 0, crop_size: int = 128, crop: bool = True,
                report: BuildReport | None = None, include_fer: bool = False) -> DatasetDict:
    """The study's two-domain Happy/Neutral set: JAFFE + FEI happy and neutral, subject-disjoint splits.

    Images are aligned face crops at ``crop_size`` (``crop=False`` keeps the whole grayscale images as they are).
    ``include_fer`` adds FER2013 happy/neutral (its own train/test, seeded validation), upscaled to ``crop_size``.
    """
    data_root = Path(data_root)
    given, report = report, report or BuildReport("paper_fer" if include_fer else "paper")
    keep = ("happy", "neutral")
    records = _split_by_subject(_keep_expressions(scan_jaffe(data_root / SOURCE_DIRS["jaffe"], report), keep, report),
                                seed, report)
    records += _split_by_subject(_keep_expressions(scan_fei(data_root / SOURCE_DIRS["fei"], report), keep, report),
                                 seed, report)
    if crop:
        face_process = FaceCropper(crop_size, report)
    else:
        face_process = lambda record, image: (image.convert("L"), {"upscaled": False})  # noqa: E731
    processes = {"jaffe": face_process, "fei": face_process}
    if include_fer:
        fer = scan_fer2013(data_root / SOURCE_DIRS["fer2013"], report, seed)
        records += _keep_expressions(fer, keep, report)
        processes["fer2013"] = _resizer(crop_size)
    description = "Happy/Neutral two-domain set (JAFFE + FEI" + (" + FER2013" if include_fer else "") + ")."
    dsd = _recipe_dataset_dict(records, report, processes, description)
    _warn_if_unreported(report, given)
    return dsd


def build_paper_fer(data_root: str | Path, seed: int = 0, crop_size: int = 128, crop: bool = True,
                    report: BuildReport | None = None) -> DatasetDict:
    """``paper`` plus FER2013 happy/neutral, upscaled to ``crop_size`` (``upscaled=True``, ``source='fer2013'``)."""
    return build_paper(data_root, seed, crop_size, crop, report, include_fer=True)


def build_expressions(data_root: str | Path, seed: int = 0, crop_size: int = 64, crop: bool = True,
                      report: BuildReport | None = None) -> DatasetDict:
    """The 7-class SA-GAN/classifier set: JAFFE (face crops) + FER2013 + CK+ (resized), grayscale at ``crop_size``.

    CK+ ``contempt`` is not one of the study's seven classes and is left out (counted in the report's notes).
    """
    data_root = Path(data_root)
    given, report = report, report or BuildReport("expressions")
    records = _split_by_subject(scan_jaffe(data_root / SOURCE_DIRS["jaffe"], report), seed, report)
    records += scan_fer2013(data_root / SOURCE_DIRS["fer2013"], report, seed)
    records += _keep_expressions(scan_ckplus(data_root / SOURCE_DIRS["ckplus"], report, seed), EXPRESSIONS, report)
    jaffe_process = FaceCropper(crop_size, report) if crop else _resizer(crop_size)
    processes = {"jaffe": jaffe_process, "fer2013": _resizer(crop_size), "ckplus": _resizer(crop_size)}
    dsd = _recipe_dataset_dict(records, report, processes, "7-class expression set (JAFFE + FER2013 + CK+).")
    _warn_if_unreported(report, given)
    return dsd


# --------------------------------------------------------------------------------------------------------------------
# Checks and summaries


@dataclass
class DisjointnessResult:
    """Whether any subject appears in more than one split. Subjects are keyed by (source, subject)."""

    ok: bool
    subjects_per_split: dict[str, int]
    overlaps: dict[str, list[str]]  # "train/test" -> ["jaffe:KA", ...]
    records_without_subject: int

    def __str__(self) -> str:
        per_split = ", ".join(f"{split} {n}" for split, n in _in_split_order(self.subjects_per_split))
        unknown = ""
        if self.records_without_subject:
            unknown = f"; {self.records_without_subject} records without a subject id"
        if not any(self.subjects_per_split.values()):
            return f"subject-disjoint: not applicable (no subject ids){unknown}"
        if self.ok:
            return f"subject-disjoint: yes (subjects per split: {per_split}){unknown}"
        shared = "; ".join(f"{pair}: {', '.join(subjects[:5])}" for pair, subjects in self.overlaps.items())
        return f"subject-disjoint: NO, shared subjects: {shared}"


def subject_disjoint_check(dsd: DatasetDict) -> DisjointnessResult:
    """Check that no (source, subject) appears in two splits. Records with an empty subject are counted, not checked."""
    subjects, without = {}, 0
    for split, dataset in dsd.items():
        if "subject" not in dataset.column_names:
            continue
        sources = dataset["source"] if "source" in dataset.column_names else [""] * len(dataset)
        keys = set()
        for source, subject in zip(sources, dataset["subject"]):  # column access does not decode images
            if subject:
                keys.add(f"{source}:{subject}")
            else:
                without += 1
        subjects[split] = keys
    overlaps = {}
    names = list(subjects)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = sorted(subjects[first] & subjects[second])
            if shared:
                overlaps[f"{first}/{second}"] = shared
    return DisjointnessResult(not overlaps, {s: len(k) for s, k in subjects.items()}, overlaps, without)


def split_class_counts(dsd: DatasetDict) -> dict[str, dict[str, int]]:
    """``{split: {class name: count}}`` for expression sets, without decoding images."""
    counts = {}
    for split, dataset in dsd.items():
        label = dataset.features["expression"]
        tally = Counter(dataset["expression"])
        counts[split] = {name: tally.get(index, 0) for index, name in enumerate(label.names)}
    return counts


def wider_counts(dsd: DatasetDict) -> dict[str, dict[str, int]]:
    counts = {}
    for split, dataset in dsd.items():
        faces = dataset["faces"]
        counts[split] = {
            "images": len(dataset),
            "faces": sum(len(f) for f in faces),
            "invalid faces": sum(face["invalid"] for image_faces in faces for face in image_faces),
            "events": len(set(dataset["event"])),
        }
    return counts


def format_counts(dsd: DatasetDict) -> str:
    """A plain-text table: counts per split and class (or images/faces for WIDER)."""
    is_wider = any("faces" in d.column_names for d in dsd.values())
    counts = wider_counts(dsd) if is_wider else split_class_counts(dsd)
    if not counts:
        return "(empty)"
    columns = list(next(iter(counts.values())))
    if not is_wider:  # hide classes that no split has (e.g. contempt outside CK+)
        columns = [c for c in columns if any(counts[s][c] for s in counts)]
    header = ["split"] + columns + ([] if is_wider else ["total"])
    rows = []
    for split, row in _in_split_order(counts):
        values = [row[c] for c in columns]
        rows.append([split] + values + ([] if is_wider else [sum(values)]))
    if not is_wider and len(rows) > 1:
        rows.append(["all"] + [sum(r[i] for r in rows) for i in range(1, len(header))])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(str(x).rjust(w) for x, w in zip(line, widths)) for line in [header, *rows])


def dataset_card(dsd: DatasetDict, name: str, sources: Iterable[str], report: BuildReport | None = None) -> str:
    """A dataset card (markdown with YAML front matter): sources, citations, terms, counts and known defects."""
    from .cards import dataset_card as card_with_front_matter  # DatasetCardData: licence other, tags

    sources = list(sources)
    lines = [
        f"# {name}",
        "",
        "Packaged with `python -m train.prepare_data` from the project `expr_models`.",
        "",
        "## Terms",
        "",
        TERMS,
        "",
        "This repository must stay **private**.",
        "",
        "## Sources",
        "",
    ]
    lines += [f"- **{s}**: {DESCRIPTIONS.get(s, s)}" for s in sources]
    lines += ["", "## Citations", ""]
    lines += [f"- {CITATIONS[s]}" for s in sources if s in CITATIONS]
    lines += ["", "## Counts", "", "```", format_counts(dsd), "```", ""]
    if any("subject" in d.column_names for d in dsd.values()):
        lines += [str(subject_disjoint_check(dsd)), ""]
    if report is not None:
        lines += ["## Build report", "", "```", report.summary(), "```", ""]
    return card_with_front_matter(name, "\n".join(lines))
