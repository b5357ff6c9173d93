"""Train the warp-and-refine CycleGAN (neutral <-> happy) on aligned colour faces: paired supervision where there is
a pair, adversarial (and optionally cycle) losses on everything.

    python -m train.tools.prepare_aligned --out prepared/aligned_happy          # FEI, London, JAFFE pairs; GENKI-4K
    python -m train.cyclegan_warp --data prepared/aligned_happy --output-dir runs/cg_warp --cpu --max-steps 1500

Both generators are ``expr_models.models.warp_refine.WarpRefineGenerator``s that start as the average-edit baseline
(``--average-edit``, default ``checkpoints/average``: its median flow and residual for each direction become the
generators' priors), so training begins at the baseline's realism and learns per-person corrections.

Each item is a subject pair, each photo in its own five-point frame as the editor aligns it (neutral ``x``, happy
``y``) with the other photo put into that frame (``x_target``: the happy photo in x's frame; ``y_target``), and,
independently, one GENKI-4K face of each label (``ux``, ``uy``; unpaired). Losses:
- ``paired``: L1 between G_xy(x) and x_target (and G_yx(y) and y_target), Gaussian-blurred to forgive what alignment
  leaves, over the face (``alignment.frame_face_mask``) with the mouth (the realism metric's window) weighted
  ``--mouth-weight`` times more, after removing the pair's exposure difference (measured on the upper face, which
  the expression does not change);
- ``gan``: LSGAN PatchGAN on the lower face (the rows below the eyes), fakes from pairs and GENKI;
- ``cycle`` (``--lambda-cycle``, 0 by default to halve the cost on CPU), ``flow_tv`` on the learned flow and ``mask``
  (L1 on the appearance mask).
Validation (each epoch): a proxy of the paired realism ratio in the aligned frame at the model's resolution (mouth
rows 0.55-0.86 and columns 0.35-0.66 of the frame, grey, blurred): the median over validation pairs of
error(edit, real) / error(input, real). The real ratio is ``benchmarks/realism_baseline.py --split validation``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.hf_argparser import HfArg

from expr_models.models.cyclegan import CycleGANConfig, CycleGANModel
from train.args import REPO_ROOT, ConfigError, make_config
from train.cyclegan import CycleGANArguments, CycleGANStep
from train.data import AugmentedDataset, load_prepared, require_columns
from train.loop import main
from train.step import set_requires_grad
from train.warp_common import (ValidationPairs, average_edit_fields, face_weight, flow_tv, paired_l1, proxy_ratios,
                               resized, shown_path, stacked, to_tensor)

PAIR_COLUMNS = {"x": "neutral", "x_target": "happy_in_neutral_frame", "y": "happy", "y_target": "neutral_in_happy_frame"}


class PairedAndUnpaired(AugmentedDataset):
    """Item ``i``: pair ``i mod pairs`` (x, x_target, y, y_target: see ``PAIR_COLUMNS``) and a random GENKI face of
    each label (ux, uy); each flipped left-right with probability 1/2 (a pair's images together)."""

    def __init__(self, pairs: dict[str, torch.Tensor], unpaired_x: torch.Tensor | None,
                 unpaired_y: torch.Tensor | None, length: int, seed: int, flip: bool = True, jitter: bool = False):
        self.pairs, self.unpaired_x, self.unpaired_y = pairs, unpaired_x, unpaired_y
        self.length, self.seed, self.flip, self.jitter = length, seed, flip, jitter

    def __len__(self) -> int:
        return self.length

    def _maybe_flip(self, images: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
        if self.flip and torch.rand((), generator=generator) < 0.5:
            return [image.flip(-1) for image in images]
        return images

    def _jitter(self, images: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
        """One small similarity (scale, rotation, shift) and one exposure change for all of a pair's images, so the
        generators cannot learn a training person by their exact pixels."""
        draw = torch.rand(6, generator=generator) * 2 - 1
        scale, angle = 1 + 0.05 * draw[0], 0.07 * draw[1]
        cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
        theta = torch.tensor([[cos, -sin, 0.03 * draw[2]], [sin, cos, 0.03 * draw[3]]])[None]
        batch = torch.stack(images)
        grid = F.affine_grid(theta.expand(len(batch), -1, -1), list(batch.shape), align_corners=False)
        batch = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
        batch = ((batch + 1) * (1 + 0.15 * draw[4]) - 1 + 0.1 * draw[5]).clamp(-1, 1)
        return list(batch)

    def __getitem__(self, index: int) -> dict:
        generator = self.generator(index)
        pair = index % len(self.pairs["x"])
        images = self._maybe_flip([images[pair] for images in self.pairs.values()], generator)
        if self.jitter:
            images = self._jitter(images, generator)
        item = dict(zip(self.pairs, images))
        if self.unpaired_x is not None:
            ux = self.unpaired_x[int(torch.randint(len(self.unpaired_x), (), generator=generator))]
            uy = self.unpaired_y[int(torch.randint(len(self.unpaired_y), (), generator=generator))]
            item["ux"], item["uy"] = (self._maybe_flip([image], generator)[0] for image in (ux, uy))
        return item


@dataclass
class WarpCycleGANArguments(CycleGANArguments):
    """The warp-and-refine CycleGAN's training flags."""

    batch_size: int = 4
    lambda_cycle: float = HfArg(default=0.0, help="weight of the cycle-consistency L1 (0: no cycle passes)")
    lambda_identity: float = HfArg(default=0.0, help="unused here: a warp generator has no identity loss")
    lambda_paired: float = HfArg(default=10.0, help="weight of the paired L1 against the real target")
    lambda_gan: float = HfArg(default=1.0, help="weight of the generators' adversarial losses")
    lambda_flow_tv: float = HfArg(default=1.0, help="weight of the learned flow's total variation")
    lambda_mask: float = HfArg(default=0.05, help="L1 weight on the appearance masks, to keep them sparse")
    paired_blur: float = HfArg(default=1.0, help="sigma (px at the model resolution) of the paired loss's blur")
    mouth_weight: float = HfArg(default=4.0, help="extra weight of the paired loss in the mouth window (the realism "
                                                  "metric's region): 0 weighs the whole face alike")
    average_edit: Path = HfArg(default=REPO_ROOT / "checkpoints" / "average",
                               help="the average-edit baseline whose fields become the generators' priors")
    unpaired_split: str = HfArg(default="genki", help="the split of unpaired faces with a `smile` label ('' none)")
    pair_repeats: int = HfArg(default=4, help="an epoch shows every training pair this many times")
    jitter: bool = HfArg(default=False, help="a small random similarity and exposure change per pair (the same for "
                                             "its images)")
    discriminator_region: Literal["whole", "lower_face"] = HfArg(
        default="lower_face", help="lower_face: the discriminators judge only the rows below the eyes")
    lr: float | None = HfArg(default=2e-4, help="Adam learning rate of generators and discriminators")


class WarpCycleGANStep(CycleGANStep):
    """Train the warp-and-refine CycleGAN of expr_models on aligned neutral/happy pairs and unpaired faces."""

    name = "cyclegan_warp"
    arguments_class = WarpCycleGANArguments

    @classmethod
    def check_arguments(cls, args) -> None:
        super().check_arguments(args)
        if args.model.generator_type != "warp_refine":
            raise ConfigError("train.cyclegan_warp trains --generator-type warp_refine")
        if not (args.average_edit / "config.json").is_file():
            raise ConfigError(f"--average-edit {args.average_edit} is not a saved AverageEditModel folder")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(CycleGANConfig, **vars(args.model), with_discriminators=True)
        self.model = CycleGANModel(config)
        self.load_priors(args.average_edit)
        self.model.to(self.device)
        train = load_prepared(args.data, args.split)
        require_columns(train, args.data, PAIR_COLUMNS.values())
        self.train_sources = dict(zip(*np.unique(train["dataset"], return_counts=True)))
        pairs = {key: to_tensor(self.resized(stacked(train, column))) for key, column in PAIR_COLUMNS.items()}
        unpaired_x = unpaired_y = None
        self.unpaired_counts = (0, 0)
        if args.unpaired_split:
            unpaired = load_prepared(args.data, args.unpaired_split)
            images = to_tensor(self.resized(stacked(unpaired, "image")))
            smile = torch.tensor(unpaired["smile"]) == 1
            unpaired_x, unpaired_y = images[~smile], images[smile]
            self.unpaired_counts = (len(unpaired_x), len(unpaired_y))
        self.train_dataset = PairedAndUnpaired(pairs, unpaired_x, unpaired_y, len(pairs["x"]) * args.pair_repeats,
                                               args.seed, args.flip, args.jitter)
        validation = load_prepared(args.data, args.eval_split, required=False)
        if validation is not None and len(validation):
            self.eval_dataset = ValidationPairs({key: to_tensor(self.resized(stacked(validation, column)))
                                                 for key, column in PAIR_COLUMNS.items()})
        self.face_weight = face_weight(config.resolution, args.mouth_weight).to(self.device)
        self.pools = {}
        self.guide = None

    def resized(self, images: np.ndarray) -> np.ndarray:
        return resized(images, self.config.resolution)

    @torch.no_grad()
    def load_priors(self, path: Path) -> None:
        """The average edit's flow and residual for each direction, at the model's resolution, into the generators."""
        from expr_models.models.average_edit import AverageEditModel

        average = AverageEditModel.from_pretrained(path)
        for generator, (source, target) in ((self.model.generator_xy, self.config.domains),
                                            (self.model.generator_yx, self.config.domains[::-1])):
            flow, residual = average_edit_fields(average, source, target, self.config.resolution,
                                                 self.config.in_channels)
            generator.prior_flow.copy_(flow)
            generator.prior_residual.copy_(residual)

    def paired_loss(self, edited: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return paired_l1(edited, source, target, self.face_weight, self.args.paired_blur)

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args = self.nets, self.args
        x, y = self.images(batch["x"]), self.images(batch["y"])
        x_target, y_target = self.images(batch["x_target"]), self.images(batch["y_target"])
        count = len(x)
        if "ux" in batch:  # the generators see the pairs and the unpaired faces in one batch
            all_x, all_y = torch.cat([x, self.images(batch["ux"])]), torch.cat([y, self.images(batch["uy"])])
        else:
            all_x, all_y = x, y
        if step_index < args.discriminator_warmup_steps:
            return self.discriminator_warmup_step(all_x, all_y)

        set_requires_grad([nets.D_x, nets.D_y], False)
        fake_y, fields_xy = nets.G_xy(all_x, return_fields=True)
        fake_x, fields_yx = nets.G_yx(all_y, return_fields=True)
        losses = {
            "paired_xy": self.paired_loss(fake_y[:count], x, x_target) * args.lambda_paired,
            "paired_yx": self.paired_loss(fake_x[:count], y, y_target) * args.lambda_paired,
            "gan_xy": self.gan_loss(nets.D_y(self.judged(fake_y)), True) * args.lambda_gan,
            "gan_yx": self.gan_loss(nets.D_x(self.judged(fake_x)), True) * args.lambda_gan,
            "flow_tv": args.lambda_flow_tv * sum(flow_tv(f["delta_flow"]) for f in (fields_xy, fields_yx)),
            "mask": args.lambda_mask * (fields_xy["mask"].float().mean() + fields_yx["mask"].float().mean()),
        }
        if args.lambda_cycle > 0:
            losses["cycle_x"] = F.l1_loss(nets.G_yx(fake_y), all_x) * args.lambda_cycle
            losses["cycle_y"] = F.l1_loss(nets.G_xy(fake_x), all_y) * args.lambda_cycle
        loss_g = sum(losses.values())
        self.update("generator", loss_g)
        set_requires_grad([nets.D_x, nets.D_y], True)

        loss_d_y = self.discriminator_loss(nets.D_y, all_y, fake_y.detach())
        loss_d_x = self.discriminator_loss(nets.D_x, all_x, fake_x.detach())
        self.update("discriminator", loss_d_x + loss_d_y)
        return {"generator": loss_g.detach(), **{key: value.detach() for key, value in losses.items()},
                "discriminator_x": loss_d_x.detach(), "discriminator_y": loss_d_y.detach()}

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        g_xy, g_yx = self.unwrap(self.nets.G_xy), self.unwrap(self.nets.G_yx)
        ratios_xy, ratios_yx = [], []
        for batch in dataloader:
            x, y = batch["x"].float(), batch["y"].float()
            ratios_xy.append(proxy_ratios(g_xy(x), x, batch["x_target"].float()))
            ratios_yx.append(proxy_ratios(g_yx(y), y, batch["y_target"].float()))
        ratios_xy = self.accelerator.gather_for_metrics(torch.cat(ratios_xy))
        ratios_yx = self.accelerator.gather_for_metrics(torch.cat(ratios_yx))
        return {"proxy_ratio_xy": float(ratios_xy.median()), "proxy_ratio_yx": float(ratios_yx.median())}

    def sample_batch(self):
        if self.eval_dataset is None:
            return None
        count = min(self.args.num_samples, len(self.eval_dataset))
        return {key: images[:count] for key, images in self.eval_dataset.pairs.items()}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Rows x | G_xy(x) | the real happy photo, then y | G_yx(y) | the real neutral one (validation pairs)."""
        g_xy, g_yx = self.unwrap(self.nets.G_xy), self.unwrap(self.nets.G_yx)
        x, y = batch["x"], batch["y"]
        return torch.cat([torch.stack([x, g_xy(x), batch["x_target"]], dim=1),
                          torch.stack([y, g_yx(y), batch["y_target"]], dim=1)]).float()

    def ema_module(self) -> nn.Module:
        return nn.ModuleList([self.model.generator_xy, self.model.generator_yx])

    def training_data_description(self) -> str:
        sources = ", ".join(f"{name} {count}" for name, count in sorted(self.train_sources.items()))
        unpaired = (f"; unpaired: `{self.args.data}` ({self.args.unpaired_split} split, GENKI-4K): "
                    f"{self.unpaired_counts[0]} no-smile, {self.unpaired_counts[1]} smile faces"
                    if self.args.unpaired_split else "")
        return (f"Aligned colour faces (`train.tools.prepare_aligned`): `{self.args.data}` ({self.args.split} split): "
                f"subject pairs neutral | happy, {sources}{unpaired}. Priors: the average edit `{shown_path(self.args.average_edit)}`.")


if __name__ == "__main__":
    sys.exit(main(WarpCycleGANStep))
