"""What is written about each source: descriptions, citations, terms, and the dataset card built from them."""

from __future__ import annotations

from typing import Iterable

from datasets import DatasetDict, DatasetInfo

from .checks import format_counts, subject_disjoint_check
from .records import BuildReport

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


def source_info(source: str) -> DatasetInfo:
    """The ``DatasetInfo`` of one source's dataset: its description, the terms and its citation."""
    return DatasetInfo(description=f"{DESCRIPTIONS[source]} {TERMS}", citation=CITATIONS[source], license="other")


def dataset_card(dsd: DatasetDict, name: str, sources: Iterable[str], report: BuildReport | None = None) -> str:
    """A dataset card (markdown with YAML front matter): sources, citations, terms, counts and known defects."""
    from ..hub.cards import dataset_card as card_with_front_matter  # DatasetCardData: licence other, tags

    sources = list(sources)
    lines = [
        f"# {name}",
        "",
        "Packaged with `python -m train.tools.prepare_data` from the project `expr_models`.",
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
