"""Train the expression classifier (the evaluation's judge) on one or more prepared 7-class datasets.

    python train/classifier.py --data prepared/expressions
    python train/classifier.py --data prepared/expressions prepared/jaffe --epochs 60
    accelerate launch --config_file train/configs/1gpu.yaml train/classifier.py --data prepared/expressions

Several ``--data`` folders are concatenated (train splits for training, validation splits for the per-epoch accuracy).
A folder of face arrays (``python -m train.classifier_data``: every source, cut as the editor cuts it, with GENKI-4K's
smile labels) is read as such; its "no smile" faces are partial labels, trained to be "not happy" (the loss
``-log(1 - p(happy))``). Images outside the classifier's classes (CK+'s contempt) are left out, unless
``--map-contempt-to`` names a class to count them as. Cross-entropy with label smoothing, AdamW and a cosine schedule;
augmentation: horizontal flip, a small random affine and brightness/contrast jitter. ``--init-from MODEL`` starts from a
saved classifier's weights with a fresh optimiser and schedule (a warm restart; the committed classifier's second
cycle), ``--oversample london=10`` lists a face-array source's training faces ten times, ``--random-erasing 0.5``
fills one random rectangle of half the training faces with noise.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.hf_argparser import HfArg

from expr_models.labels import EXPRESSIONS
from expr_models.models.classifier import ExpressionClassifier, ExpressionClassifierConfig
from train.args import ConfigError, TrainingArguments, make_config
from train.classifier_data import FaceArrays, is_face_arrays
from train.data import FaceCrops, describe_rows, expression_rows
from train.loop import main
from train.step import OptimizerSpec, TrainingStep


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class Augment:
    """A small random affine (rotation, shift, scale) and brightness/contrast jitter, on ``C x H x W`` in [-1, 1];
    with probability ``erasing``, then one rectangle (2-25% of the face, aspect 0.3-3.3) filled with noise (random
    erasing, Zhong et al. 2020: the net cannot lean on one part of the face alone)."""

    def __init__(self, degrees: float = 10.0, translate: float = 0.05, scale: tuple[float, float] = (0.9, 1.1),
                 brightness: float = 0.2, contrast: float = 0.2, erasing: float = 0.0):
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.brightness, self.contrast, self.erasing = brightness, contrast, erasing

    def erase(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        height, width = image.shape[-2:]
        area = _uniform(generator, 0.02, 0.25) * height * width
        aspect = math.exp(_uniform(generator, math.log(0.3), math.log(1 / 0.3)))
        box_h = max(1, min(height, round(math.sqrt(area * aspect))))
        box_w = max(1, min(width, round(math.sqrt(area / aspect))))
        top = int(torch.randint(0, height - box_h + 1, (), generator=generator))
        left = int(torch.randint(0, width - box_w + 1, (), generator=generator))
        image = image.clone()
        noise = torch.rand((image.shape[0], box_h, box_w), generator=generator) * 2 - 1
        image[..., top:top + box_h, left:left + box_w] = noise.to(image.dtype)
        return image

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
        image = ((image - mean) * contrast + mean + brightness).clamp(-1, 1)
        if self.erasing > 0 and float(torch.rand((), generator=generator)) < self.erasing:
            image = self.erase(image, generator)
        return image


@dataclass
class ClassifierArguments(TrainingArguments):
    """The classifier's training flags; its architecture flags come from ``ExpressionClassifierConfig``'s fields."""

    data: list[Path] = HfArg(help="one or more prepared datasets (folders written by datasets' save_to_disk)")
    epochs: int = 40
    batch_size: int = 64
    classes: list[str] = field(default_factory=lambda: list(EXPRESSIONS),
                               metadata={"help": "the classes, in label order (default: the study's 7)"})
    map_contempt_to: str | None = HfArg(default=None, metadata={"metavar": "CLASS"},
                                        help="count CK+'s contempt images as this class (default: leave them out)")
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = HfArg(default=5.0, help="clip gradients (0: no clipping)")
    augment: bool = HfArg(default=True, help="flip, affine and photometric jitter (--no-augment: none)")
    random_erasing: float = HfArg(default=0.0, metadata={"metavar": "P"},
                                  help="with --augment: erase one random rectangle of a training face (noise) with "
                                       "probability P")
    init_from: Path | None = HfArg(default=None, metadata={"metavar": "MODEL"},
                                   help="start from this saved classifier's weights (same architecture flags) with a "
                                        "fresh optimiser and LR schedule: a warm restart or a fine-tune")
    oversample: list[str] = field(default_factory=list, metadata={
        "metavar": "SOURCE=N", "help": "face arrays: list every training face of SOURCE N times (e.g. london=10)"})
    teachers: list[Path] = field(default_factory=list, metadata={
        "metavar": "MODEL", "help": "distil from these saved classifiers: their averaged probabilities on each "
                                    "augmented training face join the labels as soft targets (Hinton et al. 2015)"})
    distill_weight: float = HfArg(default=0.5, help="with --teachers: the soft targets' share of the loss")
    distill_temperature: float = HfArg(default=2.0, help="with --teachers: both sides' logits are divided by it")


def not_label_loss(logits: torch.Tensor, not_labels: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-log(1 - p(not_label))`` for the rows with a partial label (others add 0)."""
    partial = not_labels >= 0
    if not partial.any():
        return logits.new_zeros(())
    log_probs = logits[partial].log_softmax(-1)
    # log(1 - p_k) = log(sum of the other classes' probabilities), stable as a logsumexp
    others = log_probs.scatter(1, not_labels[partial, None], float("-inf"))
    return -others.logsumexp(-1).sum() / len(logits)


def oversample_counts(items: list[str]) -> dict[str, int]:
    """``["london=10", "fei=4"]`` -> ``{"london": 10, "fei": 4}``."""
    counts = {}
    for item in items:
        source, _, count = item.partition("=")
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--oversample {item}: expected SOURCE=N with N >= 1")
        counts[source] = int(count)
    return counts


class ClassifierStep(TrainingStep):
    """Train the expression classifier of expr_models (a small VGG-style CNN) with cross-entropy."""

    name = "classifier"
    arguments_class = ClassifierArguments
    config_class = ExpressionClassifierConfig
    config_exclude = ("class_names",)  # --classes

    @classmethod
    def check_arguments(cls, args) -> None:
        if not 0.0 <= args.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
        if args.map_contempt_to is not None and args.map_contempt_to not in args.classes:
            raise ConfigError(f"--map-contempt-to {args.map_contempt_to}: not one of --classes "
                              f"({', '.join(args.classes)})")
        if args.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {args.lr}")
        oversample_counts(args.oversample)
        if not 0.0 <= args.random_erasing <= 1.0:
            raise ConfigError(f"--random-erasing must be in [0, 1], got {args.random_erasing}")
        if not 0.0 <= args.distill_weight <= 1.0 or args.distill_temperature <= 0:
            raise ConfigError("--distill-weight must be in [0, 1] and --distill-temperature positive")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(ExpressionClassifierConfig, **vars(args.model),
                                           class_names=list(args.classes))
        self.model = ExpressionClassifier(config)
        if args.init_from is not None:
            self.model.load_state_dict(ExpressionClassifier.from_pretrained(args.init_from).state_dict())
        self.model.to(self.device)
        self.teachers = [self._load_teacher(path) for path in args.teachers]
        augment = Augment(erasing=args.random_erasing) if args.augment else None
        arrays = [folder for folder in args.data if is_face_arrays(folder)]
        if arrays:  # face arrays hold labels in EXPRESSIONS' order, partial ones included: on their own
            if len(arrays) != len(args.data) or list(config.class_names) != list(EXPRESSIONS):
                raise ConfigError("a face-array folder (train.classifier_data) is read alone, with the default "
                                  "classes")
            self.train_parts = []
            self.train_dataset = FaceArrays(arrays[0], args.split, config.resolution, seed=args.seed,
                                            flip=args.augment, augment=augment,
                                            repeats=oversample_counts(args.oversample))
            self.eval_dataset = FaceArrays(arrays[0], args.eval_split, config.resolution)
            return
        if args.oversample:
            raise ConfigError("--oversample needs a face-array folder (python -m train.classifier_data)")
        aliases = {"contempt": args.map_contempt_to} if args.map_contempt_to else None
        self.train_parts = [expression_rows(folder, args.split, config.class_names, aliases=aliases)
                            for folder in args.data]
        eval_parts = [expression_rows(folder, args.eval_split, config.class_names, required=False, aliases=aliases)
                      for folder in args.data]
        eval_parts = [part for part in eval_parts if part is not None and part.rows]
        self.train_dataset = FaceCrops(self.train_parts, config.resolution, config.in_channels, seed=args.seed,
                                       flip=args.augment, augment=augment)
        self.eval_dataset = FaceCrops(eval_parts, config.resolution, config.in_channels, flip=False) \
            if eval_parts else None

    def _load_teacher(self, path: Path) -> ExpressionClassifier:
        """A frozen teacher that reads the student's inputs, with its raw (uncalibrated) logits."""
        teacher = ExpressionClassifier.from_pretrained(path)
        ours, theirs = self.config, teacher.config
        if (theirs.resolution, theirs.in_channels, list(theirs.class_names)) != \
                (ours.resolution, ours.in_channels, list(ours.class_names)):
            raise ConfigError(f"--teachers {path}: its resolution, channels or classes differ from the student's "
                              f"({(theirs.resolution, theirs.in_channels)} against "
                              f"{(ours.resolution, ours.in_channels)})")
        teacher.config.temperature, teacher.config.class_bias = 1.0, None
        return teacher.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def teacher_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        temperature = self.args.distill_temperature
        return torch.stack([(teacher(images).logits.float() / temperature).softmax(-1)
                            for teacher in self.teachers]).mean(0)

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
        images = self.images(batch["pixel_values"])
        logits = self.nets.classifier(images).logits
        labels = batch["labels"].long()
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.args.label_smoothing,
                               ignore_index=-100)
        labelled = labels >= 0
        if "not_labels" in batch:  # partial labels: -log(1 - p(not_label)), as a share of the batch
            loss = loss * labelled.float().mean() + not_label_loss(logits.float(), batch["not_labels"].long())
        if self.teachers:  # every face, partial labels included, gets the teachers' full distribution
            temperature, weight = self.args.distill_temperature, self.args.distill_weight
            soft = F.kl_div((logits.float() / temperature).log_softmax(-1), self.teacher_probabilities(images),
                            reduction="batchmean")
            loss = (1 - weight) * loss + weight * temperature ** 2 * soft  # T^2 keeps the gradients' scale
        self.update("classifier", loss)
        accuracy = (logits.argmax(-1) == labels)[labelled].float().mean()
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
            logits, labels = logits[labels >= 0], labels[labels >= 0]  # partial labels are not scored here
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            correct += int((logits.argmax(-1) == labels).sum())
            total += len(labels)
        return {"accuracy": correct / max(total, 1), "loss": float(loss_sum) / max(total, 1)}

    def training_data_description(self) -> str:
        if isinstance(self.train_dataset, FaceArrays):
            start = f" Started from the weights of `{self.args.init_from}`." if self.args.init_from else ""
            repeats = f" Repeated sources: {', '.join(self.args.oversample)}." if self.args.oversample else ""
            return (f"Face crops of {len(self.config.class_names)} expressions, `{self.args.data[0]}` "
                    f"({self.args.split} split): {self.train_dataset.describe()}; GENKI-4K's no-smile faces as "
                    f"partial labels (not happy).{repeats}{start}{self._erasing_note()}{self._distill_note()}")
        parts = "; ".join(describe_rows(folder, self.args.split, part)
                          for folder, part in zip(self.args.data, self.train_parts))
        return f"Face crops of {len(self.config.class_names)} expressions: {parts}.{self._erasing_note()}"

    def _distill_note(self) -> str:
        if not self.teachers:
            return ""
        names = ", ".join(f"`{path}`" for path in self.args.teachers)
        return (f" Distilled from {names} (their mean probabilities at temperature {self.args.distill_temperature:g}, "
                f"weight {self.args.distill_weight:g}).")

    def _erasing_note(self) -> str:
        if not (self.args.augment and self.args.random_erasing > 0):
            return ""
        return f" Random erasing: one noise rectangle in {self.args.random_erasing:.0%} of the training faces."


if __name__ == "__main__":
    sys.exit(main(ClassifierStep))
