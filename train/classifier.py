"""Train the expression classifier (the evaluation's judge) on one or more prepared 7-class datasets.

    python train/classifier.py --data prepared/expressions
    python train/classifier.py --data prepared/expressions prepared/jaffe --epochs 60
    accelerate launch --config_file train/configs/1gpu.yaml train/classifier.py --data prepared/expressions

Several ``--data`` folders are concatenated (train splits for training, validation splits for the per-epoch
accuracy). Images outside the classifier's classes (CK+'s contempt) are left out, unless ``--map-contempt-to`` names a
class to count them as. Cross-entropy with label smoothing, AdamW and a cosine schedule; augmentation: horizontal
flip, a small random affine and brightness/contrast jitter.
"""

from __future__ import annotations

import sys


import torch
import torch.nn.functional as F
from torch import nn

from expr_models.classifier import ExpressionClassifier, ExpressionClassifierConfig
from expr_models.labels import EXPRESSIONS
from train.loop import (ConfigError, FaceCrops, OptimizerSpec, TrainingStep, describe_rows,
                        expression_rows, main, make_config)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class Augment:
    """A small random affine (rotation, shift, scale) and brightness/contrast jitter, on ``C x H x W`` in [-1, 1]."""

    def __init__(self, degrees: float = 10.0, translate: float = 0.05, scale: tuple[float, float] = (0.9, 1.1),
                 brightness: float = 0.2, contrast: float = 0.2):
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.brightness, self.contrast = brightness, contrast

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        size = image.shape[-1]
        angle = _uniform(generator, -self.degrees, self.degrees)
        shift = [round(_uniform(generator, -self.translate, self.translate) * size) for _ in range(2)]
        scale = _uniform(generator, *self.scale)
        fill = float(image.mean())
        image = TF.affine(image, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0],
                          interpolation=InterpolationMode.BILINEAR, fill=fill)
        contrast = _uniform(generator, 1 - self.contrast, 1 + self.contrast)
        brightness = _uniform(generator, -self.brightness, self.brightness)
        mean = image.mean()
        return ((image - mean) * contrast + mean + brightness).clamp(-1, 1)


class ClassifierStep(TrainingStep):
    """Train the expression classifier of expr_models (a small VGG-style CNN) with cross-entropy."""

    name = "classifier"
    default_epochs = 40
    default_batch_size = 64
    multiple_data_dirs = True

    @classmethod
    def add_arguments(cls, parser) -> None:
        defaults = ExpressionClassifierConfig()
        parser.add_argument("--classes", nargs="+", default=list(EXPRESSIONS),
                            help="the classes, in label order (default: the study's 7)")
        parser.add_argument("--map-contempt-to", metavar="CLASS",
                            help="count CK+'s contempt images as this class (default: leave them out)")
        parser.add_argument("--resolution", type=int, default=defaults.resolution)
        parser.add_argument("--in-channels", type=int, default=defaults.in_channels, help="1 (grayscale) or 3")
        parser.add_argument("--widths", type=int, nargs="+", default=list(defaults.widths),
                            help="channels of each conv stage")
        parser.add_argument("--dropout", type=float, default=defaults.dropout)
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--weight-decay", type=float, default=0.05)
        parser.add_argument("--label-smoothing", type=float, default=0.1)
        parser.add_argument("--lr-schedule", choices=("cosine", "linear", "constant"), default="cosine")
        parser.add_argument("--max-grad-norm", type=float, default=5.0, help="clip gradients (0: no clipping)")
        parser.add_argument("--no-augment", action="store_true", help="no flip, affine or photometric jitter")

    @classmethod
    def check_arguments(cls, args) -> None:
        if not 0.0 <= args.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
        if args.map_contempt_to is not None and args.map_contempt_to not in args.classes:
            raise ConfigError(f"--map-contempt-to {args.map_contempt_to}: not one of --classes "
                              f"({', '.join(args.classes)})")
        if args.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {args.lr}")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(
            ExpressionClassifierConfig, resolution=args.resolution, in_channels=args.in_channels,
            class_names=list(args.classes), widths=list(args.widths), dropout=args.dropout)
        self.model = ExpressionClassifier(config).to(self.device)
        aliases = {"contempt": args.map_contempt_to} if args.map_contempt_to else None
        self.train_parts = [expression_rows(folder, args.split, config.class_names, aliases=aliases)
                            for folder in args.data]
        eval_parts = [expression_rows(folder, args.eval_split, config.class_names, required=False, aliases=aliases)
                      for folder in args.data]
        eval_parts = [part for part in eval_parts if part is not None and part.rows]
        augment = None if args.no_augment else Augment()
        self.train_dataset = FaceCrops(self.train_parts, config.resolution, config.in_channels, seed=args.seed,
                                       flip=not args.no_augment, augment=augment)
        self.eval_dataset = FaceCrops(eval_parts, config.resolution, config.in_channels, flip=False) \
            if eval_parts else None

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.model}

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        args = self.args
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)  # no decay on biases and norm scales
        groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=args.lr, fused=self.device.type == "cuda")
        return {"classifier": OptimizerSpec(optimizer, schedule=args.lr_schedule, ema=True,
                                            max_grad_norm=args.max_grad_norm or None)}

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        logits = self.nets.classifier(self.images(batch["pixel_values"])).logits
        labels = batch["labels"].long()
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.args.label_smoothing)
        self.update("classifier", loss)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy.detach()}

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        model = self.unwrap(self.nets.classifier)
        correct = total = 0
        loss_sum = torch.zeros((), device=self.device)
        for batch in dataloader:
            logits = model(self.images(batch["pixel_values"])).logits.float()
            labels = batch["labels"].long()
            logits, labels = self.accelerator.gather_for_metrics((logits, labels))
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            correct += int((logits.argmax(-1) == labels).sum())
            total += len(labels)
        return {"accuracy": correct / max(total, 1), "loss": float(loss_sum) / max(total, 1)}

    def training_data_description(self) -> str:
        parts = "; ".join(describe_rows(folder, self.args.split, part)
                          for folder, part in zip(self.args.data, self.train_parts))
        return f"Face crops of {len(self.config.class_names)} expressions: {parts}."


if __name__ == "__main__":
    sys.exit(main(ClassifierStep))
