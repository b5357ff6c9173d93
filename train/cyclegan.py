"""Train the CycleGAN (neutral <-> happy by default) on the prepared `paper` dataset (JAFFE + FEI face crops).

    python train/cyclegan.py --data prepared/paper                                  # the study's: lr 5e-4, linear decay
    python train/cyclegan.py --data prepared/paper --lr-schedule reference --epochs 200  # reference: 2e-4, 100 + 100
    accelerate launch --config_file train/configs/multi_gpu.yaml train/cyclegan.py --data prepared/paper

The two domains are sampled independently (unpaired): each item is the i-th image of domain x with a random image
of domain y. Losses as in the reference implementation (Zhu et al. 2017): LSGAN (or vanilla) adversarial losses,
cycle-consistency L1 weighted by lambda_cycle, identity L1 weighted by lambda_identity * lambda_cycle, and, with the
attention-mask generator, an L1 on the masks (lambda_mask); discriminators see a pool of 50 earlier fakes per domain.
With ``--expression-guide`` the generators also minimise a frozen, independent classifier's cross-entropy towards
their target domain (train/expression_guide.py): what made the committed checkpoint edit at all on this little data.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.hf_argparser import HfArg

from expr_models.models.cyclegan import CycleGANConfig, CycleGANModel
from train.args import REPO_ROOT, ConfigError, TrainingArguments, make_config
from train.data import AugmentedDataset, FaceCrops, describe_rows, expression_rows
from train.expression_guide import ExpressionGuideArguments, check_guide_arguments, load_guide_for
from train.loop import main
from train.step import OptimizerSpec, TrainingStep, set_requires_grad


# The aligned crop's rows from here down hold the nose, mouth and chin
# (expr_models.evaluation.metrics.UPPER_FACE_FRACTION is 0.45: the upper face the evaluation expects a mouth edit to
# leave alone).
LOWER_FACE_START = 0.4


class ImagePool:
    """The reference's history of generated images: once full, each new fake is, with probability 1/2, swapped for a
    random older one, so the discriminator also sees what the generator made a while ago (Shrivastava et al.)."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif torch.rand(()) < 0.5:  # the global RNG: its state is in every checkpoint
                index = int(torch.randint(self.size, ()))
                returned.append(self.images[index].to(image.device, image.dtype))
                self.images[index] = image
            else:
                returned.append(image)
        return torch.cat(returned)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = list(state["images"])


class UnpairedFaces(AugmentedDataset):
    """Item ``i``: the ``i``-th image of domain x (wrapping round) and an independently drawn image of domain y."""

    def __init__(self, x: FaceCrops, y: FaceCrops, seed: int):
        self.x, self.y, self.seed = x, y, seed

    def __len__(self) -> int:
        return max(len(self.x), len(self.y))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.x.set_epoch(epoch)
        self.y.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        other = int(torch.randint(len(self.y), (), generator=self.generator(index, salt=1)))
        return {"x": self.x[index % len(self.x)]["pixel_values"], "y": self.y[other]["pixel_values"]}


@dataclass
class CycleGANArguments(ExpressionGuideArguments, TrainingArguments):
    """The CycleGAN's training flags; its architecture flags come from ``CycleGANConfig``'s fields."""

    epochs: int = 200
    batch_size: int = 4
    lambda_cycle: float = HfArg(default=10.0, help="weight of the cycle-consistency L1")
    lambda_identity: float = HfArg(default=0.5, help="weight of the identity L1, multiplied by lambda_cycle as in the "
                                                     "reference")
    lambda_mask: float = HfArg(default=0.01, help="L1 weight on the attention masks, to keep them sparse (with "
                                                  "attention_mask)")
    discriminator_features: Path = HfArg(
        default=REPO_ROOT / "checkpoints" / "style_features",
        help="the ImageNet MobileNetV2 for --discriminator-type pretrained_features: a saved StyleFeatureExtractor")
    discriminator_region: Literal["whole", "lower_face"] = HfArg(
        default="whole", help="lower_face: the discriminators judge only the rows below the eyes (mouth, cheeks, "
                              "chin) of the aligned crop")
    discriminator_warmup_steps: int = HfArg(
        default=0, help="first train only the discriminators, each to tell its domain's real faces from the other "
                        "domain's: the generators then start against a critic that already knows a smile, so copying "
                        "the input through is no resting point")
    pool_size: int = HfArg(default=50, help="image pool per domain (0: none)")
    lr_schedule: Literal["study", "reference"] = HfArg(
        default="study", help="study: lr 5e-4, linear decay to 0 over the run; reference: lr 2e-4, constant for the "
                              "first half of the epochs then linear decay to 0")
    lr: float | None = HfArg(default=None, help="default: 5e-4 (study) or 2e-4 (reference)")
    decay_start_epoch: int | None = HfArg(default=None, help="reference schedule: epochs at the full LR (default: "
                                                             "half of --epochs)")
    beta1: float = 0.5
    beta2: float = 0.999
    flip: bool = HfArg(default=True, help="random horizontal flips (--no-flip: none)")


class CycleGANStep(TrainingStep):
    """Train the CycleGAN of expr_models (two generators, two PatchGAN discriminators) on two expressions."""

    name = "cyclegan"
    arguments_class = CycleGANArguments
    config_class = CycleGANConfig
    config_exclude = ("with_discriminators",)
    drop_last = True

    @classmethod
    def check_arguments(cls, args) -> None:
        if args.discriminator_warmup_steps < 0:
            raise ConfigError(f"--discriminator-warmup-steps must not be negative, got "
                              f"{args.discriminator_warmup_steps}")
        if args.pool_size < 0:
            raise ConfigError(f"--pool-size must not be negative, got {args.pool_size}")
        if args.lr is not None and args.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {args.lr}")
        check_guide_arguments(args)
        features = args.discriminator_features
        if args.model.discriminator_type == "pretrained_features" and not (features / "config.json").is_file():
            raise ConfigError(f"--discriminator-features {args.discriminator_features} is not a saved "
                              "StyleFeatureExtractor folder (it holds the ImageNet MobileNetV2 the discriminator uses)")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(CycleGANConfig, **vars(args.model), with_discriminators=True)
        self.model = CycleGANModel(config)
        if config.discriminator_type == "pretrained_features":  # frozen: the same weights a resumed run saved
            self.load_discriminator_trunks(args.discriminator_features)
        self.model.to(self.device)
        self.rows_x = expression_rows(args.data, args.split, [config.domain_x])
        self.rows_y = expression_rows(args.data, args.split, [config.domain_y])
        crops = dict(resolution=config.resolution, channels=config.in_channels, flip=args.flip)
        self.train_dataset = UnpairedFaces(FaceCrops([self.rows_x], seed=args.seed, **crops),
                                           FaceCrops([self.rows_y], seed=args.seed + 1, **crops), args.seed)
        self.pools = {"image_pool_x": ImagePool(args.pool_size), "image_pool_y": ImagePool(args.pool_size)}
        self.guide = load_guide_for(args, config.domains, self.device)

    def load_discriminator_trunks(self, path: Path) -> None:
        from expr_models.models.style_transfer import StyleFeatureExtractor

        extractor = StyleFeatureExtractor.from_pretrained(path)
        if extractor.config.architecture != "mobilenet_v2":
            raise ConfigError(f"--discriminator-features {path} holds {extractor.config.architecture}; the "
                              "pretrained-feature discriminator needs mobilenet_v2")
        state = extractor.features.state_dict()
        for discriminator in (self.model.discriminator_x, self.model.discriminator_y):
            discriminator.load_trunk(state)

    def trainable_modules(self) -> dict[str, nn.Module]:
        model = self.model
        return {"G_xy": model.generator_xy, "G_yx": model.generator_yx,
                "D_x": model.discriminator_x, "D_y": model.discriminator_y}

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        args, model = self.args, self.model
        lr = args.lr or (5e-4 if args.lr_schedule == "study" else 2e-4)
        schedule = "linear" if args.lr_schedule == "study" else "reference"
        adam = dict(lr=lr, betas=(args.beta1, args.beta2), fused=self.device.type == "cuda")
        generators = itertools.chain(model.generator_xy.parameters(), model.generator_yx.parameters())
        discriminators = itertools.chain(model.discriminator_x.parameters(), model.discriminator_y.parameters())
        return {
            "generator": OptimizerSpec(torch.optim.Adam(generators, **adam), schedule=schedule,
                                       decay_start_epoch=args.decay_start_epoch, ema=True),
            "discriminator": OptimizerSpec(torch.optim.Adam(discriminators, **adam), schedule=schedule,
                                           decay_start_epoch=args.decay_start_epoch),
        }

    def rank_local_state(self) -> dict:
        return self.pools

    def ema_module(self) -> nn.Module:
        return nn.ModuleList([self.model.generator_xy, self.model.generator_yx])

    # --- one step -------------------------------------------------------------------------------------------------
    def judged(self, images: torch.Tensor) -> torch.Tensor:
        """What the discriminators see: the whole crop, or with ``--discriminator-region lower_face`` the rows below
        the eyes, where happy and neutral differ; every judged patch then carries the expression signal instead of
        a few mouth patches among many identical hair and forehead ones."""
        if self.args.discriminator_region == "lower_face":
            return images[..., int(images.shape[-2] * LOWER_FACE_START):, :]
        return images

    def gan_loss(self, prediction: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(prediction, 1.0 if real else 0.0)
        if self.config.gan_loss == "lsgan":
            return F.mse_loss(prediction.float(), target.float())
        return F.binary_cross_entropy_with_logits(prediction.float(), target.float())

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.gan_loss(discriminator(self.judged(real)), True)
                      + self.gan_loss(discriminator(self.judged(fake)), False))

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, config, args = self.nets, self.config, self.args
        real_x, real_y = self.images(batch["x"]), self.images(batch["y"])
        if step_index < args.discriminator_warmup_steps:
            return self.discriminator_warmup_step(real_x, real_y)

        # Generators: fool both discriminators, and come back round the cycle.
        set_requires_grad([nets.D_x, nets.D_y], False)
        fake_y, mask_xy = nets.G_xy(real_x, return_mask=True)
        rec_x, mask_rec_x = nets.G_yx(fake_y, return_mask=True)
        fake_x, mask_yx = nets.G_yx(real_y, return_mask=True)
        rec_y, mask_rec_y = nets.G_xy(fake_x, return_mask=True)
        losses = {
            "gan_xy": self.gan_loss(nets.D_y(self.judged(fake_y)), True),
            "gan_yx": self.gan_loss(nets.D_x(self.judged(fake_x)), True),
            "cycle_x": F.l1_loss(rec_x, real_x) * args.lambda_cycle,
            "cycle_y": F.l1_loss(rec_y, real_y) * args.lambda_cycle,
        }
        if self.guide is not None:  # fake_y should read as domain y (index 1 of the domains), fake_x as x
            weight, to_y = args.lambda_expression, torch.ones(len(fake_y), dtype=torch.long)
            losses["expression_xy"] = self.guide.loss(fake_y, to_y, config.domains) * weight
            losses["expression_yx"] = self.guide.loss(fake_x, 1 - to_y, config.domains) * weight
        if args.lambda_identity > 0:
            weight = args.lambda_identity * args.lambda_cycle
            losses["identity_y"] = F.l1_loss(nets.G_xy(real_y), real_y) * weight
            losses["identity_x"] = F.l1_loss(nets.G_yx(real_x), real_x) * weight
        if config.attention_mask and args.lambda_mask > 0:
            masks = (mask_xy, mask_rec_x, mask_yx, mask_rec_y)
            losses["mask"] = args.lambda_mask * sum(mask.float().mean() for mask in masks)
        loss_g = sum(losses.values())
        self.update("generator", loss_g)
        set_requires_grad([nets.D_x, nets.D_y], True)

        # Discriminators: real images against fakes drawn from the pools.
        pooled_y = self.pools["image_pool_y"].query(fake_y.detach())
        pooled_x = self.pools["image_pool_x"].query(fake_x.detach())
        loss_d_y = self.discriminator_loss(nets.D_y, real_y, pooled_y)
        loss_d_x = self.discriminator_loss(nets.D_x, real_x, pooled_x)
        self.update("discriminator", loss_d_x + loss_d_y)

        return {"generator": loss_g.detach(), **{key: value.detach() for key, value in losses.items()},
                "discriminator_x": loss_d_x.detach(), "discriminator_y": loss_d_y.detach()}

    def discriminator_warmup_step(self, real_x: torch.Tensor, real_y: torch.Tensor) -> dict[str, torch.Tensor]:
        """D_y learns real y against real x, D_x the reverse: exactly what an unedited copy would show them."""
        loss_d_y = self.discriminator_loss(self.nets.D_y, real_y, real_x)
        loss_d_x = self.discriminator_loss(self.nets.D_x, real_x, real_y)
        self.update("discriminator", loss_d_x + loss_d_y)
        return {"discriminator_x": loss_d_x.detach(), "discriminator_y": loss_d_y.detach()}

    # --- reporting ------------------------------------------------------------------------------------------------
    def sample_batch(self):
        args, config = self.args, self.config
        images = {}
        for key, domain, rows in (("x", config.domain_x, self.rows_x), ("y", config.domain_y, self.rows_y)):
            held_out = expression_rows(args.data, args.eval_split, [domain], required=False)
            source = held_out if held_out is not None and held_out.rows else rows
            crops = FaceCrops([source], config.resolution, config.in_channels, flip=False)
            images[key] = torch.stack([crops.load(i) for i in range(min(args.num_samples, len(crops)))])
        return images

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Rows x | G_xy(x) | G_yx(G_xy(x)), then y | G_yx(y) | G_xy(G_yx(y))."""
        g_xy, g_yx = self.unwrap(self.nets.G_xy), self.unwrap(self.nets.G_yx)
        x, y = self.images(batch["x"]), self.images(batch["y"])
        fake_y, fake_x = g_xy(x), g_yx(y)
        rows_x = torch.stack([x, fake_y, g_yx(fake_y)], dim=1)
        rows_y = torch.stack([y, fake_x, g_xy(fake_x)], dim=1)
        return torch.cat([rows_x, rows_y]).float()

    def final_model(self):
        return self.model.without_discriminators()

    def training_data_description(self) -> str:
        return (f"Unpaired {self.config.domain_x} / {self.config.domain_y} face crops: "
                f"{describe_rows(self.args.data, self.args.split, self.rows_x)}; "
                f"{describe_rows(self.args.data, self.args.split, self.rows_y)}.")


if __name__ == "__main__":
    sys.exit(main(CycleGANStep))
