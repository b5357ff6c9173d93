"""The expression sources, each in its own layout and naming: scanners (file names only) and one builder each.

Expression sets have the columns ``image``, ``expression`` (a ``ClassLabel`` over ``EXPRESSIONS_WITH_CONTEMPT``),
``subject`` ("" where unknown) and ``source``. Images keep the source's own file bytes, except JAFFE, which is
converted to 8-bit grayscale PNG.
"""

from __future__ import annotations

import re
from pathlib import Path

from datasets import DatasetDict, DatasetInfo
from PIL import Image as PILImage

from ..io import IMAGE_EXTENSIONS
from ..labels import canonical_expression
from .cards import TERMS, source_info
from .records import (
    EXPRESSION_FEATURES,
    BuildReport,
    ExpressionRecord,
    records_to_dataset_dict,
    warn_if_unreported,
)
from .splits import FER_VALIDATION_FRACTION, split_by_subject, stratified_split

# Folder names of the sources inside ../shared/data.
SOURCE_DIRS = {"jaffe": "jaffe", "fei": "fei", "fer2013": "fer2013", "ckplus": "ckplus48", "wider": "wider_face"}

JAFFE_NAME = re.compile(r"^(?P<subject>[A-Z]{2})\.(?P<code>[A-Z]{2})(?P<take>\d+)\.(?P<id>\d+)\.tiff?$", re.IGNORECASE)
FEI_NAME = re.compile(r"^(?P<subject>\d+)(?P<pose>[ab])\.jpe?g$", re.IGNORECASE)
FEI_EXPRESSIONS = {"a": "neutral", "b": "happy"}
CKPLUS_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<sequence>\d+)_(?P<frame>\d+)\.png$", re.IGNORECASE)
SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                      "val": "validation", "test": "test", "testing": "test"}


# --------------------------------------------------------------------------------------------------------------------
# Scanning the sources (file names only, no image decoding)


def require_dir(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {root}")
    return root


def visible_files(folder: Path) -> list[Path]:
    # Hidden files (.DS_Store, ._foo) are file-system clutter, not records.
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def has_image_extension(name: str | Path) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def scan_jaffe(root: str | Path, report: BuildReport) -> list[ExpressionRecord]:
    """JAFFE: ``SS.XXn.id.tiff`` with subject ``SS`` and expression code ``XX`` (AN DI FE HA NE SA SU)."""
    root = require_dir(root, "JAFFE")
    records = []
    for path in visible_files(root):
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
    root = require_dir(root, "FEI")
    records = []
    for path in visible_files(root):
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
        for path in visible_files(class_dir):
            name = f"{name_prefix}{class_dir.name}/{path.name}"
            if expression is None:
                report.skip(name, "unknown expression label", class_dir.name, source=source)
            elif not has_image_extension(path):
                report.skip(name, "not an image file", source=source)
            else:
                records.append(ExpressionRecord(path, name, expression, "", source))
    for path in visible_files(folder):
        report.skip(f"{name_prefix}{path.name}", "file outside any class folder", source=source)
    return records


def scan_fer2013(root: str | Path, report: BuildReport, seed: int = 0) -> list[ExpressionRecord]:
    """FER2013: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``; validation is carved from train (seeded)."""
    root = require_dir(root, "FER2013")
    records = []
    for split in ("train", "test"):
        if not (root / split).is_dir():
            report.skip(f"{split}/", "split folder missing", source="fer2013")
            continue
        for record in scan_class_folders(root / split, "fer2013", report, name_prefix=f"{split}/"):
            record.split = split
            records.append(record)
    stratified_split([r for r in records if r.split == "train"], seed, {"validation": FER_VALIDATION_FRACTION})
    return records


def scan_ckplus(root: str | Path, report: BuildReport, seed: int = 0) -> list[ExpressionRecord]:
    """CK+ crops: ``<class>/S005_001_00000009.png``; the ``S005`` prefix is the subject, so split by subject."""
    root = require_dir(root, "CK+")
    records = scan_class_folders(root, "ckplus", report)
    for record in records:
        match = CKPLUS_NAME.match(record.path.name)
        record.subject = match["subject"].upper() if match else ""
    return split_by_subject(records, seed, report)


# --------------------------------------------------------------------------------------------------------------------
# One dataset per source


def _to_grayscale(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
    # JAFFE mixes palette-mode (gray palette) and 'L' TIFFs; convert('L') maps the palette to its gray values.
    return image.convert("L"), {}


def build_jaffe(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """JAFFE as 8-bit grayscale PNGs, split by subject (train/validation/test)."""
    given, report = report, report or BuildReport("jaffe")
    records = split_by_subject(scan_jaffe(root, report), seed, report)
    dsd = records_to_dataset_dict(records, report, EXPRESSION_FEATURES, _to_grayscale, source_info("jaffe"))
    warn_if_unreported(report, given)
    return dsd


def build_fei(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """FEI neutral/happy pairs, split by subject."""
    given, report = report, report or BuildReport("fei")
    records = split_by_subject(scan_fei(root, report), seed, report)
    dsd = records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=source_info("fei"))
    warn_if_unreported(report, given)
    return dsd


def build_fer2013(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """FER2013 with its own train/test and a seeded 10% validation split carved from train (no subject ids)."""
    given, report = report, report or BuildReport("fer2013")
    records = scan_fer2013(root, report, seed)
    dsd = records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=source_info("fer2013"))
    warn_if_unreported(report, given)
    return dsd


def build_ckplus(root: str | Path, seed: int = 0, report: BuildReport | None = None) -> DatasetDict:
    """CK+ 48x48 crops, split by the subject id in the file names (S005_001_... -> S005)."""
    given, report = report, report or BuildReport("ckplus")
    records = scan_ckplus(root, report, seed)
    dsd = records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=source_info("ckplus"))
    warn_if_unreported(report, given)
    return dsd


def build_imagefolder(root: str | Path, seed: int = 0, report: BuildReport | None = None,
                      source: str = "imagefolder") -> DatasetDict:
    """Any ``[<split>/]<class>/<image>`` folder with expression class names.

    Split folders (train, val/valid/validation, test) are kept as they are. Without them the images get a seeded,
    class-stratified 80/10/10 split. Subjects are unknown ("").
    """
    given, report = report, report or BuildReport(source)
    root = require_dir(root, "Image")
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
        stratified_split(records, seed, {"validation": 0.1, "test": 0.1})
    info = DatasetInfo(description=f"Image folder {root.name}. {TERMS}", license="other")
    dsd = records_to_dataset_dict(records, report, EXPRESSION_FEATURES, info=info)
    warn_if_unreported(report, given)
    return dsd
