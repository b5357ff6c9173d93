"""Train the learned brows (``expr_models.models.brow_inpainter``) without pairs: every labelled real face's upper
face is hidden and redrawn, for its own label (against the picture) and for a random other one (against the
discriminator). ``--region lower_face`` trains the learned lower face (``LowerFaceInpainterModel``: the cheeks, folds,
lips and chin) the same way, on ``prepare_brows --region lower_face``'s windows (README, "The learned lower face");
``--region eyes`` the learned eyes (``EyesInpainterModel``: the eyes, their lids and the skin up to the brows) on the
brows' own windows (README, "The learned eyes").

    python -m train.tools.cache_meshes --sets fer2013_train ckplus48 jaffe fei london
    python -m train.tools.prepare_brows                                       # prepared/brows
    python -m train.brow_inpainter --data prepared/brows --output-dir runs/brows --cpu --max-steps 6500 \
        --mixed-precision bf16 --channels-last --checkpointing-steps 500 --resume latest
    python -m train.tools.export_checkpoint runs/brows/final checkpoints/brow_inpainter --fp16 --int8

The committed checkpoint (27 min on the 2-core CPU) ran its first 2,000 steps with ``--lambda-class 0.25
--lambda-gan 0.05 --lambda-keep 0 --stop-after-steps 2000`` (the class head alone for 1,000 of them); by then its
drawings for disgust and surprise were white bands and dots, which fooled the class head and nobody else, so it went
on from step 2,000 with the defaults above (a weaker class loss, a stronger critic, and the least change:
``--lambda-keep``).

Each example: a 40 x 56 grey brow window; the hole is its brows, glabella and a band of forehead grown by a random
margin (1-4 px; the editor uses ``hole_margin``). Mirrored half the time, with mild brightness and contrast jitter.
Disgust is FER2013's rarest class (515 faces against 3,000-6,600): its faces count four times; the posed sets (CK+,
JAFFE, FEI, London), whose labels are surer, twice.

Losses: the generator's L1 on the hole (mean over hole pixels) for the face's own label and a small L1 on the rest of
the window (what surrounds the hole must continue the skin it is blended into); for a random other label, an L1
towards the face's own upper face (``--lambda-keep``: the least change that reads as the label); for both, a hinge
PatchGAN critic and the class head's softmax cross-entropy towards that label. The discriminator's
class head learns the real faces' labels only (AC-GAN; the paper's extra "generated" class left the generator deaf to
the label: ``models/brow_inpainter.py``), alone for the first ``--class-warmup-steps``. Adam (0.5, 0.999) at 2e-4,
linear decay to zero.
Validation: the hole L1 at the editor's margin for the face's own label, and the share of redrawn faces the
discriminator's class head reads as the label they were drawn for, own and random.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.hf_argparser import HfArg

from expr_models.faces.inpaint_regions import REGIONS
from expr_models.models.brow_inpainter import INPAINTER_CLASSES, BrowInpainterConfig
from train.args import ConfigError, make_config
from train.data import AugmentedDataset, load_prepared, require_columns
from train.inpainting import InpainterArguments, InpainterStep, masked_l1
from train.loop import main
from train.step import set_requires_grad

REPEATS = {"disgust": 4}          # by expression: FER2013's rarest class
POSED_REPEATS = {"ckplus": 2, "jaffe": 2, "fei": 2, "london": 2}  # by dataset: surer labels


class BrowWindows(AugmentedDataset):
    """Items ``{"windows", "holes", "maps", "labels", "other_labels"}`` (1 x H x W in [-1, 1], 1 x H x W,
    2 x H x W, the label, a random other label) from a prepared brows split; ``augment=False``: no flip, no jitter,
    the hole at ``margin``, the other label fixed by the index (validation)."""

    def __init__(self, dataset, num_classes: int, seed: int = 0, augment: bool = True, margin: float = 2.0,
                 margin_range: tuple[float, float] = (1.0, 4.0), repeat: bool = True, region: str = "upper_face"):
        self.dataset, self.num_classes, self.seed, self.augment = dataset, num_classes, seed, augment
        self.region = REGIONS[region]
        self.margin, self.margin_range = margin, margin_range
        names = dataset.features["expression"].names
        expressions, sources = list(dataset["expression"]), list(dataset["dataset"])
        self.rows = [row for row, (label, source) in enumerate(zip(expressions, sources))
                     for _ in range(REPEATS.get(names[label], 1) * POSED_REPEATS.get(source, 1) if repeat else 1)]
        self.sources = [sources[row] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[self.rows[index]]
        window = np.asarray(row["frame"].convert("L"), np.float32)
        points = np.asarray(row["points"], np.float64)
        margin, offset = self.margin, 1 + index % (self.num_classes - 1)
        if self.augment:
            draws = torch.rand(5, generator=self.generator(index)).numpy()
            margin = self.margin_range[0] + draws[0] * (self.margin_range[1] - self.margin_range[0])
            if draws[1] < 0.5:
                window = window[:, ::-1]
                points = points.copy()
                points[:, 0] = window.shape[1] - 1 - points[:, 0]
            window = (window - window.mean()) * (0.8 + 0.4 * draws[2]) + window.mean() * (0.85 + 0.3 * draws[3])
            offset = 1 + int(draws[4] * (self.num_classes - 1)) % (self.num_classes - 1)
        windows = torch.from_numpy(np.ascontiguousarray(np.clip(window, 0, 255)))[None] / 127.5 - 1.0
        label = int(row["expression"])
        return {"windows": windows, "holes": torch.from_numpy(self.region.hole(points, margin))[None],
                "maps": torch.from_numpy(self.region.maps(points)), "labels": label,
                "other_labels": (label + offset) % self.num_classes}


@dataclass
class BrowInpainterArguments(InpainterArguments):
    """The learned brows' training flags; its architecture flags come from ``BrowInpainterConfig``'s fields."""

    epochs: int = 10
    batch_size: int = 32
    lambda_gan: float = HfArg(default=0.15, help="weight of the generator's hinge adversarial loss")
    lambda_class: float = HfArg(default=0.1, help="weight of the generator's class cross-entropy")
    lambda_keep: float = HfArg(default=0.3, help="weight of the L1 between a drawing for another label and the face's "
                               "own upper face: the least change that reads as the label")
    class_warmup_steps: int = HfArg(default=1000, help="steps at the start that train only the discriminator's class "
                                    "head, on real faces, so that it has a label to teach when the generator starts")
    min_margin: float = HfArg(default=1.0, help="smallest hole margin (frame pixels) in training")
    max_margin: float = HfArg(default=4.0, help="largest hole margin in training")


class BrowInpainterStep(InpainterStep):
    """The class-conditional inpainting U-Net and its discriminator (PatchGAN critic + class head)."""

    name = "brow_inpainter"
    arguments_class = BrowInpainterArguments
    config_class = BrowInpainterConfig
    config_exclude = ("with_discriminator", "frame_height", "frame_width", "eye_distance", "class_names",
                      "edit_expressions", "edit_colour_photos", "max_lost_detail")  # chosen by looking at its drawings

    def build(self) -> None:
        args = self.args
        train = load_prepared(args.data, args.split)
        require_columns(train, args.data, ("frame", "points", "expression", "dataset"))
        names = list(train.features["expression"].names)
        region = REGIONS[args.model.region]
        if tuple(np.asarray(train[0]["frame"]).shape[:2]) != region.size:
            raise ConfigError(f"--data {args.data} holds {np.asarray(train[0]['frame']).shape[:2]} windows, not the "
                             f"{args.model.region} frame's {region.size}: prepare it with --region "
                             f"{args.model.region}")
        config_class, model_class = INPAINTER_CLASSES[args.model.region]
        self.config = make_config(config_class, **vars(args.model), class_names=names, with_discriminator=True,
                                  frame_height=region.size[0], frame_width=region.size[1],
                                  eye_distance=region.eye_distance)
        self.model = model_class(self.config).to(self.device)
        self.train_dataset = BrowWindows(train, len(names), args.seed, region=self.config.region,
                                         margin_range=(args.min_margin, args.max_margin))
        validation = load_prepared(args.data, args.eval_split, required=False)
        self.eval_dataset = (BrowWindows(validation, len(names), augment=False, margin=self.config.hole_margin,
                                         repeat=False, region=self.config.region)
                             if validation is not None else None)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), len(self.config.class_names)).float()

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args = self.nets, self.args
        windows, holes, maps = self.images(batch["windows"]), batch["holes"], batch["maps"]
        labels, others = batch["labels"].long(), batch["other_labels"].long()
        if step_index < args.class_warmup_steps:
            loss_d = F.cross_entropy(nets.D(windows, maps).class_logits, labels)
            self.update("discriminator", loss_d)
            return {"discriminator": loss_d.detach()}
        set_requires_grad(nets.D, False)
        own = nets.G(windows, holes, maps, self.one_hot(labels))
        other = nets.G(windows, holes, maps, self.one_hot(others))
        drawn = [windows * (1 - holes) + predicted * holes for predicted in (own, other)]
        critiques = [nets.D(image, maps) for image in drawn]
        losses = {
            "hole_l1": masked_l1(own, windows, holes),
            "rest_l1": masked_l1(own, windows, 1 - holes) * args.lambda_rest,
            "keep_l1": masked_l1(other, windows, holes) * args.lambda_keep,
            "gan": -sum(c.critic.mean() for c in critiques) / 2 * args.lambda_gan,
            "class": sum(F.cross_entropy(c.class_logits, target)
                         for c, target in zip(critiques, (labels, others))) / 2 * args.lambda_class,
        }
        loss_g = sum(losses.values())
        self.update("generator", loss_g)
        set_requires_grad(nets.D, True)
        real = nets.D(windows, maps)
        fakes = [nets.D(image.detach(), maps) for image in drawn]
        loss_d = (F.relu(1 - real.critic).mean() + sum(F.relu(1 + f.critic).mean() for f in fakes) / 2
                  + F.cross_entropy(real.class_logits, labels))
        self.update("discriminator", loss_d)
        return {"generator": loss_g.detach(), **{k: v.detach() for k, v in losses.items()},
                "discriminator": loss_d.detach()}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Rows: the window with its hole blanked | redrawn for each expression, in label order | the real window."""
        generator = self.unwrap(self.nets.G)
        windows, holes, maps = batch["windows"], batch["holes"], batch["maps"]
        columns = [windows * (1 - holes)]
        for label in range(len(self.config.class_names)):
            labels = self.one_hot(torch.full((len(windows),), label))
            columns.append(windows * (1 - holes) + generator(windows, holes, maps, labels) * holes)
        return torch.stack(columns + [windows], 1).float()

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """The hole L1 (on [-1, 1]) at the editor's margin for the faces' own labels, and how often the
        discriminator's class head reads a redrawn face as the label it was drawn for (own / another)."""
        generator, discriminator = self.unwrap(self.nets.G), self.unwrap(self.nets.D)
        totals = []
        for batch in dataloader:
            windows, holes, maps = batch["windows"], batch["holes"], batch["maps"]
            row = []
            for labels in (batch["labels"].long(), batch["other_labels"].long()):
                predicted = generator(windows, holes, maps, self.one_hot(labels))
                if not row:  # the own label's picture is the one there is to match
                    row += [((predicted - windows).abs() * holes).sum((1, 2, 3)), holes.sum((1, 2, 3))]
                reading = discriminator(windows * (1 - holes) + predicted * holes, maps).class_logits
                row.append((reading.argmax(1) == labels).float())
            totals.append(torch.stack(row, 1))
        totals = self.accelerator.gather_for_metrics(torch.cat(totals))
        return {"hole_l1": float(totals[:, 0].sum() / totals[:, 1].sum().clamp_min(1)),
                "read_as_own_label": float(totals[:, 2].mean()), "read_as_other_label": float(totals[:, 3].mean())}

    def training_data_description(self) -> str:
        window = "Lower-face" if self.config.region == "lower_face" else "Upper-face"
        return (f"{window} windows of labelled real faces (`{self.args.data}`, {self.args.split} split, "
                f"`train.tools.prepare_brows`), each its own example with its own label; per epoch (disgust four "
                f"times, the posed sets twice): {self.examples_per_source()}.")


if __name__ == "__main__":
    sys.exit(main(BrowInpainterStep))
