"""The data every training step reads: splits of prepared datasets, rows selected by expression, and face crops whose
random augmentation is a function of ``(seed, epoch, index)`` alone, so that a resumed run sees what an uninterrupted
one would."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from train.args import ConfigError


def load_prepared(folder: Path, split: str, required: bool = True):
    """One split of a prepared ``DatasetDict`` (or the dataset itself when it has no splits)."""
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(folder))
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"--data {folder}: could not load the dataset ({type(error).__name__}: {error})") from error
    if isinstance(loaded, HFDataset):
        return loaded if split == "train" or required else None
    assert isinstance(loaded, DatasetDict)
    if split not in loaded:
        if required:
            raise ConfigError(f"--data {folder} has no split {split!r} (it has: {', '.join(loaded) or 'none'})")
        return None
    return loaded[split]


def require_columns(dataset, folder: Path, columns: Iterable[str]) -> None:
    missing = [name for name in columns if name not in dataset.column_names]
    if missing:
        raise ConfigError(f"--data {folder}: the dataset lacks the column(s) {', '.join(missing)} "
                          f"(it has {', '.join(dataset.column_names)}); is it the right prepared dataset?")


def item_seed(*values: int) -> int:
    """A 63-bit seed from a few integers (seed, epoch, index, ...), well mixed."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)[0] >> 1)


class AugmentedDataset(Dataset):
    """A map-style dataset whose random augmentation is a function of ``(seed, epoch, index)`` alone.

    Subclasses draw their random numbers from ``self.generator(index)``, never from the global RNGs. So the same item
    gets the same augmentation in an uninterrupted run and in a resumed one, with any number of workers, however far
    the loader has read ahead. The loop calls ``set_epoch`` before every epoch.
    """

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self, index: int, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(item_seed(self.seed, self.epoch, index, salt))


@dataclass
class ExpressionRows:
    """The rows of one prepared expression dataset that a model trains on, with labels in the model's class order."""

    dataset: Any  # a datasets.Dataset
    rows: list[int]
    labels: list[int]
    counts: dict[str, int] = field(default_factory=dict)  # class name -> rows
    sources: dict[str, int] = field(default_factory=dict)  # source dataset -> rows


def expression_rows(folder: Path, split: str, class_names: Iterable[str], required: bool = True,
                    aliases: dict[str, str] | None = None) -> ExpressionRows | None:
    """Select the rows of ``class_names`` from a prepared dataset (``expression`` a ClassLabel, ``image``).

    ``aliases`` maps a dataset expression onto one of ``class_names`` (e.g. ``{"contempt": "disgust"}``); every other
    expression is left out.
    """
    dataset = load_prepared(folder, split, required)
    if dataset is None:
        return None
    require_columns(dataset, folder, ("image", "expression"))
    feature = dataset.features["expression"]
    names = list(getattr(feature, "names", None) or [])
    class_names = list(class_names)
    aliases = aliases or {}
    values = list(dataset["expression"])
    rows, labels = [], []
    counts: dict[str, int] = {name: 0 for name in class_names}
    for row, value in enumerate(values):
        name = names[value] if names and isinstance(value, (int, np.integer)) else str(value)
        name = aliases.get(name, name)
        if name in counts:
            rows.append(row)
            labels.append(class_names.index(name))
            counts[name] += 1
    if not rows and required:
        present = sorted({names[v] if names else str(v) for v in values}) if values else []
        raise ConfigError(f"--data {folder} ({split} split) has no {'/'.join(class_names)} images "
                          f"(it has {', '.join(present) or 'no rows at all'})")
    sources: dict[str, int] = {}
    if "source" in dataset.column_names:
        all_sources = list(dataset["source"])
        for row in rows:
            sources[all_sources[row]] = sources.get(all_sources[row], 0) + 1
    return ExpressionRows(dataset, rows, labels, counts, sources)


def describe_rows(folder: Path, split: str, selected: ExpressionRows) -> str:
    classes = ", ".join(f"{count} {name}" for name, count in selected.counts.items())
    sources = ", ".join(f"{name} {count}" for name, count in sorted(selected.sources.items()))
    return f"`{folder}` ({split} split): {classes}" + (f"; sources: {sources}" if sources else "")


class FaceCrops(AugmentedDataset):
    """Face crops as model tensors (``C x R x R`` in [-1, 1], grayscale by default) with their class labels.

    Each item is ``{"pixel_values", "labels"}``. ``flip`` mirrors half of them; ``augment(tensor, generator)`` may
    add more (the classifier's affine and photometric jitter).
    """

    def __init__(self, parts: list[ExpressionRows], resolution: int, channels: int = 1, seed: int = 0,
                 flip: bool = True, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None):
        self.parts = parts
        self.index = [(part, position) for part, rows in enumerate(parts) for position in range(len(rows.rows))]
        self.resolution, self.channels, self.seed = resolution, channels, seed
        self.flip, self.augment = flip, augment

    def __len__(self) -> int:
        return len(self.index)

    def label(self, index: int) -> int:
        part, position = self.index[index]
        return self.parts[part].labels[position]

    def load(self, index: int) -> torch.Tensor:
        """The image at ``index`` without augmentation."""
        from expr_models.faces.processing import to_model_tensor

        part, position = self.index[index]
        rows = self.parts[part]
        image = rows.dataset[rows.rows[position]]["image"]
        return to_model_tensor(image, self.resolution, self.channels)[0]

    def __getitem__(self, index: int) -> dict:
        image = self.load(index)
        generator = self.generator(index)
        if self.flip and torch.rand((), generator=generator) < 0.5:
            image = image.flip(-1)
        if self.augment is not None:
            image = self.augment(image, generator)
        return {"pixel_values": image, "labels": self.label(index)}
