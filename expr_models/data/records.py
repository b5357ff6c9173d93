"""Records, the build report, and turning records into a ``DatasetDict``.

A source scanner yields :class:`ExpressionRecord` s (file names only); :func:`records_to_dataset_dict` reads and
checks each image once, lets an optional :data:`ImageProcess` change it, and groups the rows by split. Whatever is
left out goes into the :class:`BuildReport` with its reason.
"""

from __future__ import annotations

import copy
import io
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Image, Value
from PIL import Image as PILImage

from ..labels import EXPRESSIONS_WITH_CONTEMPT

# One logger for the whole package, named as before the split: "expr_models.data".
logger = logging.getLogger(__package__)

SPLITS = ("train", "validation", "test")

EXPRESSION_FEATURES = Features(
    {
        "image": Image(),
        "expression": ClassLabel(names=list(EXPRESSIONS_WITH_CONTEMPT)),
        "subject": Value("string"),
        "source": Value("string"),
    }
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
        kept = ", ".join(f"{split} {n}" for split, n in in_split_order(self.kept))
        lines = [f"{self.source}: kept {sum(self.kept.values())} records ({kept or 'none'}); "
                 f"left out {len(self.bad)}"]
        for reason, count in self.bad_by_reason().most_common():
            paths = [r.path + (f" [{r.detail}]" if r.detail else "") for r in self.bad if r.reason == reason]
            lines.append(f"  left out {count} x {reason}: e.g. {'; '.join(paths[:examples])}")
        for what, count in self.notes.most_common():
            shown = self.note_examples.get(what) or []
            lines.append(f"  note: {count} x {what}" + (f" (e.g. {'; '.join(shown[:examples])})" if shown else ""))
        return "\n".join(lines)


def in_split_order(counts: dict) -> list[tuple[str, int]]:
    """``counts.items()`` with train, validation, test first, then any other split by name."""
    order = {name: i for i, name in enumerate(SPLITS)}
    return sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def warn_if_unreported(report: BuildReport, given: BuildReport | None) -> None:
    # A caller that passes no report still hears about left-out records.
    if given is None and (report.bad or report.notes):
        logger.warning("%s", report.summary())


# --------------------------------------------------------------------------------------------------------------------
# Records and datasets


@dataclass
class ExpressionRecord:
    """One labelled image file, before its bytes are read."""

    path: Path
    name: str  # path relative to the source's root, for reports and the stored image path
    expression: str
    subject: str
    source: str
    split: str = ""


# process(record, image) -> (image to store, extra columns)
ImageProcess = Callable[[ExpressionRecord, PILImage.Image], tuple[PILImage.Image, dict]]


def read_image(path: Path, name: str, report: BuildReport, source: str) -> tuple[bytes, PILImage.Image] | None:
    """The file's bytes and the decoded image, or ``None`` (reported) if it cannot be read.

    Decoding every image once here is cheap and catches truncated files before training does.
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


def with_features(info: DatasetInfo | None, features: Features) -> DatasetInfo | None:
    """A copy of ``info`` carrying ``features``: ``Dataset.from_dict`` insists that the two agree."""
    if info is None:
        return None
    info = copy.deepcopy(info)  # each split gets its own copy
    info.features = features
    return info


def records_to_dataset_dict(records: list[ExpressionRecord], report: BuildReport, features: Features,
                            process: ImageProcess | None = None, info: DatasetInfo | None = None) -> DatasetDict:
    """Read, check and (optionally) transform each record's image; one ``Dataset`` per split.

    Unchanged images keep the source's own file bytes; images that ``process`` returns are stored as PNG.
    """
    columns = defaultdict(lambda: defaultdict(list))
    for record in sorted(records, key=lambda r: (r.source, r.name)):
        loaded = read_image(record.path, record.name, report, record.source)
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
        dsd[split] = Dataset.from_dict(dict(columns[split]), features=features, info=with_features(info, features),
                                       split=split)
    return dsd
