"""Seeded train/validation/test splits: whole subjects per split, or per-class fractions where subjects are unknown."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Iterable

from .records import BuildReport, ExpressionRecord

# Fractions of subjects (or of FER2013's train images, for validation) per split.
SUBJECT_SPLIT_FRACTIONS = {"validation": 0.15, "test": 0.15}
FER_VALIDATION_FRACTION = 0.1


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


def split_by_subject(records: list[ExpressionRecord], seed: int, report: BuildReport) -> list[ExpressionRecord]:
    """Set each record's split from :func:`split_subjects`; records without a subject id are left out (reported)."""
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


def stratified_split(records: list[ExpressionRecord], seed: int, held_out: dict[str, float]) -> None:
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
