"""Training arguments: dataclasses whose fields are the command-line flags (transformers' ``HfArgumentParser``).

A script's flags come from two dataclasses:

- its step's ``arguments_class``: :class:`TrainingArguments` (data, schedule, checkpoints, speed; shared by every
  model) extended with the step's own fields (loss weights, optimiser), with the step's defaults;
- the fields of its model config (the architecture), generated from the config class by :func:`config_arguments`,
  so each is written once, in the config, with its help taken from the config's docstring.

``parse_args`` returns the first, with the second as ``args.model``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

REPO_ROOT = Path(__file__).resolve().parents[1]
DEBUG_WEIGHTS_ENV = "EXPR_TRAIN_DUMP_WEIGHTS"  # same as --debug-dump-weights


class ConfigError(Exception):
    """A bad configuration, found before training starts; the message is meant for the user."""


@dataclass
class TrainingArguments:
    """What every training script takes. Steps subclass it to add their own fields and change defaults."""

    _argument_group_name = "training"

    # Data and output
    data: Path = HfArg(help="a prepared dataset (a folder written by datasets' save_to_disk)")
    split: str = HfArg(default="train", help="the split to train on")
    eval_split: str = HfArg(default="validation",
                            help="the split for evaluation and sample grids, if the dataset has it")
    output_dir: Path | None = HfArg(default=None, help="run folder: checkpoints/, logs/, samples/, final/ "
                                                      "(default: runs/<model>)")
    num_workers: int | None = HfArg(default=None, help="data loader worker processes per training process (default: "
                                                       "0 on CPU, up to 8 on GPU; the augmentation does not depend on "
                                                       "it)")
    min_free_disk_mb: float = HfArg(default=512, help="refuse to start with less free space in the output folder")

    # Schedule
    epochs: int = HfArg(default=100, help="training length in epochs")
    max_steps: int | None = HfArg(default=None, help="training length in optimiser steps; overrides --epochs (the LR "
                                                     "schedule spans it)")
    batch_size: int = HfArg(default=16, help="per process")
    gradient_accumulation_steps: int = 1
    warmup_steps: int = HfArg(default=0, help="linear LR warm-up, in optimiser updates")
    seed: int = 0

    # Checkpoints and logging
    checkpointing_steps: int = HfArg(default=500, help="save a resumable checkpoint every N steps (0: never)")
    checkpoints_total_limit: int = HfArg(default=3, help="keep only the newest N checkpoints")
    resume: str | None = HfArg(default=None, metadata={"nargs": "?", "const": "latest", "metavar": "latest|PATH"},
                               help="resume from the newest checkpoint in <output-dir>/checkpoints (`--resume` or "
                                    "`--resume latest`; starts fresh if there is none) or from a checkpoint folder")
    log_every: int = HfArg(default=10, help="log mean losses every N steps")
    sample_every: int = HfArg(default=500, help="write a sample grid every N steps (0: never)")
    num_samples: int = HfArg(default=4, help="rows of the sample grid")
    eval_every_epochs: int = HfArg(default=1, help="evaluate every N epochs (0: only at the end)")
    report_to: Literal["tensorboard", "none"] = "tensorboard"
    push_to_hub: str | None = HfArg(default=None, metadata={"metavar": "REPO"},
                                    help="push the final model to this Hub repo (private unless --public)")
    public: bool = HfArg(default=False, help="with --push-to-hub: make a new repo public (the weights learned from "
                                             "research-only data; read the data terms first)")
    stop_after_steps: int | None = HfArg(default=None, help="stop after N steps as if killed: no final model (for "
                                                            "testing --resume)")
    debug_dump_weights: bool = HfArg(default=False, help=f"each process writes a hash of its final weights to "
                                                         f"<output-dir>/debug/ (also set by {DEBUG_WEIGHTS_ENV}=1)")

    # Speed and precision
    mixed_precision: Literal["no", "fp16", "bf16"] | None = HfArg(
        default=None, help="default: the accelerate config's (no when run with python)")
    ema: bool = HfArg(default=False, help="keep an exponential moving average of the generator (or model) weights "
                                          "and save that as the final model")
    ema_decay: float = 0.999
    channels_last: bool = HfArg(default=False, help="channels_last memory format (faster convs on GPU)")
    compile: bool = HfArg(default=False, help="torch.compile the models (inductor)")
    cpu: bool = HfArg(default=False, help="train on CPU even if a GPU is there (with torchrun: CPU processes over "
                                          "gloo)")
    deterministic: bool = HfArg(default=False, help="deterministic algorithms only (slower on GPU; CPU runs are "
                                                    "deterministic anyway)")

    # Set by parse_args, not flags: the model config's fields, and the argv of an in-process call.
    model: Any = field(default=None, init=False, repr=False)
    argv: list[str] | None = field(default=None, init=False, repr=False)

    @property
    def data_dirs(self) -> list[Path]:
        return self.data if isinstance(self.data, list) else [self.data]

    def check(self) -> None:
        """The checks that need no model and no data: numbers, the output folder, the resume path, the Hub."""
        from train.checkpoints import list_checkpoints

        for name in ("batch_size", "gradient_accumulation_steps", "epochs", "log_every", "num_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "stop_after_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpointing_steps", "sample_every", "eval_every_epochs", "warmup_steps", "num_workers"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.checkpoints_total_limit < 1:
            raise ConfigError(f"--checkpoints-total-limit must be at least 1, got {self.checkpoints_total_limit}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"--ema-decay must be in (0, 1), got {self.ema_decay}")
        for folder in self.data_dirs:
            check_dataset_dir(folder)
        check_output_dir(self.output_dir, self.min_free_disk_mb)
        existing = list_checkpoints(Path(self.output_dir) / "checkpoints")
        if existing and not self.resume:
            raise ConfigError(f"--output-dir {self.output_dir} already holds checkpoints of an earlier run (newest: "
                              f"{existing[-1][1].name}); pass --resume to go on with it, or choose another "
                              "--output-dir")
        if self.resume and self.resume != "latest":
            path = Path(self.resume)
            if not path.is_dir():
                raise ConfigError(f"--resume {self.resume}: no such checkpoint folder")
            if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
                raise ConfigError(f"--resume {self.resume}: not a checkpoint written by this loop (no weights in it)")
        if self.push_to_hub:
            from huggingface_hub import constants

            if constants.HF_HUB_OFFLINE:
                raise ConfigError(f"--push-to-hub {self.push_to_hub}: the Hub is switched off here "
                                  "(HF_HUB_OFFLINE=1); train without --push-to-hub and push <output-dir>/final later")

    def hparams(self) -> dict:
        """Every argument, the model's included, as TensorBoard's hparams take them (numbers, strings, booleans)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if self.model is not None:
            values.update(dataclasses.asdict(self.model))
        return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
                for key, value in values.items()}


def check_dataset_dir(folder: Path) -> None:
    if not folder.exists():
        raise ConfigError(f"--data {folder}: no such folder (prepare it with `python -m train.tools.prepare_data`)")
    if not folder.is_dir():
        raise ConfigError(f"--data {folder}: not a folder")
    if not any(folder.iterdir()):
        raise ConfigError(f"--data {folder}: the folder is empty")
    markers = ("dataset_dict.json", "dataset_info.json", "state.json", "train.npz")  # the last: train.classifier_data
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


# ----------------------------------------------------------------------------------------------------------------
# The model config's fields as flags


def config_arguments(config_class: type, exclude: tuple[str, ...] = ()) -> type:
    """A dataclass of ``config_class``'s own fields (minus ``exclude``) with their defaults and docstring help, for
    ``HfArgumentParser``: ``CycleGANConfig.n_residual_blocks`` becomes ``--n-residual-blocks``, a boolean field that
    defaults to True also gets ``--no-<name>``."""
    namespace = vars(sys.modules[config_class.__module__])
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    helps = _docstring_help(config_class.__doc__)
    fields = []
    for name, annotation in config_class.__annotations__.items():
        if name == "model_type" or name in exclude:
            continue
        kind = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        if isinstance(kind, types.UnionType) and type(None) not in kind.__args__:
            kind = kind.__args__[0]  # list[int] | tuple[int, ...]: read as a list
        default = defaults[name]
        if isinstance(default, (list, tuple)):
            spec = field(default_factory=lambda value=default: list(value), metadata={"help": helps.get(name)})
        else:
            spec = field(default=default, metadata={"help": helps.get(name)})
        fields.append((name, kind, spec))
    arguments = dataclasses.make_dataclass(f"{config_class.__name__}Arguments", fields)
    arguments._argument_group_name = f"{config_class.__name__} (the model)"
    return arguments


def _docstring_help(docstring: str | None) -> dict[str, str]:
    """``name: text`` entries of a config's ``Args:`` docstring (``a, b: text`` documents both), one line each."""
    helps: dict[str, str] = {}
    names: list[str] = []
    for line in (docstring or "").splitlines():
        match = re.match(r"^ {8}(\w+(?:, \w+)*): (.*)", line)
        if match:
            names = match.group(1).split(", ")
            for name in names:
                helps[name] = match.group(2)
        elif names and line.startswith(" " * 12):
            for name in names:
                helps[name] += " " + line.strip()
        else:
            names = []
    return {name: text.replace("%", "%%").replace("``", "") for name, text in helps.items()}


# ----------------------------------------------------------------------------------------------------------------
# Parsing


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The script's docstring as it is written, and every flag's default."""


def build_parser(step_class) -> HfArgumentParser:
    dataclass_types = [step_class.arguments_class]
    if step_class.config_class is not None:
        dataclass_types.append(config_arguments(step_class.config_class, step_class.config_exclude))
    return HfArgumentParser(dataclass_types, description=step_class.__doc__, formatter_class=HelpFormatter,
                            allow_abbrev=False)


def parse_args(step_class, argv: list[str] | None = None) -> TrainingArguments:
    """The step's arguments from ``argv`` (default: the command line), with the model's as ``.model``."""
    parser = build_parser(step_class)
    namespace = parser.parse_args(argv)  # an unknown flag: argparse's usage error and status 2
    values = vars(namespace)
    parsed = []
    for dataclass_type in parser.dataclass_types:
        names = {f.name for f in dataclasses.fields(dataclass_type) if f.init}
        parsed.append(dataclass_type(**{name: value for name, value in values.items() if name in names}))
    args = parsed[0]
    args.model = parsed[1] if len(parsed) > 1 else None
    args.output_dir = Path(args.output_dir or REPO_ROOT / "runs" / step_class.name)
    args.debug_dump_weights = args.debug_dump_weights or os.environ.get(DEBUG_WEIGHTS_ENV, "") not in ("", "0")
    return args


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
