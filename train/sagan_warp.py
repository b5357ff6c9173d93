"""Train the warp-and-refine SA-GAN (class-conditional: neutral -> each expression, happy -> neutral) on aligned
colour photo pairs, by paired supervision against the same person's real target.

    python -m train.tools.prepare_aligned --pairs expressions --out prepared/aligned_expressions
    python -m train.sagan_warp --data prepared/aligned_expressions --output-dir runs/sagan_warp --cpu \
        --generator-type warp_refine --in-channels 3 --resolution 128 --generator-channels 16 \
        --n-residual-blocks 3 --max-steps 300

The generator (``expr_models.models.warp_refine.WarpRefineGenerator`` with the target's label planes) holds one prior
per target class from the average-edit baseline (``--average-edit``): neutral -> target for every target but neutral,
happy -> neutral for neutral. A fresh generator is that baseline; training learns per-person corrections.

Each item is a directed photo pair (``source``, ``target_in_source_frame``: the same person's target photo in the
source's frame) and its target class. Losses (the issue asks for realism first, so no adversarial term):
- ``paired``: L1 between G(source, target) and the real target, blurred, exposure-matched, over the face with the
  mouth weighted ``--mouth-weight`` more and, for targets that move the brows (all but ``WINDOWED_CLASSES``), the
  brow and eye band ``--brow-weight`` more (``train.warp_common.paired_l1``);
- ``flow_tv`` on the learned flow, ``mask`` (L1 on the appearance mask);
- optionally ``guide``: a frozen independent classifier's cross-entropy on the face box of the edit
  (``--expression-guide``, weight ``--lambda-expression``; never the evaluation's classifier).
Validation (each epoch): the proxy realism ratio (``train.warp_common.proxy_ratios``) per target class, median over
JAFFE validation pairs; the real ratio is ``benchmarks/realism_baseline.py --sagan-warp ... --split validation``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.hf_argparser import HfArg

from expr_models.labels import EXPRESSIONS
from expr_models.models.sagan import WINDOWED_CLASSES, SAGANConfig, SAGANModel
from train.args import REPO_ROOT, ConfigError, TrainingArguments, make_config
from train.data import AugmentedDataset, load_prepared, require_columns
from train.expression_guide import ExpressionGuideArguments, check_guide_arguments, load_guide_for
from train.loop import main
from train.step import OptimizerSpec, TrainingStep
from train.warp_common import (average_edit_fields, face_weight, flow_tv, paired_l1, proxy_ratios, resized,
                               shown_path, stacked, to_tensor)

PAIR_COLUMNS = ("source", "target_in_source_frame")
# The face box in the aligned frame (rows, columns as fractions of the side; expr_models.faces.alignment.FACE_ELLIPSE):
# what the expression guide judges, close to the framing classifiers are trained on.
GUIDE_BOX = (0.15, 0.95), (0.1, 0.9)


def prior_pair(target: str) -> tuple[str, str]:
    """The average edit's pair whose fields start the generator for ``target``."""
    return ("happy", "neutral") if target == "neutral" else ("neutral", target)


@dataclass
class WarpSAGANArguments(ExpressionGuideArguments, TrainingArguments):
    """The warp-and-refine SA-GAN's training flags; its architecture flags come from ``SAGANConfig``'s fields."""

    classes: list[str] = field(default_factory=lambda: list(EXPRESSIONS),
                               metadata={"help": "the expressions to edit to, in label order (default: the study's 7)"})
    batch_size: int = 8
    lambda_paired: float = HfArg(default=10.0, help="weight of the paired L1 against the real target")
    lambda_flow_tv: float = HfArg(default=1.0, help="weight of the learned flow's total variation")
    lambda_mask: float = HfArg(default=0.05, help="L1 weight on the appearance mask, to keep it sparse")
    lambda_expression: float = HfArg(default=0.0, help="weight of the guide's cross-entropy (with "
                                                       "--expression-guide); small: the guide rewards drawn lines")
    paired_blur: float = HfArg(default=1.0, help="sigma (px at the model resolution) of the paired loss's blur")
    mouth_weight: float = HfArg(default=4.0, help="extra weight of the paired loss in the mouth window")
    brow_weight: float = HfArg(default=2.0, help="extra weight in the brow and eye band, for the targets that move it")
    average_edit: Path = HfArg(default=REPO_ROOT / "checkpoints" / "average",
                               help="the average-edit baseline whose fields become the generator's priors")
    datasets: list[str] = field(default_factory=lambda: ["jaffe", "fei", "london"],
                                metadata={"help": "the prepared rows' datasets to train on"})
    pair_repeats: int = HfArg(default=4, help="an epoch shows every training pair this many times")
    lr: float = HfArg(default=2e-4, help="Adam learning rate of the generator")
    flip: bool = HfArg(default=True, help="random horizontal flips of a pair's photos together (--no-flip: none)")


class PairsWithTargets(AugmentedDataset):
    """Item ``i``: pair ``i mod pairs`` (source, target photo in its frame, target class index), flipped left-right
    with probability 1/2 when ``flip``."""

    def __init__(self, images: dict[str, torch.Tensor], labels: torch.Tensor, length: int, seed: int,
                 flip: bool = True):
        self.images, self.labels, self.length, self.seed, self.flip = images, labels, length, seed, flip

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        pair = index % len(self.labels)
        item = {key: images[pair] for key, images in self.images.items()}
        if self.flip and torch.rand((), generator=self.generator(index)) < 0.5:
            item = {key: image.flip(-1) for key, image in item.items()}
        return {**item, "label": self.labels[pair]}


class WarpSAGANStep(TrainingStep):
    """Train the warp-and-refine SA-GAN of expr_models on aligned directed photo pairs (no discriminator)."""

    name = "sagan_warp"
    arguments_class = WarpSAGANArguments
    config_class = SAGANConfig
    config_exclude = ("class_names", "with_discriminator")

    @classmethod
    def check_arguments(cls, args) -> None:
        if args.model.generator_type != "warp_refine" or args.model.in_channels != 3:
            raise ConfigError("train.sagan_warp trains --generator-type warp_refine --in-channels 3")
        if not (args.average_edit / "config.json").is_file():
            raise ConfigError(f"--average-edit {args.average_edit} is not a saved AverageEditModel folder")
        check_guide_arguments(args)

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(SAGANConfig, **vars(args.model), class_names=list(args.classes),
                                           with_discriminator=False)
        self.model = SAGANModel(config)
        self.load_priors(args.average_edit)
        self.model.to(self.device)
        train = self.rows(args.split)
        self.train_sources = dict(zip(*np.unique(train["dataset"], return_counts=True)))
        images, labels = self.tensors(train)
        self.train_dataset = PairsWithTargets(images, labels, len(labels) * args.pair_repeats, args.seed, args.flip)
        validation = self.rows(args.eval_split, required=False)
        if validation is not None and len(validation):
            images, labels = self.tensors(validation)
            self.eval_dataset = PairsWithTargets(images, labels, len(labels), args.seed, flip=False)
        # Per class: the mouth-weighted face, plus the brows for the targets that move them.
        weights = [face_weight(config.resolution, args.mouth_weight,
                               0.0 if name in WINDOWED_CLASSES else args.brow_weight) for name in config.class_names]
        self.class_weights = torch.cat(weights).to(self.device)  # K x 1 x S x S
        self.guide = load_guide_for(args, config.class_names, self.device)

    def rows(self, split: str, required: bool = True):
        """The prepared pairs of ``split`` from ``--datasets`` whose target is one of the classes."""
        data = load_prepared(self.args.data, split, required=required)
        if data is None:
            return None
        require_columns(data, self.args.data, (*PAIR_COLUMNS, "target_expression", "dataset"))
        classes, datasets = set(self.config.class_names), set(self.args.datasets)
        keep = [i for i, (target, dataset) in enumerate(zip(data["target_expression"], data["dataset"]))
                if target in classes and dataset in datasets]
        return data.select(keep)

    def tensors(self, rows) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        size = self.config.resolution
        images = {key: to_tensor(resized(stacked(rows, key), size)) for key in PAIR_COLUMNS}
        names = list(self.config.class_names)
        return images, torch.tensor([names.index(name) for name in rows["target_expression"]])

    @torch.no_grad()
    def load_priors(self, path: Path) -> None:
        """Per target class, the average edit's flow and residual (``prior_pair``) into the generator."""
        from expr_models.models.average_edit import AverageEditModel

        average = AverageEditModel.from_pretrained(path)
        generator, config = self.model.generator, self.config
        for index, name in enumerate(config.class_names):
            flow, residual = average_edit_fields(average, *prior_pair(name), config.resolution, config.in_channels)
            generator.prior_flow[index].copy_(flow[0])
            generator.prior_residual[index].copy_(residual[0])

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"G": self.model.generator}

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        parameters = [p for p in self.model.generator.parameters() if p.requires_grad]  # not the priors
        return {"generator": OptimizerSpec(torch.optim.Adam(parameters, lr=self.args.lr, betas=(0.5, 0.999)),
                                           ema=True)}

    def ema_module(self) -> nn.Module:
        return self.model.generator

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        args = self.args
        source, target = self.images(batch["source"]), self.images(batch["target_in_source_frame"])
        label = batch["label"].long()
        labels = F.one_hot(label, self.config.num_classes).to(source.dtype)
        edited, fields = self.nets.G(source, return_fields=True, labels=labels)
        losses = {
            "paired": args.lambda_paired * paired_l1(edited, source, target, self.class_weights[label],
                                                     args.paired_blur),
            "flow_tv": args.lambda_flow_tv * flow_tv(fields["delta_flow"]),
            "mask": args.lambda_mask * fields["mask"].float().mean(),
        }
        if self.guide is not None:
            (top, bottom), (left, right) = GUIDE_BOX
            size = edited.shape[-1]
            face = edited[..., int(top * size):int(bottom * size), int(left * size):int(right * size)]
            losses["guide"] = args.lambda_expression * self.guide.loss(face, label, self.config.class_names)
        loss = sum(losses.values())
        self.update("generator", loss)
        return {"generator": loss.detach(), **{key: value.detach() for key, value in losses.items()}}

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        generator = self.unwrap(self.nets.G)
        ratios, labels = [], []
        for batch in dataloader:
            source, label = batch["source"].float(), batch["label"].long()
            edited = generator(source, labels=F.one_hot(label, self.config.num_classes).float())
            ratios.append(proxy_ratios(edited, source, batch["target_in_source_frame"].float()))
            labels.append(label)
        ratios = self.accelerator.gather_for_metrics(torch.cat(ratios))
        labels = self.accelerator.gather_for_metrics(torch.cat(labels))
        metrics = {f"proxy_ratio_{name}": float(ratios[labels == index].median())
                   for index, name in enumerate(self.config.class_names) if (labels == index).any()}
        metrics["proxy_ratio_mean"] = float(np.mean(list(metrics.values())))
        return metrics

    def sample_batch(self):
        if self.eval_dataset is None:
            return None
        labels = self.eval_dataset.labels
        # One validation pair per class, in class order.
        picked = [int(torch.nonzero(labels == index)[0]) for index in range(self.config.num_classes)
                  if (labels == index).any()][:self.args.num_samples]
        return {**{key: images[picked] for key, images in self.eval_dataset.images.items()}, "label": labels[picked]}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Per sample: input | G(input, target) | the real target."""
        generator = self.unwrap(self.nets.G)
        source = batch["source"]
        edited = generator(source, labels=F.one_hot(batch["label"].long(), self.config.num_classes).float())
        return torch.stack([source, edited, batch["target_in_source_frame"]], dim=1).float()

    def training_data_description(self) -> str:
        sources = ", ".join(f"{name} {count}" for name, count in sorted(self.train_sources.items()))
        return (f"Aligned colour photo pairs (`train.tools.prepare_aligned --pairs expressions`): `{self.args.data}` "
                f"({self.args.split} split): source | target photo of the same person, {sources}. Priors: the "
                f"average edit `{shown_path(self.args.average_edit)}`.")


if __name__ == "__main__":
    sys.exit(main(WarpSAGANStep))
