"""Package the project's face data (JAFFE, FEI, FER2013, CK+, WIDER FACE) as Hugging Face ``datasets``.

Each ``build_*`` function reads one source in its own layout and naming and returns a ``DatasetDict``:

    report = BuildReport("jaffe")
    dsd = build_jaffe("../shared/data/jaffe", seed=0, report=report)
    print(report.summary())
    print(subject_disjoint_check(dsd))

Real data has defects (see ``../shared/data/README.md``). A builder never crashes on one and never drops a good record
silently: whatever it leaves out goes into the :class:`BuildReport` with the reason, and whatever it changes on a kept
record (a zero-size box dropped, a face crop that fell back to the centre) is counted there too.

The modules, each importing only those above it:

- ``records``: ``ExpressionRecord``, ``BuildReport``, and records -> ``DatasetDict`` (read and check each image once)
- ``splits``: seeded subject-disjoint and class-stratified splits
- ``checks``: subject-disjointness and counts, without decoding images
- ``cards``: descriptions, citations, terms and the dataset card
- ``sources``: scanners and builders of JAFFE, FEI, FER2013, CK+ and any image folder
- ``wider``: the WIDER FACE gt parser and builder
- ``crops``: ``crop_training_face``, the one crop -> resize path of the training crops
- ``recipes``: the training sets (``paper``, ``paper_fer``, ``expressions``)
"""

from .cards import CITATIONS, DESCRIPTIONS, TERMS, dataset_card
from .checks import DisjointnessResult, format_counts, split_class_counts, subject_disjoint_check, wider_counts
from .crops import crop_training_face
from .records import EXPRESSION_FEATURES, SPLITS, BadRecord, BuildReport, ExpressionRecord
from .recipes import RECIPE_FEATURES, build_expressions, build_paper, build_paper_fer
from .sources import (
    SOURCE_DIRS,
    build_ckplus,
    build_fei,
    build_fer2013,
    build_imagefolder,
    build_jaffe,
    scan_ckplus,
    scan_class_folders,
    scan_fei,
    scan_fer2013,
    scan_jaffe,
)
from .splits import split_subjects
from .wider import WIDER_FEATURES, WiderEntry, build_wider, parse_wider_gt

__all__ = [
    "CITATIONS", "DESCRIPTIONS", "EXPRESSION_FEATURES", "RECIPE_FEATURES", "SOURCE_DIRS", "SPLITS", "TERMS",
    "WIDER_FEATURES", "BadRecord", "BuildReport", "DisjointnessResult", "ExpressionRecord", "WiderEntry",
    "build_ckplus", "build_expressions", "build_fei", "build_fer2013", "build_imagefolder", "build_jaffe",
    "build_paper", "build_paper_fer", "build_wider", "crop_training_face", "dataset_card", "format_counts",
    "parse_wider_gt", "scan_ckplus", "scan_class_folders", "scan_fei", "scan_fer2013", "scan_jaffe",
    "split_class_counts", "split_subjects", "subject_disjoint_check", "wider_counts",
]
