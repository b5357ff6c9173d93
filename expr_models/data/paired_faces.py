"""Subject-paired photos: the same person in two expressions, from FEI, JAFFE and the London Set, with the project's
subject split.

    pairs = photo_pairs("../shared/data", split="train")     # every (source, target) photo pair of training subjects
    pairs = photo_pairs("../shared/data", "test", sources=("london",))

Splits: FEI and JAFFE subjects are assigned by ``expr_models.data.split_subjects`` over each source's subject ids with
the same seed, exactly as ``build_fei`` / ``build_jaffe`` / ``build_paper`` do, so "test" here is the rest of the
project's test split. The London Set is not in ``expr_models.data``; its people are split by the same function over
its ids (``NNN`` of ``neutral/NNN_03.jpg``), seed 0: 10 test, 10 validation, 47 train of 67.

Pairs: FEI ``Na.jpg`` <-> ``Nb.jpg`` (neutral <-> happy, both ways); the London Set ``neutral/NNN_03.jpg`` <->
``smiling/NNN_08.jpg`` (both ways; the neutral has its ``.tem`` landmarks); JAFFE: each subject's first neutral take
-> each take of the six other expressions, and each happy take -> that first neutral.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("fei", "jaffe", "london")
GRAYSCALE_SOURCES = ("fei", "jaffe")
LONDON_NEUTRAL = re.compile(r"^(?P<subject>\d+)_03\.jpg$")


@dataclass(frozen=True)
class PhotoPair:
    """One person photographed in ``source_expression`` (``source_path``) and in ``target_expression``."""

    dataset: str
    subject: str
    split: str
    source_expression: str
    target_expression: str
    source_path: Path
    target_path: Path
    source_tem: Path | None = None  # the London Set's 189 landmarks of the source photo, when it has them
    target_tem: Path | None = None

    @property
    def pair(self) -> str:
        return f"{self.source_expression}->{self.target_expression}"


def _split_of(subjects: list[str], seed: int) -> dict[str, str]:
    from . import split_subjects  # expr_models.data (moving to expr_models/data/); the project's one split

    return split_subjects(subjects, seed)


def fei_pairs(root: str | Path, seed: int = 0) -> list[PhotoPair]:
    from .sources import FEI_NAME

    root = Path(root)
    photos: dict[str, dict[str, Path]] = {}
    for path in sorted(root.iterdir()):
        match = FEI_NAME.match(path.name)
        if match:
            photos.setdefault(match["subject"], {})[match["pose"].lower()] = path
    split = _split_of(list(photos), seed)
    pairs = []
    for subject in sorted(photos, key=int):
        if {"a", "b"} <= photos[subject].keys():
            neutral, happy = photos[subject]["a"], photos[subject]["b"]
            pairs.append(PhotoPair("fei", subject, split[subject], "neutral", "happy", neutral, happy))
            pairs.append(PhotoPair("fei", subject, split[subject], "happy", "neutral", happy, neutral))
    return pairs


def jaffe_pairs(root: str | Path, seed: int = 0) -> list[PhotoPair]:
    from ..labels import canonical_expression
    from .sources import JAFFE_NAME

    root = Path(root)
    takes: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(root.iterdir()):
        match = JAFFE_NAME.match(path.name)
        if match:
            try:
                expression = canonical_expression(match["code"])
            except ValueError:
                continue
            takes.setdefault(match["subject"].upper(), {}).setdefault(expression, []).append(path)
    split = _split_of(list(takes), seed)
    pairs = []
    for subject in sorted(takes):
        if not takes[subject].get("neutral"):
            continue
        neutral = takes[subject]["neutral"][0]
        for expression in sorted(takes[subject]):
            if expression == "neutral":
                continue
            for take in takes[subject][expression]:
                pairs.append(PhotoPair("jaffe", subject, split[subject], "neutral", expression, neutral, take))
                if expression == "happy":
                    pairs.append(PhotoPair("jaffe", subject, split[subject], "happy", "neutral", take, neutral))
    return pairs


def london_pairs(root: str | Path, seed: int = 0) -> list[PhotoPair]:
    root = Path(root)
    subjects = {}
    for path in sorted((root / "neutral").iterdir()):
        match = LONDON_NEUTRAL.match(path.name)
        smiling = root / "smiling" / f"{match['subject']}_08.jpg" if match else None
        if match and smiling.is_file():
            tem = path.with_suffix(".tem")
            subjects[match["subject"]] = (path, smiling, tem if tem.is_file() else None)
    split = _split_of(list(subjects), seed)
    pairs = []
    for subject, (neutral, smiling, tem) in sorted(subjects.items()):
        pairs.append(PhotoPair("london", subject, split[subject], "neutral", "happy", neutral, smiling, source_tem=tem))
        pairs.append(PhotoPair("london", subject, split[subject], "happy", "neutral", smiling, neutral, target_tem=tem))
    return pairs


def photo_pairs(data_root: str | Path, split: str | None = None, sources: tuple[str, ...] = SOURCES,
                seed: int = 0) -> list[PhotoPair]:
    """Every pair of the ``sources`` under ``data_root`` (``fei/``, ``jaffe/``, ``london/``), of one ``split``
    (``train``, ``validation``, ``test``; ``None``: all). A source whose folder is missing gives no pairs."""
    data_root = Path(data_root)
    builders = {"fei": fei_pairs, "jaffe": jaffe_pairs, "london": london_pairs}
    pairs = []
    for source in sources:
        if (data_root / source).is_dir():
            pairs += builders[source](data_root / source, seed)
    return [pair for pair in pairs if split is None or pair.split == split]
