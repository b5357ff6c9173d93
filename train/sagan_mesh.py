"""Train the mesh SA-GAN: a class-conditional generator that moves a face's canonical mesh to any of the seven
expressions, judged by a discriminator with the study's class head on real meshes of every expression.

    python -m train.tools.prepare_meshes                    # prepared/mesh_dataset (see train/mesh_data.py)
    python -m train.sagan_mesh --data prepared/mesh_dataset --generator-type mesh --output-dir runs/sagan_mesh \\
        --cpu --max-steps 3000

The generator starts as the mesh-motion baseline (``--mesh-motion``): its prior for target ``t`` from source ``s`` is
the median motion neutral -> t minus neutral -> s, scaled by a learned per-face gain, plus a bounded residual.
Losses, in eye distances where they are distances:
- ``paired``: L1 between G(source mesh, s -> t) and the same person's real mesh of ``t`` (JAFFE's seven
  expressions, FEI and London neutral <-> happy; training people only);
- the study's softmax cross-entropy (``--objective softmax_ce``): D's class head has 7 + 1 logits, the last meaning
  "generated"; D minimises CE(D(real), its class) + CE(D(fake), generated), G minimises CE(D(fake), target). The real
  meshes of each class (FER2013, CK+, JAFFE, FEI, London, GENKI-4K smiles) are drawn class-balanced;
- ``reconstruction`` (StarGAN): G(G(x, s -> t), t -> s) ~ x.
TTUR learning rates (G 1e-4, D 4e-4), Adam betas (0, 0.9), as in SAGAN. Validation: per target, the median gain and
cosine of the edit's motion against the real motion on the validation people's pairs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.hf_argparser import HfArg

from expr_models.labels import EXPRESSIONS
from expr_models.models.sagan import SAGANConfig, SAGANModel
from train.args import ConfigError, make_config
from train.loop import main
from train.mesh_data import (MeshBatches, MeshGANArguments, check_mesh_arguments, gain_and_cosine, load_baseline, load_meshes,
                             load_pairs, mirror_permutation)
from train.sagan import SAGANArguments, SAGANStep
from train.step import set_requires_grad


@dataclass
class MeshSAGANArguments(MeshGANArguments, SAGANArguments):
    """The mesh SA-GAN's training flags."""

    lambda_reconstruction: float = HfArg(default=100.0, help="StarGAN's cycle weight (eye distances)")
    flip: bool = HfArg(default=True, help="mirror meshes at random (--no-flip: never)")


class MeshSAGANStep(SAGANStep):
    """Train a ``generator_type="mesh"`` SA-GAN on canonical meshes."""

    name = "sagan_mesh"
    arguments_class = MeshSAGANArguments

    @classmethod
    def check_arguments(cls, args) -> None:
        check_mesh_arguments(args, "sagan_mesh")
        if args.model.objective != "softmax_ce":
            raise ConfigError("train.sagan_mesh trains the study's softmax_ce objective")
        args.n_critic = 1

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(SAGANConfig, **vars(args.model), class_names=list(EXPRESSIONS),
                                           with_discriminator=True)
        self.model = SAGANModel(config)
        baseline, mean_mesh = load_baseline(args.mesh_motion, self.model.generator, self.model.discriminator)
        with torch.no_grad():
            for index, name in enumerate(config.class_names):
                if name != "neutral":
                    self.model.generator.priors[index].copy_(torch.from_numpy(baseline.pair_motion("neutral", name)))
        self.model.to(self.device)

        meshes, pairs = load_meshes(args.data, mean_mesh, args.split), load_pairs(args.data, mean_mesh, args.split)
        reals = {f"real_{index}": meshes.of(name) for index, name in enumerate(config.class_names)}
        if any(len(values) == 0 for values in reals.values()):
            raise ConfigError(f"--data {args.data}: some class has no real mesh in the {args.split} split")
        self.counts = {name: len(reals[f"real_{index}"]) for index, name in enumerate(config.class_names)}
        self.pair_count = len(pairs.sources)
        self.train_dataset = MeshBatches(
            {"source": pairs.sources, "target": pairs.targets, "source_label": pairs.source_labels,
             "target_label": pairs.target_labels}, reals, self.pair_count * args.pair_repeats, args.seed,
            mirror_permutation(mean_mesh) if args.flip else None)
        validation = load_pairs(args.data, mean_mesh, args.eval_split)
        self.eval_dataset = torch.utils.data.StackDataset(
            source=validation.sources, target=validation.targets, source_label=validation.source_labels,
            target_label=validation.target_labels)
        self.guide = None

    def conditions(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        num_classes = self.config.num_classes
        return F.one_hot(target, num_classes).float() - F.one_hot(source, num_classes).float()

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args, num_classes = self.nets, self.args, self.config.num_classes
        sources, targets = batch["source"], batch["target"]
        source_labels, target_labels = batch["source_label"].long(), batch["target_label"].long()
        real = torch.cat([batch[f"real_{index}"] for index in range(num_classes)])
        real_labels = torch.arange(num_classes, device=real.device).repeat_interleave(len(sources))
        # The real meshes go to a uniformly drawn other class, as in the image SA-GAN.
        real_targets = (real_labels + torch.randint(1, num_classes, real_labels.shape, device=real.device)) % num_classes
        inputs = torch.cat([sources, real])
        input_labels, goals = torch.cat([source_labels, real_labels]), torch.cat([target_labels, real_targets])

        with torch.no_grad():
            fake = nets.G(inputs, self.conditions(goals, input_labels))
        generated = torch.full((len(fake),), num_classes, device=fake.device)
        losses = {"d_real_class": F.cross_entropy(nets.D(real).class_logits.float(), real_labels),
                  "d_fake_generated": F.cross_entropy(nets.D(fake).class_logits.float(), generated)}
        loss_d = losses["d_real_class"] + losses["d_fake_generated"]
        self.update("discriminator", loss_d)

        set_requires_grad(nets.D, False)
        fake = nets.G(inputs, self.conditions(goals, input_labels))
        losses["g_class"] = F.cross_entropy(nets.D(fake).class_logits.float(), goals) * args.lambda_class
        losses["paired"] = F.l1_loss(fake[:len(sources)], targets) * args.lambda_paired
        reconstructed = nets.G(fake, self.conditions(input_labels, goals))
        losses["reconstruction"] = F.l1_loss(reconstructed, inputs) * args.lambda_reconstruction
        loss_g = losses["g_class"] + losses["paired"] + losses["reconstruction"]
        self.update("generator", loss_g)
        set_requires_grad(nets.D, True)
        return {"discriminator": loss_d.detach(), "generator": loss_g.detach(),
                **{key: value.detach() for key, value in losses.items()}}

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """Per target expression: the median gain and cosine on the validation people's real pairs."""
        generator = self.unwrap(self.nets.G)
        rows = []
        for batch in dataloader:
            source_labels, target_labels = batch["source_label"].long(), batch["target_label"].long()
            edited = generator(batch["source"], self.conditions(target_labels, source_labels))
            gain, cosine = gain_and_cosine(edited, batch["source"], batch["target"])
            rows.append(torch.stack([gain, cosine, target_labels.float()], 1))
        rows = self.accelerator.gather_for_metrics(torch.cat(rows)).cpu()
        metrics = {}
        for index, name in enumerate(self.config.class_names):
            chosen = rows[rows[:, 2] == index]
            if len(chosen):
                metrics[f"gain_{name}"] = float(chosen[:, 0].median())
                metrics[f"cosine_{name}"] = float(chosen[:, 1].median())
        return metrics

    def sample_batch(self):
        return None

    def training_data_description(self) -> str:
        reals = ", ".join(f"{name} {count}" for name, count in self.counts.items())
        return (f"Canonical MediaPipe face meshes (`train.tools.prepare_meshes`, `{self.args.data}`) of the training "
                f"people: {self.pair_count} photo pairs of one person (JAFFE, FEI, London Set) and, for the "
                f"discriminator, real meshes per class ({reals}; FER2013 train, CK+, JAFFE, FEI, London, GENKI-4K "
                f"smiles). Priors and canonical frame: `{self.args.mesh_motion}`.")


if __name__ == "__main__":
    sys.exit(main(MeshSAGANStep))
