"""Train the learned mouth (``expr_models.models.mouth_inpainter``) without pairs: every real face's own mouth is
hidden and rebuilt from the rest of its mouth window and its own lip shape.

    python -m train.tools.cache_meshes --sets fei london jaffe genki4k
    python -m train.tools.prepare_mouths                                   # prepared/mouths
    python -m train.mouth_inpainter --data prepared/mouths --output-dir runs/mouth --cpu --base-channels 16 \
        --residual-blocks 3 --max-steps 4000 --mixed-precision bf16 --channels-last      # the committed one

Each example: a 96 x 128 mouth window; the hole is its inner-lip polygon and line grown by a random margin (2-8 px;
the editor uses ``hole_margin``, 2 by default: a wider hole redraws more of the lips, softer than the photo), so the
network sees closed mouths (a band around the seam: draw lips meeting) and open ones (draw teeth and the cavity that
fit the opening), and holes larger than the mouth. Mirrored half the time, with mild colour jitter; a sixth are made
grey (FEI and JAFFE are grey, and grey photos are edited). Open mouths are rarer than closed ones, and the London
Set's are the sharpest: open mouths (inner-lip gap > 0.06 eye distances) count twice, London faces four times.

Losses: L1 on the hole (mean over hole pixels), a small L1 on the rest of the frame (the prediction around the
hole must continue the skin it is blended into), and a hinge PatchGAN (spectral norm) that sees the composite with
the target lip maps. Adam (0.5, 0.999) at 2e-4, linear decay to zero. Validation: the hole L1 at the editor's margin
on the validation split.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.hf_argparser import HfArg

from expr_models.faces.mouth_frame import hole_mask, lip_maps
from expr_models.models.mouth_inpainter import MouthInpainterConfig, MouthInpainterModel
from train.args import make_config
from train.data import AugmentedDataset, load_prepared, require_columns
from train.inpainting import InpainterArguments, InpainterStep, masked_l1
from train.loop import main
from train.step import set_requires_grad

OPEN_GAP = 0.06  # inner-lip gap (eye distances) above which a mouth counts as open
REPEATS = {"london": 4}  # the sharpest colour teeth there are


class MouthWindows(AugmentedDataset):
    """Items ``{"frames", "holes", "maps"}`` (3 x H x W in [-1, 1], 1 x H x W, 3 x H x W) from a prepared mouths split;
    ``augment=False``: no flip, no jitter, the hole at ``margin`` (validation)."""

    def __init__(self, dataset, seed: int = 0, augment: bool = True, margin: float = 4.0,
                 margin_range: tuple[float, float] = (2.0, 8.0), repeat: bool = True):
        self.dataset, self.seed, self.augment = dataset, seed, augment
        self.margin, self.margin_range = margin, margin_range
        sources, gaps = list(dataset["dataset"]), list(dataset["gap"])
        self.rows = [row for row, (source, gap) in enumerate(zip(sources, gaps))
                     for _ in range((REPEATS.get(source, 1) * (2 if gap > OPEN_GAP else 1)) if repeat else 1)]
        self.sources = [sources[row] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        frames, points, margin, _ = self.window(index)
        return {"frames": frames, "holes": torch.from_numpy(hole_mask(points, margin))[None],
                "maps": torch.from_numpy(lip_maps(points))}

    def window(self, index: int, *more_points: np.ndarray) -> tuple[torch.Tensor, np.ndarray, float, list]:
        """Item ``index``'s augmented frame (3 x H x W in [-1, 1]), its points, its hole margin, and ``more_points``
        (other meshes in the same frame, e.g. an edit's target) mirrored with it."""
        row = self.dataset[self.rows[index]]
        frame = np.asarray(row["frame"], np.float32)
        points = np.asarray(row["points"], np.float64)
        more_points = [np.asarray(extra, np.float64) for extra in more_points]
        margin = self.margin
        if self.augment:
            generator = self.generator(index)
            draws = torch.rand(6, generator=generator).numpy()
            margin = self.margin_range[0] + draws[0] * (self.margin_range[1] - self.margin_range[0])
            if draws[1] < 0.5:
                frame = frame[:, ::-1]
                points = mirrored(points, frame.shape[1])
                more_points = [mirrored(extra, frame.shape[1]) for extra in more_points]
            frame = (frame - frame.mean()) * (0.85 + 0.3 * draws[2]) + frame.mean() * (0.85 + 0.3 * draws[3])
            if draws[4] < 1 / 6:
                frame = np.repeat((frame @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=2)
        frames = torch.from_numpy(np.ascontiguousarray(np.clip(frame, 0, 255))).permute(2, 0, 1) / 127.5 - 1.0
        return frames, points, margin, more_points


def mirrored(points: np.ndarray, width: int) -> np.ndarray:
    """Mesh points (frame pixels) of the left-right mirrored frame."""
    points = points.copy()
    points[:, 0] = width - 1 - points[:, 0]
    return points


@dataclass
class MouthInpainterArguments(InpainterArguments):
    """The learned mouth's training flags; its architecture flags come from ``MouthInpainterConfig``'s fields."""

    epochs: int = 20
    batch_size: int = 16
    lambda_gan: float = HfArg(default=0.05, help="weight of the generator's hinge adversarial loss")
    min_margin: float = HfArg(default=2.0, help="smallest hole margin (frame pixels) in training")
    max_margin: float = HfArg(default=8.0, help="largest hole margin in training")


class MouthInpainterStep(InpainterStep):
    """The inpainting U-Net and its PatchGAN on mouth windows."""

    name = "mouth_inpainter"
    arguments_class = MouthInpainterArguments
    config_class = MouthInpainterConfig
    config_exclude = ("with_discriminator", "frame_height", "frame_width", "mouth_width")

    def build(self) -> None:
        args = self.args
        self.config = make_config(MouthInpainterConfig, **vars(args.model), with_discriminator=True)
        self.model = MouthInpainterModel(self.config).to(self.device)
        train = load_prepared(args.data, args.split)
        require_columns(train, args.data, ("frame", "points", "gap", "dataset"))
        self.train_dataset = MouthWindows(train, args.seed, margin_range=(args.min_margin, args.max_margin))
        validation = load_prepared(args.data, args.eval_split, required=False)
        self.eval_dataset = (MouthWindows(validation, augment=False, margin=self.config.hole_margin, repeat=False)
                             if validation is not None else None)

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args = self.nets, self.args
        frames, holes, maps = self.images(batch["frames"]), batch["holes"], batch["maps"]
        set_requires_grad(nets.D, False)
        predicted = nets.G(frames, holes, maps)
        composite = frames * (1 - holes) + predicted * holes
        losses = {
            "hole_l1": masked_l1(predicted, frames, holes),
            "rest_l1": masked_l1(predicted, frames, 1 - holes) * args.lambda_rest,
            "gan": -nets.D(torch.cat([composite, maps], 1)).mean() * args.lambda_gan,
        }
        loss_g = sum(losses.values())
        self.update("generator", loss_g)
        set_requires_grad(nets.D, True)
        real = nets.D(torch.cat([frames, maps], 1))
        fake = nets.D(torch.cat([composite.detach(), maps], 1))
        loss_d = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        self.update("discriminator", loss_d)
        return {"generator": loss_g.detach(), **{k: v.detach() for k, v in losses.items()},
                "discriminator": loss_d.detach()}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Rows: the frame with its hole blanked | the redrawn frame | the real frame."""
        generator = self.unwrap(self.nets.G)
        frames, holes, maps = batch["frames"], batch["holes"], batch["maps"]
        predicted = generator(frames, holes, maps)
        return torch.stack([frames * (1 - holes), frames * (1 - holes) + predicted * holes, frames], 1).float()

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """The hole L1 (on [-1, 1]) at the editor's margin, over all validation faces."""
        generator = self.unwrap(self.nets.G)
        totals = []
        for batch in dataloader:
            predicted = generator(batch["frames"], batch["holes"], batch["maps"])
            error = ((predicted - batch["frames"]).abs() * batch["holes"]).sum((1, 2, 3))
            totals.append(torch.stack([error, batch["holes"].sum((1, 2, 3)) * 3], 1))
        totals = self.accelerator.gather_for_metrics(torch.cat(totals)).sum(0)
        return {"hole_l1": float(totals[0] / totals[1].clamp_min(1))}

    def training_data_description(self) -> str:
        return (f"Mouth windows of real faces (`{self.args.data}`, {self.args.split} split, "
                f"`train.tools.prepare_mouths`), each its own example with its own lip shape; per epoch (open mouths "
                f"twice, London four times): {self.examples_per_source()}.")


if __name__ == "__main__":
    sys.exit(main(MouthInpainterStep))
