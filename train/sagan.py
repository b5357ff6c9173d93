"""Train the class-conditional SA-GAN on a prepared expression dataset (`expressions`: 7 classes; or `paper`).

    python train/sagan.py --data prepared/expressions --resolution 64              # the study's softmax-CE objective
    python train/sagan.py --data prepared/expressions --resolution 64 --objective wgan_gp  # + aux classifier, n_critic 5
    python train/sagan.py --data prepared/paper --classes happy neutral
    accelerate launch --config_file train/configs/multi_gpu.yaml train/sagan.py --data prepared/expressions \
        --resolution 64

The `expressions` recipe is prepared at 64 px (`--crop-size` of train.tools.prepare_data); train at that resolution, or
prepare it at 128. ``--resolution`` must be divisible by 2**discriminator_layers (32 with the default 5 layers).

Objectives (``--objective``):

- ``softmax_ce`` (the study's): the discriminator's class head has num_classes + 1 logits, the last meaning
  "generated". D minimises CE(D(real), true class) + CE(D(fake), generated); G minimises CE(D(fake), target class).
- ``wgan_gp``: a Wasserstein critic with gradient penalty, D stepping every iteration and G every ``n_critic``, plus
  StarGAN's auxiliary classifier on the first num_classes logits (real images for D, fakes for G).

``--expression-guide`` adds a frozen, independent classifier's cross-entropy on the fakes (train/expression_guide.py).
Both add StarGAN's reconstruction loss G(G(x, target), source) ~ x and, with the attention-mask generator, an L1 on the
masks. Target classes are drawn uniformly from the classes other than the source's. TTUR learning rates (G 1e-4,
D 4e-4) with Adam betas (0.0, 0.9), as in SAGAN.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.hf_argparser import HfArg

from expr_models.labels import EXPRESSIONS
from expr_models.models.sagan import SAGANConfig, SAGANModel
from train.args import ConfigError, TrainingArguments, make_config
from train.data import FaceCrops, describe_rows, expression_rows
from train.expression_guide import ExpressionGuideArguments, check_guide_arguments, load_guide_for
from train.loop import main
from train.step import OptimizerSpec, TrainingStep, set_requires_grad


@dataclass
class SAGANArguments(ExpressionGuideArguments, TrainingArguments):
    """The SA-GAN's training flags; its architecture flags come from ``SAGANConfig``'s fields."""

    classes: list[str] = field(default_factory=lambda: list(EXPRESSIONS),
                               metadata={"help": "the expressions to learn, in label order (default: the study's 7)"})
    lambda_class: float = HfArg(default=1.0, help="weight of the class loss on G (both objectives) and of the "
                                                  "real-class loss on D (WGAN-GP)")
    lambda_reconstruction: float = HfArg(default=10.0, help="StarGAN's cycle weight: G(G(x, target), source) should "
                                                            "give x back")
    lambda_gradient_penalty: float = HfArg(default=10.0, help="WGAN-GP weight")
    lambda_mask: float = HfArg(default=0.01, help="L1 weight on the attention mask, keeping edits local")
    n_critic: int | None = HfArg(default=None, help="D steps per G step (default: 1 for softmax_ce, 5 for wgan_gp)")
    lr_g: float = HfArg(default=1e-4, help="generator LR (TTUR)")
    lr_d: float = HfArg(default=4e-4, help="discriminator LR (TTUR)")
    beta1: float = 0.0
    beta2: float = 0.9
    lr_schedule: Literal["constant", "linear", "reference"] = HfArg(
        default="constant", help="constant, linear decay to 0, or reference (constant, then linear decay over the "
                                 "second half)")
    flip: bool = HfArg(default=True, help="random horizontal flips (--no-flip: none)")


class SAGANStep(TrainingStep):
    """Train the conditional SA-GAN of expr_models (generator + spectral-norm discriminator with a class head)."""

    name = "sagan"
    arguments_class = SAGANArguments
    config_class = SAGANConfig
    config_exclude = ("class_names", "with_discriminator")  # --classes; training builds D
    drop_last = True

    @classmethod
    def check_arguments(cls, args) -> None:
        if args.n_critic is None:
            args.n_critic = 5 if args.model.objective == "wgan_gp" else 1
        if args.n_critic < 1:
            raise ConfigError(f"--n-critic must be at least 1, got {args.n_critic}")
        if args.lr_g <= 0 or args.lr_d <= 0:
            raise ConfigError("--lr-g and --lr-d must be positive")
        check_guide_arguments(args)
        if args.compile and args.model.objective == "wgan_gp":
            raise ConfigError("--compile cannot differentiate twice, which the WGAN-GP gradient penalty needs; "
                              "drop --compile or use --objective softmax_ce")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(SAGANConfig, **vars(args.model), class_names=list(args.classes),
                                           with_discriminator=True)
        self.model = SAGANModel(config).to(self.device)
        if config.objective == "softmax_ce":
            # The critic head is the WGAN-GP's; unused here, it must not be trainable (DDP expects every trainable
            # parameter to get a gradient).
            set_requires_grad(self.model.discriminator.critic, False)
        self.rows = expression_rows(args.data, args.split, config.class_names)
        missing = [name for name, count in self.rows.counts.items() if count == 0]
        if missing:
            raise ConfigError(f"--data {args.data} ({args.split} split) has no images of {', '.join(missing)}; "
                              f"choose --classes among those it has")
        self.train_dataset = FaceCrops([self.rows], config.resolution, config.in_channels, seed=args.seed,
                                       flip=args.flip)
        self.guide = load_guide_for(args, config.class_names, self.device)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"G": self.model.generator, "D": self.model.discriminator}

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        args = self.args
        adam = dict(betas=(args.beta1, args.beta2), fused=self.device.type == "cuda")
        d_parameters = [p for p in self.model.discriminator.parameters() if p.requires_grad]
        return {
            "discriminator": OptimizerSpec(torch.optim.Adam(d_parameters, lr=args.lr_d, **adam),
                                           schedule=args.lr_schedule),
            "generator": OptimizerSpec(torch.optim.Adam(self.model.generator.parameters(), lr=args.lr_g, **adam),
                                       every=args.n_critic, schedule=args.lr_schedule, ema=True),
        }

    def ema_module(self) -> nn.Module:
        return self.model.generator

    # --- one step -------------------------------------------------------------------------------------------------
    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, config, args = self.nets, self.config, self.args
        num_classes = config.num_classes
        real = self.images(batch["pixel_values"])
        source = batch["labels"].long()
        # A uniformly drawn target among the other classes.
        target = (source + torch.randint(1, num_classes, source.shape, device=source.device)) % num_classes
        source_maps = F.one_hot(source, num_classes).float()
        target_maps = F.one_hot(target, num_classes).float()
        losses: dict[str, torch.Tensor] = {}

        # Discriminator, every step.
        with torch.no_grad():
            fake = nets.G(real, target_maps)
        out_real, out_fake = nets.D(real), nets.D(fake)
        if config.objective == "softmax_ce":
            generated = torch.full_like(source, num_classes)  # the extra "generated" class
            losses["d_real_class"] = F.cross_entropy(out_real.class_logits.float(), source)
            losses["d_fake_generated"] = F.cross_entropy(out_fake.class_logits.float(), generated)
            loss_d = losses["d_real_class"] + losses["d_fake_generated"]
        else:
            losses["d_wasserstein"] = out_fake.critic.float().mean() - out_real.critic.float().mean()
            losses["d_gradient_penalty"] = self.gradient_penalty(real, fake)
            losses["d_class"] = F.cross_entropy(out_real.class_logits[:, :num_classes].float(), source)
            loss_d = (losses["d_wasserstein"] + args.lambda_gradient_penalty * losses["d_gradient_penalty"]
                      + args.lambda_class * losses["d_class"])
        self.update("discriminator", loss_d)
        losses["discriminator"] = loss_d

        # Generator, every n_critic steps.
        if (step_index + 1) % args.n_critic == 0:
            set_requires_grad(nets.D, False)
            fake, mask = nets.G(real, target_maps, return_mask=True)
            out_fake = nets.D(fake)
            if config.objective == "softmax_ce":
                losses["g_class"] = F.cross_entropy(out_fake.class_logits.float(), target)
                loss_g = args.lambda_class * losses["g_class"]
            else:
                losses["g_adversarial"] = -out_fake.critic.float().mean()
                losses["g_class"] = F.cross_entropy(out_fake.class_logits[:, :num_classes].float(), target)
                loss_g = losses["g_adversarial"] + args.lambda_class * losses["g_class"]
            if self.guide is not None:
                losses["g_guide"] = self.guide.loss(fake, target, config.class_names)
                loss_g = loss_g + args.lambda_expression * losses["g_guide"]
            reconstructed, mask_back = nets.G(fake, source_maps, return_mask=True)
            losses["reconstruction"] = F.l1_loss(reconstructed, real)
            loss_g = loss_g + args.lambda_reconstruction * losses["reconstruction"]
            if config.attention_mask and args.lambda_mask > 0:
                losses["mask"] = mask.float().mean() + mask_back.float().mean()
                loss_g = loss_g + args.lambda_mask * losses["mask"]
            self.update("generator", loss_g)
            if config.objective == "softmax_ce":  # the critic head stays frozen
                set_requires_grad(self.unwrap(nets.D).body, True)
                set_requires_grad(self.unwrap(nets.D).classifier, True)
            else:
                set_requires_grad(nets.D, True)
            losses["generator"] = loss_g
        return {key: value.detach() for key, value in losses.items()}

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """(||grad D(x_hat)|| - 1)^2 on random interpolates of real and generated images (Gulrajani et al.)."""
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
        critic = self.nets.D(mixed).critic
        (gradient,) = torch.autograd.grad(critic.float().sum(), mixed, create_graph=True)
        return ((gradient.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

    # --- reporting ------------------------------------------------------------------------------------------------
    def sample_batch(self):
        args, config = self.args, self.config
        held_out = expression_rows(args.data, args.eval_split, config.class_names, required=False)
        source = held_out if held_out is not None and held_out.rows else self.rows
        crops = FaceCrops([source], config.resolution, config.in_channels, flip=False)
        # Spread the samples over the classes: the first image of each class in turn.
        by_class: dict[int, list[int]] = {}
        for index in range(len(crops)):
            by_class.setdefault(crops.label(index), []).append(index)
        picked, round_ = [], 0
        while len(picked) < min(args.num_samples, len(crops)):
            for label in sorted(by_class):
                if round_ < len(by_class[label]) and len(picked) < args.num_samples:
                    picked.append(by_class[label][round_])
            round_ += 1
        labels = torch.tensor([crops.label(i) for i in picked])
        return {"pixel_values": torch.stack([crops.load(i) for i in picked]), "labels": labels}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Per sample: input | G(input, another class) | G(that, source class); targets cycle through the classes."""
        generator = self.unwrap(self.nets.G)
        num_classes = self.config.num_classes
        real, source = self.images(batch["pixel_values"]), batch["labels"].long()
        offsets = 1 + torch.arange(len(source), device=source.device) % (num_classes - 1)
        target = (source + offsets) % num_classes
        fake = generator(real, F.one_hot(target, num_classes).float())
        back = generator(fake, F.one_hot(source, num_classes).float())
        return torch.stack([real, fake, back], dim=1).float()

    def final_model(self):
        return self.model.without_discriminator()

    def training_data_description(self) -> str:
        return f"Face crops of {len(self.config.class_names)} expressions: " \
               f"{describe_rows(self.args.data, self.args.split, self.rows)}."


if __name__ == "__main__":
    sys.exit(main(SAGANStep))
