"""The SA-GAN's appearance branch: fine-tune the learned mouth (``expr_models.models.mouth_inpainter``) with the
SA-GAN's own loss, on the edits the SA-GAN makes.

    python -m train.tools.cache_meshes --sets fei london jaffe genki4k     # prepared/meshes
    python -m train.mouth_sagan --data prepared/mouths --models checkpoints --output-dir runs/mouth_sagan --cpu \\
        --max-steps 1200 --raw-data ../shared/data                 # the committed checkpoints/sagan_mouth
    python -m train.tools.export_checkpoint runs/mouth_sagan/final checkpoints/sagan_mouth --fp16 --int8

The committed SA-GAN moves a face by its mesh (``generator_type="mesh"``) towards any of its seven expressions; the
warp moves the photo's own pixels, and the learned mouth draws what no pixel of the photo shows where the lips part or
close. Here the SA-GAN's loss trains that mouth, on the SA-GAN's edits:

1. each training window (London, FEI, JAFFE, GENKI-4K) gets, per expression other than its own, the target lips of
   the SA-GAN's frozen mesh generator from its own expression, with the editor's ``target_rules``, in the window's
   frame; each item takes one of them at random;
2. the edit (``GANMouthStep.edit``, shared with ``train/mouth_cycle.py``): the window warped to the target mesh, and
   the target inner lips plus the editor's margin redrawn by the mouth.

The study's softmax cross-entropy, as ``train/sagan.py`` applies it to whole faces: a PatchGAN with a class head of
7 + 1 logits per patch (the expressions, and "generated") reads each window with its lip maps, in grey (JAFFE's
windows, the only ones of five of the seven expressions, are grey: in colour the head would learn that grey means
anger) and by default at half resolution (the warp's resampling is no cue). It is penalised for a wrong expression on
real windows and for anything but "generated" on edits; the mouth, for the head reading its edit as anything but the
target. Beside it the inpainting losses of ``train/mouth_inpainter.py`` on the window's own lips (hole L1, a little L1
around it), so it stays a mouth that fits the lips it is given. The mouth starts from ``--models``' ``mouth_inpainter``
(or ``--init-from``); for ``--d-warmup-steps`` only the class head learns. Validation: the hole L1 at the editor's
margin on the faces' own lips (the inpainter's measure), and the share of edits the head reads as their target.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers.hf_argparser import HfArg

from expr_models.faces.mouth_frame import MouthFrame, hole_mask, lip_maps
from expr_models.methods.mesh import generator_points, target_rules
from expr_models.models.layers import PatchDiscriminator
from expr_models.models.mouth_inpainter import MAP_CHANNELS, SAGANMouthModel
from train.inpainting import masked_l1
from train.loop import main
from train.mouth_cycle import GANMouthArguments, GANMouthStep, sampling_grid, window_domains
from train.mouth_inpainter import MouthWindows
from train.step import OptimizerSpec, set_requires_grad

GREY = (0.299, 0.587, 0.114)  # luminance weights of RGB


def class_targets(dataset, classes: np.ndarray, meshes: dict[str, np.ndarray], sagan, exemplars) -> np.ndarray:
    """Per window and expression of the SA-GAN's ``class_names``, where its mesh generator sends the window's mesh
    from the window's own expression (468 x 2, the window's frame pixels), as the editor does (``generator_points``
    and ``target_rules``); NaN for the window's own expression and for windows of no known expression."""
    names = tuple(sagan.config.class_names)
    targets = np.full((len(dataset), len(names), 468, 2), np.nan, np.float32)
    for row, (photo_id, own) in enumerate(zip(dataset["id"], classes)):
        if own < 0:
            continue
        points = meshes[photo_id].astype(np.float64)
        frame = MouthFrame.from_points(points)
        for index, target in enumerate(names):
            if index == own:
                continue
            moved = generator_points(sagan, points, lambda canonical: sagan.move_mesh(canonical, target, names[own]))
            targets[row, index] = frame.to_frame(target_rules(points, moved, target, {}, exemplars))
    return targets


class MouthClassEdits(MouthWindows):
    """``MouthWindows``' items (the window, its own hole and lip maps) plus an SA-GAN edit of it to another expression:
    ``edit_grids`` (the warp to the target mesh), ``edit_holes`` and ``edit_maps`` (the target lips, at
    ``edit_margin``), ``classes`` (the window's expression) and ``targets`` (the edit's), drawn at random per item
    (or, without augmentation, in turn). Windows of no known expression are left out."""

    def __init__(self, dataset, targets: np.ndarray, classes: np.ndarray, edit_margin: float, **kwargs):
        super().__init__(dataset, **kwargs)
        self.targets, self.classes, self.edit_margin = targets, classes, edit_margin
        kept = [(row, source) for row, source in zip(self.rows, self.sources) if classes[row] >= 0]
        self.rows, self.sources = [row for row, _ in kept], [source for _, source in kept]

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        choices = np.flatnonzero(~np.isnan(self.targets[row, :, 0, 0]))
        pick = int(torch.randint(len(choices), (1,), generator=self.generator(index, salt=1))) if self.augment \
            else index % len(choices)
        goal = int(choices[pick])
        frames, points, margin, (target,) = self.window(index, self.targets[row, goal])
        return {"frames": frames, "holes": torch.from_numpy(hole_mask(points, margin))[None],
                "maps": torch.from_numpy(lip_maps(points)),
                "edit_grids": sampling_grid(points, target),
                "edit_holes": torch.from_numpy(hole_mask(target, self.edit_margin))[None],
                "edit_maps": torch.from_numpy(lip_maps(target)),
                "classes": int(self.classes[row]), "targets": goal}


@dataclass
class MouthSAGANArguments(GANMouthArguments):
    """The mouth's fine-tuning by the SA-GAN's loss."""

    lambda_class: float = HfArg(default=0.05, help="weight of the mouth's class loss (the head reading the edit as "
                                                   "its target)")


class MouthSAGANStep(GANMouthStep):
    """The learned mouth as the SA-GAN's appearance branch, judged by a PatchGAN class head (the study's loss)."""

    name = "mouth_sagan"
    arguments_class = MouthSAGANArguments
    gan = "sagan"

    def build(self) -> None:
        args = self.args
        sagan, exemplars = self.load_parts(SAGANMouthModel)
        self.class_names = tuple(sagan.config.class_names)
        # The study's head: one logit per expression and one for "generated", per patch, on grey windows + lip maps.
        self.head = PatchDiscriminator(1 + MAP_CHANNELS, self.config.discriminator_channels, 3, "none", spectral=True,
                                       out_channels=len(self.class_names) + 1).to(self.device)
        self.model.to(self.device)

        def edits(dataset, meshes: dict[str, np.ndarray], options: dict) -> MouthClassEdits:
            classes = window_domains(list(dataset["id"]), Path(args.raw_data), self.class_names)
            targets = class_targets(dataset, classes, meshes, sagan, exemplars)
            return MouthClassEdits(dataset, targets, classes, self.config.hole_margin, **options)

        self.window_datasets(edits)

    def trainable_modules(self):
        return {"G": self.model.generator, "D": self.head}

    def make_optimizers(self):
        args = self.args
        adam = dict(lr=args.lr, betas=(args.beta1, args.beta2))
        return {"generator": OptimizerSpec(torch.optim.Adam(self.model.generator.parameters(), **adam),
                                           schedule="linear", ema=True),
                "discriminator": OptimizerSpec(torch.optim.Adam(self.head.parameters(), **adam), schedule="linear")}

    def class_logits(self, head, images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The head's N x (K + 1) x h x w logits on windows (in grey) with their lip maps."""
        grey = (images * images.new_tensor(GREY)[None, :, None, None]).sum(1, keepdim=True)
        windows = torch.cat([grey, maps.to(images.dtype)], 1)
        factor = self.args.judge_downsample
        return head(F.avg_pool2d(windows, factor) if factor > 1 else windows)

    @staticmethod
    def patch_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy of every patch's logits against its window's label."""
        return F.cross_entropy(logits.float(), labels[:, None, None].expand(-1, *logits.shape[2:]))

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args = self.nets, self.args
        frames, holes, maps = self.images(batch["frames"]), batch["holes"], batch["maps"]
        generated = torch.full_like(batch["classes"], len(self.class_names))
        logs = {}
        if step_index < args.d_warmup_steps:  # the head alone learns: the edits only, without a graph
            with torch.no_grad():
                edits = self.edit(nets.G, batch)
        else:
            edits = self.edit(nets.G, batch)
            set_requires_grad([nets.D], False)
            predicted = nets.G(frames, holes, maps)
            losses = {"hole_l1": masked_l1(predicted, frames, holes),
                      "rest_l1": masked_l1(predicted, frames, 1 - holes) * args.lambda_rest,
                      "class": self.patch_cross_entropy(self.class_logits(nets.D, edits, batch["edit_maps"]),
                                                        batch["targets"]) * args.lambda_class}
            loss_g = sum(losses.values())
            self.update("generator", loss_g)
            logs = {"generator": loss_g.detach(), **{k: v.detach() for k, v in losses.items()}}
        set_requires_grad([nets.D], True)
        losses_d = {"d_real_class": self.patch_cross_entropy(self.class_logits(nets.D, frames, maps),
                                                             batch["classes"]),
                    "d_generated": self.patch_cross_entropy(self.class_logits(nets.D, edits.detach(),
                                                                              batch["edit_maps"]), generated)}
        loss_d = sum(losses_d.values())
        self.update("discriminator", loss_d)
        return {**logs, "discriminator": loss_d.detach(), **{k: v.detach() for k, v in losses_d.items()}}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Rows: the window | the SA-GAN's edit of it (its target in turn)."""
        edits = self.edit(self.unwrap(self.nets.G), batch)
        return torch.stack([batch["frames"], edits], 1).float()

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """The hole L1 (on [-1, 1]) at the editor's margin on the faces' own lips, and the share of the edits' patches
        the head reads as their target."""
        generator, head = self.unwrap(self.nets.G), self.unwrap(self.nets.D)
        totals = []
        for batch in dataloader:
            predicted = generator(batch["frames"], batch["holes"], batch["maps"])
            error = ((predicted - batch["frames"]).abs() * batch["holes"]).sum((1, 2, 3))
            logits = self.class_logits(head, self.edit(generator, batch), batch["edit_maps"])
            read = (logits.argmax(1) == batch["targets"][:, None, None]).float().mean((1, 2))
            totals.append(torch.stack([error, batch["holes"].sum((1, 2, 3)) * 3, read, torch.ones_like(read)], 1))
        totals = self.accelerator.gather_for_metrics(torch.cat(totals)).sum(0)
        return {"hole_l1": float(totals[0] / totals[1].clamp_min(1)),
                "edits_read_as_target": float(totals[2] / totals[3].clamp_min(1))}

    def training_data_description(self) -> str:
        return (f"Mouth windows of real faces (`{self.args.data}`, {self.args.split} split) of known expression, each "
                f"edited by the committed SA-GAN's mesh generator towards another of its expressions; per epoch: "
                f"{self.examples_per_source()}.")


if __name__ == "__main__":
    sys.exit(main(MouthSAGANStep))
