"""What a model plugs into the training loop (``train/loop.py``): a :class:`TrainingStep` that declares its modules,
optimisers (:class:`OptimizerSpec`) and datasets, and computes one step's losses."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from train.args import TrainingArguments


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
    arguments_class: type[TrainingArguments] = TrainingArguments  # the step's flags (a subclass with its own fields)
    config_class: type | None = None  # the model config whose fields become flags too, as ``args.model``
    config_exclude: tuple[str, ...] = ()  # config fields that are not flags (set by the step itself)
    find_unused_parameters = False  # DDP: only for models whose forward may leave parameters unused
    cudnn_benchmark = True  # False where input sizes vary from batch to batch (detection)
    drop_last = False

    def __init__(self, args: TrainingArguments, accelerator):
        self.args, self.accelerator = args, accelerator
        self.device = accelerator.device
        self.model = None  # the full ExprPreTrainedModel (with discriminators)
        self.train_dataset: Dataset | None = None
        self.eval_dataset: Dataset | None = None
        self.nets = SimpleNamespace()  # prepared modules, filled in by the loop
        # The loop's Trainer.update, set by the loop (the step does not import the loop that runs it).
        self._update: Callable[[str, torch.Tensor], None] | None = None

    # --- set-up ---------------------------------------------------------------------------------------------------
    @classmethod
    def check_arguments(cls, args: TrainingArguments) -> None:
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
        self._update(name, loss)

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
        return ", ".join(str(path) for path in self.args.data_dirs)


def set_requires_grad(modules: nn.Module | Iterable[nn.Module], flag: bool) -> None:
    """Switch the gradients of one module's (or several modules') parameters on or off, e.g. the discriminators'
    while the generators update."""
    for module in [modules] if isinstance(modules, nn.Module) else modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)
