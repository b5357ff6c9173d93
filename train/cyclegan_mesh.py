"""Train the mesh CycleGAN (neutral <-> happy): two generators that move a face's canonical 468-point mesh, two
discriminators that read canonical meshes. The editor warps the photo's own pixels to the moved mesh.

    python -m train.tools.cache_meshes                      # prepared/meshes/: every photo's face mesh
    python -m train.tools.prepare_meshes                    # prepared/mesh_dataset: a DatasetDict with the splits
    python -m train.cyclegan_mesh --data prepared/mesh_dataset --generator-type mesh --output-dir runs/cg_mesh \
        --cpu --max-steps 3000

Both generators start as the mesh-motion baseline (``--mesh-motion``, default ``checkpoints/mesh_motion``: its median
motions neutral -> happy and happy -> neutral become their priors, its mean mesh their canonical frame) and learn a
per-face gain on that motion and a small residual. Losses, in eye distances:
- ``paired``: L1 between G_xy(x) and the same person's real happy mesh (FEI, London, JAFFE training people), and
  G_yx(y) and their neutral one;
- ``gan``: LSGAN on meshes; the real happy meshes include GENKI-4K's smiles and FER2013's and CK+'s happy faces, the
  real neutral ones FER2013's neutral faces, so the amplitude a generator learns is that of real expressions;
- ``cycle``: G_yx(G_xy(x)) ~ x and G_xy(G_yx(y)) ~ y on every face (the study's cycle consistency).
Adam at lr 5e-4 with linear decay to zero (the study's schedule). Validation: on the validation people's pairs, the
median gain (the edit's motion projected on the real motion over its length) and cosine of each direction.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.hf_argparser import HfArg

from expr_models.models.cyclegan import CycleGANConfig, CycleGANModel
from train.args import ConfigError, make_config
from train.cyclegan import CycleGANArguments, CycleGANStep
from train.loop import main
from train.mesh_data import (MeshBatches, MeshGANArguments, check_mesh_arguments, gain_and_cosine, load_baseline, load_meshes,
                             load_pairs, mirror_permutation)
from train.step import set_requires_grad


@dataclass
class MeshCycleGANArguments(MeshGANArguments, CycleGANArguments):
    """The mesh CycleGAN's training flags."""

    lambda_cycle: float = HfArg(default=100.0, help="weight of the cycle-consistency L1 (eye distances)")
    lambda_identity: float = HfArg(default=0.0, help="unused: a mesh generator has no identity loss")
    lambda_gan: float = HfArg(default=1.0, help="weight of the generators' adversarial losses")
    pair_repeats: int = HfArg(default=20, help="an epoch shows every training pair this many times")
    pool_size: int = 0
    lr: float | None = HfArg(default=5e-4, help="Adam learning rate (the study's), decaying linearly to 0")


class MeshCycleGANStep(CycleGANStep):
    """Train a ``generator_type="mesh"`` CycleGAN on canonical meshes: paired, adversarial and cycle losses."""

    name = "cyclegan_mesh"
    arguments_class = MeshCycleGANArguments

    @classmethod
    def check_arguments(cls, args) -> None:
        check_mesh_arguments(args, "cyclegan_mesh")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(CycleGANConfig, **vars(args.model), with_discriminators=True)
        self.model = CycleGANModel(config)
        model = self.model
        baseline, mean_mesh = load_baseline(args.mesh_motion, model.generator_xy, model.generator_yx,
                                            model.discriminator_x, model.discriminator_y)
        x, y = config.domains
        with torch.no_grad():
            self.model.generator_xy.priors[0].copy_(torch.from_numpy(baseline.pair_motion(x, y)))
            self.model.generator_yx.priors[0].copy_(torch.from_numpy(baseline.pair_motion(y, x)))
        self.model.to(self.device)

        meshes, pairs = load_meshes(args.data, mean_mesh, args.split), load_pairs(args.data, mean_mesh, args.split)
        (x_source, x_target), (y_source, y_target) = pairs.of(x, y), pairs.of(y, x)
        count = min(len(x_source), len(y_source))
        if count == 0:
            raise ConfigError(f"no {x} <-> {y} pairs in the {args.split} split of --data {args.data}")
        self.counts = {"pairs": count, x: len(meshes.of(x)), y: len(meshes.of(y))}
        self.train_dataset = MeshBatches(
            {"x": x_source[:count], "x_target": x_target[:count], "y": y_source[:count], "y_target": y_target[:count]},
            {"ux": meshes.of(x), "uy": meshes.of(y)}, count * args.pair_repeats, args.seed,
            mirror_permutation(mean_mesh) if args.flip else None)
        validation = load_pairs(args.data, mean_mesh, args.eval_split)
        sources, targets, directions = [], [], []
        for direction, (source, target) in enumerate((self.config.domains, self.config.domains[::-1])):
            pair_sources, pair_targets = validation.of(source, target)
            sources.append(pair_sources)
            targets.append(pair_targets)
            directions.append(torch.full((len(pair_sources),), direction))
        self.eval_dataset = torch.utils.data.StackDataset(source=torch.cat(sources), target=torch.cat(targets),
                                                          direction=torch.cat(directions))
        self.pools, self.guide = {}, None

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args = self.nets, self.args
        x, y, count = batch["x"], batch["y"], len(batch["x"])
        all_x, all_y = torch.cat([x, batch["ux"]]), torch.cat([y, batch["uy"]])
        ones = all_x.new_ones(len(all_x), 1)

        set_requires_grad([nets.D_x, nets.D_y], False)
        fake_y, fake_x = nets.G_xy(all_x, ones), nets.G_yx(all_y, ones)
        losses = {
            "paired_xy": F.l1_loss(fake_y[:count], batch["x_target"]) * args.lambda_paired,
            "paired_yx": F.l1_loss(fake_x[:count], batch["y_target"]) * args.lambda_paired,
            "gan_xy": self.gan_loss(nets.D_y(fake_y), True) * args.lambda_gan,
            "gan_yx": self.gan_loss(nets.D_x(fake_x), True) * args.lambda_gan,
            "cycle_x": F.l1_loss(nets.G_yx(fake_y, ones), all_x) * args.lambda_cycle,
            "cycle_y": F.l1_loss(nets.G_xy(fake_x, ones), all_y) * args.lambda_cycle,
        }
        loss_g = sum(losses.values())
        self.update("generator", loss_g)
        set_requires_grad([nets.D_x, nets.D_y], True)

        loss_d_y = self.discriminator_loss(nets.D_y, all_y, fake_y.detach())
        loss_d_x = self.discriminator_loss(nets.D_x, all_x, fake_x.detach())
        self.update("discriminator", loss_d_x + loss_d_y)
        return {"generator": loss_g.detach(), **{key: value.detach() for key, value in losses.items()},
                "discriminator_x": loss_d_x.detach(), "discriminator_y": loss_d_y.detach()}

    def judged(self, meshes: torch.Tensor) -> torch.Tensor:
        return meshes

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """Median gain and cosine of each direction on the validation people's real pairs."""
        generators = (self.unwrap(self.nets.G_xy), self.unwrap(self.nets.G_yx))
        rows = []
        for batch in dataloader:
            sources, direction = batch["source"], batch["direction"]
            ones = sources.new_ones(len(sources), 1)
            edited = torch.where((direction == 0)[:, None, None], generators[0](sources, ones),
                                 generators[1](sources, ones))
            rows.append(torch.stack([*gain_and_cosine(edited, sources, batch["target"]), direction.float()], 1))
        rows = self.accelerator.gather_for_metrics(torch.cat(rows)).cpu()
        metrics = {}
        for direction, (source, target) in enumerate((self.config.domains, self.config.domains[::-1])):
            chosen = rows[rows[:, 2] == direction]
            metrics[f"gain_{source}_{target}"] = float(chosen[:, 0].median())
            metrics[f"cosine_{source}_{target}"] = float(chosen[:, 1].median())
        return metrics

    def training_data_description(self) -> str:
        x, y = self.config.domains
        return (f"Canonical MediaPipe face meshes (`train.tools.cache_meshes`, `{self.args.data}`) of the training "
                f"people: {self.counts['pairs']} {x} <-> {y} photo pairs (FEI, London Set, JAFFE) and, for the "
                f"discriminators, {self.counts[x]} {x} and {self.counts[y]} {y} meshes (those plus FER2013 train, "
                f"CK+ and GENKI-4K smiles). Priors and canonical frame: `{self.args.mesh_motion}`.")


if __name__ == "__main__":
    sys.exit(main(MeshCycleGANStep))
