"""The one training loop that every model of expr_models trains with: CycleGAN, SA-GAN, the face segmenter and the
expression classifier.

A model plugs in with a small :class:`TrainingStep`. The step declares what it trains (modules, optimisers, the
datasets) and implements ``step(batch, step_index) -> dict of losses``, in which it decides which optimiser updates
when (``self.update("discriminator", loss)``). Everything else is here, once:

- ``accelerate``: mixed precision, gradient accumulation, 1..N processes, ``prepare`` of every module, optimiser,
  data loader and scheduler;
- learning-rate schedules stepped once per optimiser update, sized from ``len(dataloader)`` after ``prepare`` (so
  they are the same whatever the number of processes);
- checkpoints that resume *exactly* (weights, optimisers, schedulers, RNG streams, the step counter, EMA and
  per-process state such as CycleGAN's image pools), written atomically and rotated;
- TensorBoard losses, a progress bar and sample grids (input | output | reconstruction), on the main process only;
- at the end, the model without its discriminators saved with ``save_pretrained`` and a model card, and optionally
  pushed to the Hub.

Run any model from the repo root, on one process or many::

    python train/cyclegan.py --data prepared/paper --output-dir runs/cyclegan
    accelerate launch --config_file train/configs/multi_gpu.yaml train/cyclegan.py --data prepared/paper

Determinism, so that a resumed run ends where an uninterrupted one would: the data order is a function of
``(seed, epoch)`` (accelerate's seedable sampler), data augmentation is a function of ``(seed, epoch, index)`` (see
:class:`AugmentedDataset`), and only the steps draw from the global RNGs, whose states every checkpoint holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python train/<model>.py` and `accelerate launch train/<model>.py`
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d+)$")
DEBUG_WEIGHTS_ENV = "EXPR_TRAIN_DUMP_WEIGHTS"  # same as --debug-dump-weights


class ConfigError(Exception):
    """A bad configuration, found before training starts; the message is meant for the user."""


# ----------------------------------------------------------------------------------------------------------------
# Arguments


def build_parser(step_class: type["TrainingStep"]) -> argparse.ArgumentParser:
    """The arguments every script shares, then the step's own (``step_class.add_arguments``)."""
    parser = argparse.ArgumentParser(description=step_class.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    group = parser.add_argument_group("data and output")
    if step_class.multiple_data_dirs:
        group.add_argument("--data", type=Path, nargs="+", required=True,
                           help="one or more prepared datasets (folders written by datasets' save_to_disk)")
    else:
        group.add_argument("--data", type=Path, required=True,
                           help="a prepared dataset (a folder written by datasets' save_to_disk)")
    group.add_argument("--split", default="train", help="the split to train on (default: train)")
    group.add_argument("--eval-split", default="validation",
                       help="the split for evaluation and sample grids, if the dataset has it (default: validation)")
    group.add_argument("--output-dir", type=Path, default=REPO_ROOT / "runs" / step_class.name,
                       help=f"run folder: checkpoints/, logs/, samples/, final/ (default: runs/{step_class.name})")
    group.add_argument("--num-workers", type=int,
                       help="data loader worker processes per training process (default: 0 on CPU, up to 8 on GPU; "
                            "the augmentation does not depend on it)")
    group.add_argument("--min-free-disk-mb", type=float, default=512,
                       help="refuse to start with less free space than this in the output folder (default: 512)")

    group = parser.add_argument_group("schedule")
    group.add_argument("--epochs", type=int, default=step_class.default_epochs,
                       help=f"training length in epochs (default: {step_class.default_epochs})")
    group.add_argument("--max-steps", type=int,
                       help="training length in optimiser steps; overrides --epochs (the LR schedule spans it)")
    group.add_argument("--batch-size", type=int, default=step_class.default_batch_size,
                       help=f"per process (default: {step_class.default_batch_size})")
    group.add_argument("--gradient-accumulation-steps", type=int, default=1)
    group.add_argument("--warmup-steps", type=int, default=step_class.default_warmup_steps,
                       help="linear LR warm-up, in optimiser updates")
    group.add_argument("--seed", type=int, default=0)

    group = parser.add_argument_group("checkpoints and logging")
    group.add_argument("--checkpointing-steps", type=int, default=500,
                       help="save a resumable checkpoint every N steps (0: never; default: 500)")
    group.add_argument("--checkpoints-total-limit", type=int, default=3,
                       help="keep only the newest N checkpoints (default: 3)")
    group.add_argument("--resume", nargs="?", const="latest", metavar="latest|PATH",
                       help="resume from the newest checkpoint in <output-dir>/checkpoints (`--resume` or "
                            "`--resume latest`; starts fresh if there is none) or from a checkpoint folder")
    group.add_argument("--log-every", type=int, default=10, help="log mean losses every N steps (default: 10)")
    group.add_argument("--sample-every", type=int, default=500,
                       help="write a sample grid every N steps (0: never; default: 500)")
    group.add_argument("--num-samples", type=int, default=4, help="rows of the sample grid (default: 4)")
    group.add_argument("--eval-every-epochs", type=int, default=1, help="evaluate every N epochs (0: only at the end)")
    group.add_argument("--report-to", choices=("tensorboard", "none"), default="tensorboard")
    group.add_argument("--push-to-hub", metavar="REPO", help="push the final model to this Hub repo (private)")
    group.add_argument("--public", action="store_true",
                       help="with --push-to-hub: make a new repo public (the weights learned from research-only data)")
    group.add_argument("--stop-after-steps", type=int,
                       help="stop after N steps as if killed: no final model (for testing --resume)")
    group.add_argument("--debug-dump-weights", action="store_true",
                       help=f"each process writes a hash of its final weights to <output-dir>/debug/ "
                            f"(also set by {DEBUG_WEIGHTS_ENV}=1)")

    group = parser.add_argument_group("speed and precision")
    group.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"),
                       help="default: the accelerate config's (no when run with python)")
    group.add_argument("--ema", action="store_true", help="keep an exponential moving average of the generator "
                       "(or model) weights and save that as the final model")
    group.add_argument("--ema-decay", type=float, default=0.999)
    group.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster convs on GPU)")
    group.add_argument("--compile", action="store_true", help="torch.compile the models (inductor)")
    group.add_argument("--cpu", action="store_true",
                       help="train on CPU even if a GPU is there (with torchrun: CPU processes over gloo)")
    group.add_argument("--deterministic", action="store_true",
                       help="deterministic algorithms only (slower on GPU; CPU runs are deterministic anyway)")

    step_class.add_arguments(parser.add_argument_group(f"{step_class.name} model and losses"))
    return parser


def parse_args(step_class: type["TrainingStep"], argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser(step_class).parse_args(argv)
    args.debug_dump_weights = args.debug_dump_weights or os.environ.get(DEBUG_WEIGHTS_ENV, "") not in ("", "0")
    return args


def check_common_args(args: argparse.Namespace) -> None:
    """The checks that need no model and no data: numbers, the output folder, the resume path, the Hub."""
    for name in ("batch_size", "gradient_accumulation_steps", "epochs", "log_every", "num_samples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("max_steps", "stop_after_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("checkpointing_steps", "sample_every", "eval_every_epochs", "warmup_steps", "num_workers"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    if args.checkpoints_total_limit < 1:
        raise ConfigError(f"--checkpoints-total-limit must be at least 1, got {args.checkpoints_total_limit}")
    if not 0.0 < args.ema_decay < 1.0:
        raise ConfigError(f"--ema-decay must be in (0, 1), got {args.ema_decay}")
    data_dirs = args.data if isinstance(args.data, list) else [args.data]
    for folder in data_dirs:
        check_dataset_dir(folder)
    check_output_dir(args.output_dir, args.min_free_disk_mb)
    existing = list_checkpoints(Path(args.output_dir) / "checkpoints")
    if existing and not args.resume:
        raise ConfigError(f"--output-dir {args.output_dir} already holds checkpoints of an earlier run (newest: "
                          f"{existing[-1][1].name}); pass --resume to go on with it, or choose another --output-dir")
    if args.resume and args.resume != "latest":
        path = Path(args.resume)
        if not path.is_dir():
            raise ConfigError(f"--resume {args.resume}: no such checkpoint folder")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ConfigError(f"--resume {args.resume}: not a checkpoint written by this loop (no weights in it)")
    if args.push_to_hub:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise ConfigError(f"--push-to-hub {args.push_to_hub}: the Hub is switched off here (HF_HUB_OFFLINE=1); "
                              "train without --push-to-hub and push <output-dir>/final later")


def check_dataset_dir(folder: Path) -> None:
    if not folder.exists():
        raise ConfigError(f"--data {folder}: no such folder (prepare it with `python -m train.prepare_data`)")
    if not folder.is_dir():
        raise ConfigError(f"--data {folder}: not a folder")
    if not any(folder.iterdir()):
        raise ConfigError(f"--data {folder}: the folder is empty")
    markers = ("dataset_dict.json", "dataset_info.json", "state.json")
    if not any((folder / name).is_file() for name in markers):
        raise ConfigError(f"--data {folder}: not a dataset saved with save_to_disk (no {' or '.join(markers[:2])})")


def check_output_dir(folder: Path, min_free_mb: float) -> None:
    """Create the run folder, write and delete a small file in it, and check the free space."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        with open(probe, "wb") as handle:
            handle.write(os.urandom(4096))
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--output-dir {folder}: cannot write there ({error.strerror or error})") from error
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < min_free_mb:
        raise ConfigError(f"--output-dir {folder}: only {free_mb:.0f} MB free, less than --min-free-disk-mb "
                          f"{min_free_mb:.0f}; free some space or choose another folder")


def config_error_message(error: Exception) -> str:
    """The model config classes wrap their ValueErrors; show the inner message, not the wrapper's."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    inner = lines[-1] if lines else type(error).__name__
    return re.sub(r"^(ValueError|TypeError):\s*", "", inner)


def make_config(config_class: type, **kwargs):
    """Build a model config, turning its validation error into a :class:`ConfigError`."""
    try:
        return config_class(**kwargs)
    except Exception as error:  # noqa: BLE001 - strict dataclasses raise their own wrapper types
        raise ConfigError(f"invalid {config_class.__name__}: {config_error_message(error)}") from error


# ----------------------------------------------------------------------------------------------------------------
# Data


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
        from expr_models.image_utils import to_model_tensor

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


# ----------------------------------------------------------------------------------------------------------------
# Learning-rate schedules


def lr_lambda(kind: str, total_updates: int, updates_per_epoch: int, warmup: int = 0,
              decay_start_epoch: int | None = None) -> Callable[[int], float]:
    """The factor on the base LR after ``update`` optimiser updates.

    - ``constant``: 1.
    - ``linear`` (the study's): from 1 down to 0 over the whole run, every update.
    - ``reference`` (CycleGAN's): 1 for ``decay_start_epoch`` epochs (default half the run), then down to ~0 in equal
      per-epoch steps, as ``1 - max(0, epoch + 1 - start) / (epochs - start + 1)``.
    - ``cosine``: half a cosine from 1 to 0 over the run.

    ``warmup`` updates ramp the factor up linearly first (all kinds).
    """
    total_updates = max(1, total_updates)
    updates_per_epoch = max(1, updates_per_epoch)
    epochs = max(1, math.ceil(total_updates / updates_per_epoch))
    start = epochs // 2 if decay_start_epoch is None else decay_start_epoch
    if kind not in ("constant", "linear", "reference", "cosine"):
        raise ConfigError(f"unknown LR schedule {kind!r}; expected constant, linear, reference or cosine")

    def factor(update: int) -> float:
        scale = min(1.0, (update + 1) / (warmup + 1)) if warmup else 1.0
        progress = min(1.0, update / total_updates)
        if kind == "linear":
            return scale * max(0.0, 1.0 - progress)
        if kind == "cosine":
            return scale * 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "reference":
            epoch = update // updates_per_epoch
            return scale * max(0.0, 1.0 - max(0, epoch + 1 - start) / float(epochs - start + 1))
        return scale

    return factor


# ----------------------------------------------------------------------------------------------------------------
# State that checkpoints carry besides weights and optimisers


@dataclass
class TrainState:
    """The loop's own counters; registered for checkpointing."""

    step: int = 0
    elapsed_seconds: float = 0.0  # summed over the runs that made up this training (resumes included)

    def state_dict(self) -> dict:
        return {"step": self.step, "elapsed_seconds": self.elapsed_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.elapsed_seconds = float(state.get("elapsed_seconds", 0.0))


class RankLocal:
    """Wraps state that differs between processes (an image pool) so each process gets its own back on resume.

    accelerate writes registered objects from the main process only; ``state_dict`` therefore gathers every
    process's state (it runs on all of them during ``save_state``), and ``load_state_dict`` picks this process's.
    """

    def __init__(self, obj: Any, accelerator):
        self.obj, self.accelerator = obj, accelerator

    def state_dict(self) -> dict:
        from accelerate.utils import gather_object

        return {"per_process": gather_object([self.obj.state_dict()])}

    def load_state_dict(self, state: dict) -> None:
        per_process = state["per_process"]
        self.obj.load_state_dict(per_process[self.accelerator.process_index % len(per_process)])


class EMAState:
    """diffusers' EMAModel, moved back onto the training device after loading."""

    def __init__(self, ema, device):
        self.ema, self.device = ema, device

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state)
        self.ema.to(self.device)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: atomic saves, rotation, finding the newest


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (``checkpoint_<step>``) under ``root``, oldest first. Temporary folders are ignored."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


class CheckpointManager:
    """Writes ``<output>/checkpoints/checkpoint_<step>`` atomically and keeps the newest ``total_limit``.

    Every process writes into ``.tmp-checkpoint_<step>`` (accelerate's ``save_state``); when all are done, the main
    process renames it into place, which is atomic. A kill at any moment therefore leaves the newest complete
    checkpoint loadable, at worst with a stale ``.tmp-*`` folder that the next start removes. Old checkpoints are
    deleted only after the new one is in place.

    (accelerate's own ``automatic_checkpoint_naming`` writes in place and deletes the oldest checkpoint *before*
    writing the new one, so with ``total_limit=1`` a kill during a save would leave nothing to resume from.)
    """

    def __init__(self, accelerator, root: Path, total_limit: int):
        self.accelerator, self.root, self.total_limit = accelerator, Path(root), total_limit

    def clean_stale(self) -> None:
        if self.accelerator.is_main_process and self.root.is_dir():
            for path in self.root.glob(".tmp-checkpoint_*"):
                shutil.rmtree(path, ignore_errors=True)
            for path in self.root.glob(".old-checkpoint_*"):
                shutil.rmtree(path, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def latest(self) -> Path | None:
        found = list_checkpoints(self.root)
        return found[-1][1] if found else None

    def save(self, step: int, extra: dict) -> Path:
        accelerator = self.accelerator
        final = self.root / f"checkpoint_{step}"
        temporary = self.root / f".tmp-checkpoint_{step}"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(temporary, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temporary))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (temporary / "trainer_state.json").write_text(json.dumps(extra, indent=2, default=str))
            _fsync_tree(temporary)
            if final.exists():  # the same step saved before (e.g. a resumed run passed it again)
                old = self.root / f".old-checkpoint_{step}"
                os.replace(final, old)
                os.replace(temporary, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(temporary, final)
            _fsync_dir(self.root)
            for _, path in list_checkpoints(self.root)[:-self.total_limit]:
                shutil.rmtree(path, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final


def save_final(model, final_dir: Path) -> None:
    """``save_pretrained`` into a temporary folder, then rename it to ``final_dir``: a kill mid-save leaves the
    previous ``final/`` (or none), never a half-written one that a user would load."""
    temporary = final_dir.with_name(f".tmp-{final_dir.name}")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    _fsync_tree(temporary)
    if final_dir.exists():  # a resumed run that had finished before
        old = final_dir.with_name(f".old-{final_dir.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_dir, old)
        os.replace(temporary, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, final_dir)
    _fsync_dir(final_dir.parent)


def _fsync_tree(folder: Path) -> None:
    """Flush the checkpoint's files to disk before the rename makes it visible (survives power loss too)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ----------------------------------------------------------------------------------------------------------------
# The plug-in interface


@dataclass
class OptimizerSpec:
    """An optimiser a step declares: ``every`` steps per update (e.g. SA-GAN's G: ``n_critic``), its LR schedule,
    whether the EMA follows its updates, and optional gradient clipping."""

    optimizer: torch.optim.Optimizer
    every: int = 1
    schedule: str = "constant"
    decay_start_epoch: int | None = None
    ema: bool = False
    max_grad_norm: float | None = None
    scheduler: Any = None  # set by the loop


class TrainingStep:
    """What a model plugs into the loop. Subclasses set the class attributes and implement the methods below.

    Order of calls: ``build()`` (make ``self.model`` and the datasets), ``trainable_modules()`` and
    ``make_optimizers()`` (before ``prepare``); then the loop puts the prepared modules in ``self.nets`` (by the names
    ``trainable_modules`` gave) and calls ``step(batch, step_index)`` for every batch, in which ``self.update(name,
    loss)`` backpropagates ``loss`` and steps the optimiser ``name`` (and its scheduler and the EMA).
    """

    name = "model"
    default_epochs = 100
    default_batch_size = 16
    default_warmup_steps = 0
    multiple_data_dirs = False
    find_unused_parameters = False  # DDP: only for models whose forward may leave parameters unused
    cudnn_benchmark = True  # False where input sizes vary from batch to batch (detection)
    drop_last = False

    def __init__(self, args: argparse.Namespace, accelerator):
        self.args, self.accelerator = args, accelerator
        self.device = accelerator.device
        self.model = None  # the full ExprPreTrainedModel (with discriminators)
        self.train_dataset: Dataset | None = None
        self.eval_dataset: Dataset | None = None
        self.nets = SimpleNamespace()  # prepared modules, filled in by the loop
        self._trainer: "Trainer | None" = None

    # --- set-up ---------------------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser) -> None:
        """Add the model's own arguments."""

    @classmethod
    def check_arguments(cls, args: argparse.Namespace) -> None:
        """Raise :class:`ConfigError` for bad argument combinations (runs before anything is built)."""

    def build(self) -> None:
        """Make ``self.model``, ``self.train_dataset`` and (optionally) ``self.eval_dataset``."""
        raise NotImplementedError

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules to prepare, by name. Each is wrapped on its own (DDP), so call them, not their parent."""
        raise NotImplementedError

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        raise NotImplementedError

    def collate(self, items: list):
        return torch.utils.data.default_collate(items)

    def rank_local_state(self) -> dict[str, Any]:
        """Objects with ``state_dict``/``load_state_dict`` that differ per process (image pools)."""
        return {}

    def ema_module(self) -> nn.Module | None:
        """The (unwrapped) module whose weights ``--ema`` averages; ``None``: the whole model."""
        return None

    # --- training -------------------------------------------------------------------------------------------------
    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step optimiser ``name`` (accelerate skips the step while accumulating)."""
        self._trainer.update(name, loss)

    def unwrap(self, module: nn.Module) -> nn.Module:
        return self.accelerator.unwrap_model(module)

    def images(self, tensor: torch.Tensor) -> torch.Tensor:
        """An image batch in the memory format the models use."""
        return tensor.contiguous(memory_format=torch.channels_last) if self.args.channels_last else tensor

    # --- reporting ------------------------------------------------------------------------------------------------
    def sample_batch(self):
        """A fixed batch for the sample grids (on CPU), or ``None`` for no grids."""
        return None

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor | None:
        """``N x K x C x H x W`` in [-1, 1]: per sample, the columns of the grid (input | output | reconstruction)."""
        return None

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """Metrics on the evaluation split (every process takes part)."""
        return {}

    def final_model(self):
        """The model to save at the end (without discriminators), unwrapped."""
        return self.model

    def training_data_description(self) -> str:
        return ", ".join(str(path) for path in (self.args.data if isinstance(self.args.data, list) else [self.args.data]))


# ----------------------------------------------------------------------------------------------------------------
# The loop


class Trainer:
    def __init__(self, step_class: type[TrainingStep], args: argparse.Namespace):
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

        self.args = args
        self.step_class = step_class
        output = Path(args.output_dir)
        project = ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs"),
                                       automatic_checkpoint_naming=False, total_limit=args.checkpoints_total_limit)
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            cpu=args.cpu,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            log_with="tensorboard" if args.report_to == "tensorboard" else None,
            project_config=project,
            # The data order is a function of (data_seed, epoch): the same after a resume, the same on every process.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
            # Schedulers step once per real optimiser update (see `update`), whatever the number of processes.
            step_scheduler_with_optimizer=False,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=step_class.find_unused_parameters)],
            dynamo_backend="inductor" if args.compile else None,
        )
        self.checkpoints = CheckpointManager(self.accelerator, output / "checkpoints", args.checkpoints_total_limit)
        self.state = TrainState()
        self.ema = None

    def print(self, message: str) -> None:
        """Print on the local main process, above the progress bar."""
        if self.accelerator.is_local_main_process:
            from tqdm.auto import tqdm

            tqdm.write(message)

    # --- set-up ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from accelerate.utils import set_seed

        args, accelerator = self.args, self.accelerator
        set_seed(args.seed, device_specific=True)  # DDP copies rank 0's initial weights to the others
        if args.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if args.num_workers is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            per_process = cpus // accelerator.num_processes - 1
            args.num_workers = 0 if accelerator.device.type == "cpu" else max(0, min(8, per_process))
        if accelerator.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.step_class.cudnn_benchmark and not args.deterministic
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        step = self.step = self.step_class(args, accelerator)
        step._trainer = self
        step.build()
        if step.train_dataset is None or len(step.train_dataset) == 0:
            raise ConfigError(f"--data {args.data}: no training examples left after filtering")
        modules = step.trainable_modules()
        if args.channels_last:
            for module in modules.values():
                module.to(memory_format=torch.channels_last)
        self.specs = step.make_optimizers()

        train_loader = DataLoader(step.train_dataset, batch_size=args.batch_size, shuffle=True,
                                  drop_last=step.drop_last and len(step.train_dataset) >= args.batch_size,
                                  num_workers=args.num_workers, collate_fn=step.collate,
                                  pin_memory=accelerator.device.type == "cuda",
                                  # its own generator: creating an iterator then draws nothing from the global RNG
                                  generator=torch.Generator().manual_seed(args.seed))
        eval_loader = None
        if step.eval_dataset is not None and len(step.eval_dataset):
            eval_loader = DataLoader(step.eval_dataset, batch_size=args.batch_size, shuffle=False,
                                     num_workers=args.num_workers, collate_fn=step.collate,
                                     generator=torch.Generator().manual_seed(args.seed))

        names = list(modules)
        optimizers = [spec.optimizer for spec in self.specs.values()]
        loaders = [train_loader] + ([eval_loader] if eval_loader is not None else [])
        prepared = accelerator.prepare(*modules.values(), *optimizers, *loaders)
        if not isinstance(prepared, (tuple, list)):
            prepared = (prepared,)
        prepared = list(prepared)
        self.modules = dict(zip(names, prepared[:len(names)]))
        step.nets = SimpleNamespace(**self.modules)
        for spec, optimizer in zip(self.specs.values(), prepared[len(names):len(names) + len(optimizers)]):
            spec.optimizer = optimizer
        self.train_loader = prepared[len(names) + len(optimizers)]
        self.eval_loader = prepared[-1] if eval_loader is not None else None

        # Sizes after prepare: per process, so the schedule is right for any number of processes.
        batches_per_epoch = len(self.train_loader)
        if batches_per_epoch == 0:
            raise ConfigError(f"{len(step.train_dataset)} training examples are fewer than one batch of "
                              f"{args.batch_size} on each of {accelerator.num_processes} processes")
        self.steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
        self.max_steps = args.max_steps or args.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.max_steps / self.steps_per_epoch)

        from torch.optim.lr_scheduler import LambdaLR

        for spec in self.specs.values():
            factor = lr_lambda(spec.schedule, math.ceil(self.max_steps / spec.every),
                               math.ceil(self.steps_per_epoch / spec.every), args.warmup_steps, spec.decay_start_epoch)
            spec.scheduler = accelerator.prepare(LambdaLR(spec.optimizer.optimizer, factor))

        # EMA after prepare, so it starts from the weights every process shares.
        if args.ema:
            from diffusers.training_utils import EMAModel

            target = step.ema_module() or step.model
            self.ema_target = target
            ema = EMAModel(target.parameters(), decay=args.ema_decay, foreach=accelerator.device.type == "cuda")
            ema.to(accelerator.device)
            self.ema = EMAState(ema, accelerator.device)

        accelerator.register_for_checkpointing(self.state)
        if self.ema is not None:
            accelerator.register_for_checkpointing(self.ema)
        for _, obj in sorted(step.rank_local_state().items()):
            accelerator.register_for_checkpointing(RankLocal(obj, accelerator))

        if args.report_to == "tensorboard":
            accelerator.init_trackers(step.name, config=_hparams(args))
        self.sample_batch = step.sample_batch() if args.sample_every and accelerator.is_main_process else None
        self.start_step = self.resume()

    def resume(self) -> int:
        """Load ``--resume``; returns the step to go on from (0 for a fresh start)."""
        self.checkpoints.clean_stale()
        if not self.args.resume:
            return 0
        path = self.checkpoints.latest() if self.args.resume == "latest" else Path(self.args.resume)
        if path is None:
            self.print(f"--resume latest: no checkpoint in {self.checkpoints.root}, starting from scratch")
            return 0
        self._warn_if_changed(path)
        try:
            self.accelerator.load_state(str(path))
        except Exception as error:  # noqa: BLE001 - another model configuration, a damaged file
            first_line = (str(error).strip().splitlines() or [""])[0][:300]
            raise ConfigError(f"--resume {path}: cannot load this checkpoint into the configured run; was it "
                              f"written with other model arguments? ({type(error).__name__}: {first_line})") from error
        self.print(f"Resumed from {path} at step {self.state.step}")
        return self.state.step

    def _warn_if_changed(self, path: Path) -> None:
        saved_file = path / "trainer_state.json"
        if not saved_file.is_file():
            return
        saved = json.loads(saved_file.read_text())
        current = {"batch_size": self.args.batch_size, "num_processes": self.accelerator.num_processes,
                   "gradient_accumulation_steps": self.args.gradient_accumulation_steps, "seed": self.args.seed}
        changed = {key: (saved.get(key), value) for key, value in current.items()
                   if key in saved and saved.get(key) != value}
        if changed:
            text = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
            self.print(f"warning: resuming with {text}; the run goes on but will not match an uninterrupted one")

    # --- the steps ------------------------------------------------------------------------------------------------
    def update(self, name: str, loss: torch.Tensor) -> None:
        spec, accelerator = self.specs[name], self.accelerator
        accelerator.backward(loss)
        if accelerator.sync_gradients and spec.max_grad_norm:
            accelerator.clip_grad_norm_([p for g in spec.optimizer.param_groups for p in g["params"]],
                                        spec.max_grad_norm)
        spec.optimizer.step()  # a no-op while gradients accumulate
        if accelerator.sync_gradients:
            if not spec.optimizer.step_was_skipped:  # fp16 overflow: no update, so no schedule step either
                spec.scheduler.step()
            if spec.ema and self.ema is not None:
                self.ema.ema.step(self.ema_target.parameters())
        spec.optimizer.zero_grad(set_to_none=True)

    def train(self) -> int:
        args, accelerator, step = self.args, self.accelerator, self.step
        start_step = self.start_step
        started = time.time()
        elapsed_before = self.state.elapsed_seconds
        self.print(f"Training {step.name}: {len(step.train_dataset)} examples, {self.steps_per_epoch} steps per epoch "
                   f"on {accelerator.num_processes} process(es) of {args.batch_size} x "
                   f"{args.gradient_accumulation_steps} accumulation, {self.max_steps} steps ({self.epochs} epochs), "
                   f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}")
        from tqdm.auto import tqdm

        progress = tqdm(total=self.max_steps, initial=start_step, desc=step.name, dynamic_ncols=True,
                        disable=not accelerator.is_local_main_process)
        running: dict[str, list] = {}
        self.last_losses: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.metrics_step = -1
        global_step = start_step
        stopped = False
        first_epoch = global_step // self.steps_per_epoch
        for module in self.modules.values():
            module.train()

        for epoch in range(first_epoch, self.epochs):
            if global_step >= self.max_steps or stopped:
                break
            self.train_loader.set_epoch(epoch)
            if hasattr(step.train_dataset, "set_epoch"):  # augmentation is a function of (seed, epoch, index)
                step.train_dataset.set_epoch(epoch)
            loader = self.train_loader
            done_in_epoch = global_step - epoch * self.steps_per_epoch
            if done_in_epoch > 0:  # resuming mid-epoch: skip what the interrupted run already trained on
                loader = accelerator.skip_first_batches(self.train_loader,
                                                        done_in_epoch * args.gradient_accumulation_steps)
            for batch in loader:
                with accelerator.accumulate(*self.modules.values()):
                    losses = step.step(batch, global_step)
                for key, value in losses.items():
                    entry = running.setdefault(key, [0.0, 0])
                    entry[0] = entry[0] + (value.detach().float() if torch.is_tensor(value) else float(value))
                    entry[1] += 1
                if not accelerator.sync_gradients:
                    continue
                global_step += 1
                self.state.step = global_step
                self.state.elapsed_seconds = elapsed_before + time.time() - started
                progress.update(1)
                if global_step % args.log_every == 0 or global_step == self.max_steps:
                    self._log(running, global_step, epoch, progress)
                    running = {}
                if args.sample_every and global_step % args.sample_every == 0:
                    self._write_samples(global_step)
                if args.checkpointing_steps and global_step % args.checkpointing_steps == 0:
                    self._save_checkpoint(global_step, epoch)
                if args.stop_after_steps and global_step >= args.stop_after_steps:
                    stopped = True
                    break
                if global_step >= self.max_steps:
                    break
            epoch_done = global_step == (epoch + 1) * self.steps_per_epoch or global_step >= self.max_steps
            if not stopped and epoch_done and args.eval_every_epochs and (epoch + 1) % args.eval_every_epochs == 0:
                self._evaluate(global_step, epoch)
        progress.close()

        if stopped:
            self.print(f"Stopped after step {global_step} (--stop-after-steps); no final model written")
            accelerator.end_training()
            return 0
        if running:
            self._log(running, global_step, self.epochs - 1, None)
        if self.metrics_step != global_step:
            self._evaluate(global_step, self.epochs - 1)
        if args.sample_every and global_step % args.sample_every:
            self._write_samples(global_step)
        self.state.elapsed_seconds = elapsed_before + time.time() - started
        return self._finish(global_step)

    # --- logging, samples, evaluation, checkpoints ----------------------------------------------------------------
    def _log(self, running: dict, global_step: int, epoch: int, progress) -> None:
        if not running:
            return
        keys = list(running)  # the order the step returned them in, the same on every process
        means = torch.stack([torch.as_tensor(running[k][0], dtype=torch.float32, device=self.accelerator.device)
                             / running[k][1] for k in keys])
        means = self.accelerator.reduce(means, reduction="mean").tolist()  # every process calls this
        values = dict(zip(keys, means))
        self.last_losses = values
        logs = {f"loss/{key}": value for key, value in values.items()}
        for name, spec in self.specs.items():
            logs[f"lr/{name}"] = spec.scheduler.get_last_lr()[0]
        logs["epoch"] = epoch
        self.accelerator.log(logs, step=global_step)
        if progress is not None:
            progress.set_postfix({key: f"{value:.3g}" for key, value in list(values.items())[:4]}, refresh=False)

    def _write_samples(self, global_step: int) -> None:
        if self.sample_batch is None or not self.accelerator.is_main_process:
            return
        from accelerate.utils import send_to_device
        from torchvision.utils import make_grid, save_image

        step = self.step
        states = {name: module.training for name, module in self.modules.items()}
        for module in self.modules.values():
            module.eval()
        try:
            with torch.no_grad(), self.accelerator.autocast():
                rows = step.sample_rows(send_to_device(self.sample_batch, self.accelerator.device))
        finally:
            for name, module in self.modules.items():
                module.train(states[name])
        if rows is None:
            return
        count, columns = rows.shape[:2]
        grid = make_grid(rows.flatten(0, 1).float().cpu(), nrow=columns, normalize=True, value_range=(-1, 1),
                         padding=2, pad_value=1.0)
        folder = Path(self.args.output_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(grid, folder / f"step_{global_step:07d}.png")
        if self.args.report_to == "tensorboard":
            self.accelerator.get_tracker("tensorboard", unwrap=True).add_image("samples", grid, global_step)

    def _evaluate(self, global_step: int, epoch: int) -> None:
        if self.eval_loader is None:
            return
        states = {name: module.training for name, module in self.modules.items()}
        for module in self.modules.values():
            module.eval()
        try:
            with self.accelerator.autocast():
                metrics = self.step.evaluate(self.eval_loader)
        finally:
            for name, module in self.modules.items():
                module.train(states[name])
        self.metrics_step = global_step
        if not metrics:
            return
        self.metrics = metrics
        self.accelerator.log({f"eval/{key}": value for key, value in metrics.items()}, step=global_step)
        shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        self.print(f"epoch {epoch + 1}/{self.epochs} (step {global_step}): {shown}")

    def _save_checkpoint(self, global_step: int, epoch: int) -> None:
        extra = {"step": global_step, "epoch": epoch, "batch_size": self.args.batch_size,
                 "num_processes": self.accelerator.num_processes, "seed": self.args.seed,
                 "gradient_accumulation_steps": self.args.gradient_accumulation_steps,
                 "args": {key: str(value) for key, value in vars(self.args).items()}}
        path = self.checkpoints.save(global_step, extra)
        self.print(f"Saved checkpoint {path}")

    # --- the end --------------------------------------------------------------------------------------------------
    def _finish(self, global_step: int) -> int:
        args, accelerator, step = self.args, self.accelerator, self.step
        accelerator.wait_for_everyone()
        if args.debug_dump_weights:
            folder = Path(args.output_dir) / "debug"
            folder.mkdir(parents=True, exist_ok=True)
            digest = state_dict_hash(self.accelerator.unwrap_model(step.model).state_dict())
            (folder / f"weights_rank{accelerator.process_index}.sha256").write_text(digest + "\n")
        if self.ema is not None:
            self.ema.ema.copy_to(self.ema_target.parameters())
        model = step.final_model()
        minutes = self.state.elapsed_seconds / 60
        took = (f"{self.state.elapsed_seconds:.0f} seconds" if minutes < 1 else
                f"{minutes:.1f} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours")
        devices = _device_description(accelerator)
        command = _command_line(self.step_class, getattr(args, "argv", None))
        model.card_info = {
            "training_data": step.training_data_description(),
            "training": (f"{global_step} steps, {global_step / self.steps_per_epoch:.3g} epochs, on {devices}, took "
                         f"{took}, command `{command}`. Batch {args.batch_size} per process x "
                         f"{accelerator.num_processes} process(es) x {args.gradient_accumulation_steps} accumulation, "
                         f"mixed precision {accelerator.mixed_precision}, seed {args.seed}"
                         + (f", weights are an EMA (decay {args.ema_decay})" if self.ema is not None else "") + "."),
            "metrics": {**{f"final training {key} (mean of the last {args.log_every} steps)": f"{value:.4f}"
                           for key, value in self.last_losses.items()},
                        **{f"validation {key}": f"{value:.4f}" for key, value in self.metrics.items()}},
        }
        final_dir = Path(args.output_dir) / "final"
        status = 0
        if accelerator.is_main_process:
            save_final(model, final_dir)
            summary = {"steps": global_step, "epochs": global_step / self.steps_per_epoch, "minutes": minutes,
                       "devices": devices, "command": command, "losses": self.last_losses, "metrics": self.metrics}
            (Path(args.output_dir) / "training_summary.json").write_text(json.dumps(summary, indent=2))
            self.print(f"Saved the final model to {final_dir}")
            if args.push_to_hub:
                status = push_to_hub(model, args.push_to_hub, final_dir, private=not args.public)
        accelerator.end_training()
        return status


def push_to_hub(model, repo: str, saved_in: Path | None = None, private: bool = True) -> int:
    """Push the final model; offline (or without rights) print one line and return a non-zero status."""
    from expr_models.errors import HubUnavailableError

    where = f" The model is saved in {saved_in}; push that folder later." if saved_in else ""
    try:
        model.push_to_hub(repo, private=private)
    except HubUnavailableError as error:
        print(f"error: {' '.join(str(error).split())}{where}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - no token, no rights, bad repo id: one line, not a traceback
        first_line = (str(error).strip().splitlines() or [""])[0]
        print(f"error: could not push to the Hub repo {repo!r} ({type(error).__name__}: {first_line}).{where}",
              file=sys.stderr)
        return 1
    print(f"Pushed the final model to https://huggingface.co/{repo}")
    return 0


def state_dict_hash(state_dict: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _hparams(args: argparse.Namespace) -> dict:
    """TensorBoard's hparams take numbers, strings and booleans only."""
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in vars(args).items() if key != "argv"}


def _device_description(accelerator) -> str:
    device = accelerator.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = device.type.upper()
    return f"{accelerator.num_processes} x {name}"


def _command_line(step_class: type[TrainingStep], argv: list[str] | None) -> str:
    if argv is not None:  # called as a function (tests, notebooks)
        return f"python -m {step_class.__module__} {shlex.join(argv)}"
    launcher = "accelerate launch" if os.environ.get("ACCELERATE_DYNAMO_BACKEND") is not None or \
        os.environ.get("ACCELERATE_MIXED_PRECISION") is not None else "python"
    argv = list(sys.argv)
    try:
        argv[0] = os.path.relpath(argv[0], REPO_ROOT)
    except ValueError:
        pass
    return f"{launcher} {shlex.join(argv)}"


def main(step_class: type[TrainingStep], argv: list[str] | None = None) -> int:
    """Parse, check, set up and train; a bad configuration ends with one ``error:`` line and status 2."""
    args = parse_args(step_class, argv)
    args.argv = None if argv is None else list(argv)
    trainer = None
    try:
        check_common_args(args)
        step_class.check_arguments(args)
        trainer = Trainer(step_class, args)
        trainer.setup()
    except ConfigError as error:
        if trainer is None or trainer.accelerator.is_local_main_process:
            print(f"error: {error}", file=sys.stderr)
        return 2
    return trainer.train()
