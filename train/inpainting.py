"""What the learned inpainters' training steps share (the mouth: ``train/mouth_inpainter.py``; the brows:
``train/brow_inpainter.py``): a generator and a discriminator with Adam each, linear decay to zero, an EMA of the
generator, a hole whose random margin the flags bound, sample grids from fixed validation windows, and a final model
without its discriminator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers.hf_argparser import HfArg

from train.args import ConfigError, TrainingArguments
from train.step import OptimizerSpec, TrainingStep


@dataclass
class InpainterArguments(TrainingArguments):
    """The flags every inpainter takes; a model adds its loss weights."""

    lr: float = HfArg(default=2e-4, help="Adam learning rate, decaying linearly to 0")
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_rest: float = HfArg(default=0.2, help="weight of the L1 outside the hole")


class InpainterStep(TrainingStep):
    """An inpainting generator ``model.generator`` and its discriminator ``model.discriminator``; subclasses build
    the model and the datasets (each with ``sources``, the dataset of every item) and compute the step."""

    drop_last = True

    @classmethod
    def check_arguments(cls, args) -> None:
        if not 0 <= args.min_margin <= args.max_margin:
            raise ConfigError(f"need 0 <= --min-margin <= --max-margin, got {args.min_margin}, {args.max_margin}")

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"G": self.model.generator, "D": self.model.discriminator}

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        args, model = self.args, self.model
        adam = dict(lr=args.lr, betas=(args.beta1, args.beta2))
        return {"generator": OptimizerSpec(torch.optim.Adam(model.generator.parameters(), **adam), schedule="linear",
                                           ema=True),
                "discriminator": OptimizerSpec(torch.optim.Adam(model.discriminator.parameters(), **adam),
                                               schedule="linear")}

    def ema_module(self) -> nn.Module:
        return self.model.generator

    def sample_batch(self):
        source = self.eval_dataset or self.train_dataset
        count = min(self.args.num_samples, len(source))
        picks = np.linspace(0, len(source) - 1, count).round().astype(int)
        return torch.utils.data.default_collate([source[int(i)] for i in picks])

    def final_model(self):
        return self.model.without_discriminator()

    def examples_per_source(self) -> str:
        """``"name count, ..."``: the training items an epoch takes from each source dataset."""
        counts: dict[str, int] = {}
        for source in self.train_dataset.sources:
            counts[source] = counts.get(source, 0) + 1
        return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels ``mask`` weights (per channel)."""
    return ((prediction - target).abs() * mask).sum() / (mask.sum() * prediction.shape[1]).clamp_min(1.0)
