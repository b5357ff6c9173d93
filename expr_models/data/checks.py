"""Checks and summaries of a built ``DatasetDict``; none of them decodes an image."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from datasets import DatasetDict

from .records import in_split_order


@dataclass
class DisjointnessResult:
    """Whether any subject appears in more than one split. Subjects are keyed by (source, subject)."""

    ok: bool
    subjects_per_split: dict[str, int]
    overlaps: dict[str, list[str]]  # "train/test" -> ["jaffe:KA", ...]
    records_without_subject: int

    def __str__(self) -> str:
        per_split = ", ".join(f"{split} {n}" for split, n in in_split_order(self.subjects_per_split))
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
    """``{split: {class name: count}}`` for expression sets."""
    counts = {}
    for split, dataset in dsd.items():
        label = dataset.features["expression"]
        tally = Counter(dataset["expression"])
        counts[split] = {name: tally.get(index, 0) for index, name in enumerate(label.names)}
    return counts


def wider_counts(dsd: DatasetDict) -> dict[str, dict[str, int]]:
    """``{split: {"images", "faces", "invalid faces", "events": count}}`` for WIDER FACE."""
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
    for split, row in in_split_order(counts):
        values = [row[c] for c in columns]
        rows.append([split] + values + ([] if is_wider else [sum(values)]))
    if not is_wider and len(rows) > 1:
        rows.append(["all"] + [sum(r[i] for r in rows) for i in range(1, len(header))])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(str(x).rjust(w) for x, w in zip(line, widths)) for line in [header, *rows])
