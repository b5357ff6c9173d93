"""Recipes: training sets that mix sources at one resolution, as grayscale face crops.

``paper`` is the study's two-domain Happy/Neutral set (JAFFE + FEI, optionally + FER2013); ``expressions`` the 7-class
SA-GAN/classifier set (JAFFE + FER2013 + CK+). The rows have the expression columns plus ``upscaled``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from datasets import DatasetDict, DatasetInfo, Features, Value
from PIL import Image as PILImage

from ..labels import EXPRESSIONS
from .cards import CITATIONS, TERMS
from .crops import FaceCropper, resized_faces
from .records import (
    EXPRESSION_FEATURES,
    BuildReport,
    ExpressionRecord,
    ImageProcess,
    records_to_dataset_dict,
    warn_if_unreported,
)
from .sources import SOURCE_DIRS, scan_ckplus, scan_fei, scan_fer2013, scan_jaffe
from .splits import split_by_subject

# The recipes mix sources at one resolution; ``upscaled`` marks images enlarged to reach it (FER2013/CK+ 48x48).
RECIPE_FEATURES = Features({**EXPRESSION_FEATURES, "upscaled": Value("bool")})


def _keep_expressions(records: list[ExpressionRecord], keep: Iterable[str],
                      report: BuildReport) -> list[ExpressionRecord]:
    keep = set(keep)
    kept = [r for r in records if r.expression in keep]
    for record in records:
        if record.expression not in keep:
            report.note(f"{record.source} images of other expressions, not in this recipe")
    return kept


def _whole_image_grayscale(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
    return image.convert("L"), {"upscaled": False}


def _recipe_dataset_dict(records: list[ExpressionRecord], report: BuildReport,
                         process_by_source: dict[str, ImageProcess], description: str) -> DatasetDict:
    def process(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
        return process_by_source[record.source](record, image)

    sources = sorted({r.source for r in records})
    info = DatasetInfo(description=f"{description} {TERMS}", license="other",
                       citation="\n".join(CITATIONS[s] for s in sources if s in CITATIONS))
    return records_to_dataset_dict(records, report, RECIPE_FEATURES, process, info)


def build_paper(data_root: str | Path, seed: int = 0, crop_size: int = 128, crop: bool = True,
                report: BuildReport | None = None, include_fer: bool = False) -> DatasetDict:
    """The study's two-domain Happy/Neutral set: JAFFE + FEI happy and neutral, subject-disjoint splits.

    Images are aligned face crops at ``crop_size`` (``crop=False`` keeps the whole grayscale images as they are).
    ``include_fer`` adds FER2013 happy/neutral (its own train/test, seeded validation), upscaled to ``crop_size``.
    """
    data_root = Path(data_root)
    given, report = report, report or BuildReport("paper_fer" if include_fer else "paper")
    keep = ("happy", "neutral")
    records = split_by_subject(_keep_expressions(scan_jaffe(data_root / SOURCE_DIRS["jaffe"], report), keep, report),
                               seed, report)
    records += split_by_subject(_keep_expressions(scan_fei(data_root / SOURCE_DIRS["fei"], report), keep, report),
                                seed, report)
    face_process = FaceCropper(crop_size, report) if crop else _whole_image_grayscale
    processes = {"jaffe": face_process, "fei": face_process}
    if include_fer:
        fer = scan_fer2013(data_root / SOURCE_DIRS["fer2013"], report, seed)
        records += _keep_expressions(fer, keep, report)
        processes["fer2013"] = resized_faces(crop_size)
    description = "Happy/Neutral two-domain set (JAFFE + FEI" + (" + FER2013" if include_fer else "") + ")."
    dsd = _recipe_dataset_dict(records, report, processes, description)
    warn_if_unreported(report, given)
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
    records = split_by_subject(scan_jaffe(data_root / SOURCE_DIRS["jaffe"], report), seed, report)
    records += scan_fer2013(data_root / SOURCE_DIRS["fer2013"], report, seed)
    records += _keep_expressions(scan_ckplus(data_root / SOURCE_DIRS["ckplus"], report, seed), EXPRESSIONS, report)
    jaffe_process = FaceCropper(crop_size, report) if crop else resized_faces(crop_size)
    processes = {"jaffe": jaffe_process, "fer2013": resized_faces(crop_size), "ckplus": resized_faces(crop_size)}
    dsd = _recipe_dataset_dict(records, report, processes, "7-class expression set (JAFFE + FER2013 + CK+).")
    warn_if_unreported(report, given)
    return dsd
