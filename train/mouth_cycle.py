"""The CycleGAN's appearance branch: fine-tune the learned mouth (``expr_models.models.mouth_inpainter``) with the
CycleGAN's own losses, on the edits the CycleGAN makes.

    python -m train.tools.cache_meshes --sets fei london jaffe genki4k     # prepared/meshes
    python -m train.mouth_cycle --data prepared/mouths --models checkpoints --output-dir runs/mouth_cycle --cpu \\
        --max-steps 1200 --raw-data ../shared/data                 # the committed checkpoints/cyclegan_mouth
    python -m train.tools.export_checkpoint runs/mouth_cycle/final checkpoints/cyclegan_mouth --fp16 --int8

The committed CycleGAN moves a face by its mesh (``generator_type="mesh"``); the warp moves the photo's own pixels,
and where the lips close over teeth the learned mouth draws what no pixel of the photo shows. The learned mouth is
trained by self-supervised inpainting alone, on each face's own lips, and the CycleGAN's adversarial and cycle losses
train its mesh generators alone. Here those losses train the mouth too, on the CycleGAN's edits:

1. each training window of a neutral face (London, FEI, JAFFE, GENKI-4K's non-smiles) or a smiling one gets its
   target lips from the CycleGAN's frozen mesh generator towards the other domain, with the editor's
   ``target_rules``, in the window's frame;
2. the edit: the window warped to the target mesh (the editor's piecewise-affine map, the lips sampled from inside
   where they close), and the target inner lips plus the editor's margin redrawn by the mouth;
3. the cycle, from neutral windows: the smile warped back to the window's own mesh, its own inner lips redrawn
   again (lips closing over the teeth the mouth drew), L1 to the real window. Not from smiles: their teeth cannot
   come back from the lips that close over them, and asked to, the mouth learned within 600 steps to leave them
   showing as a white band between the closed lips (CycleGAN's known habit of hiding what it must reconstruct).

Losses on the mouth: a hinge PatchGAN of the target domain (``D_neutral``, ``D_happy``, each reading the window with
the lip maps, by default at half resolution so the warp's resampling is no cue) on the edit; the cycle L1; and the
inpainting losses of ``train/mouth_inpainter.py`` on the window's own lips (hole L1, a little L1 around it), so it
stays a mouth that fits the lips it is given. The mouth starts from ``--models``' ``mouth_inpainter`` (or
``--init-from``); for ``--d-warmup-steps`` only the discriminators learn. Validation: the hole L1 at the editor's
margin on the faces' own lips (the inpainter's measure), and the cycle L1 where the mouth drew.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel
from transformers.hf_argparser import HfArg

from expr_models.components import model_class
from expr_models.data.records import BuildReport
from expr_models.faces.mesh_topology import LIPS_INNER
from expr_models.faces.mesh_warp import backward_map
from expr_models.faces.mouth_frame import FRAME_HEIGHT, FRAME_WIDTH, MouthFrame, hole_mask, lip_maps
from expr_models.faces.mouth_opening import closed_share, into_the_lips, is_open
from expr_models.hub.model_store import find_checkpoints
from expr_models.methods.mesh import generator_points, target_rules
from expr_models.models.layers import PatchDiscriminator
from expr_models.models.mouth_inpainter import MAP_CHANNELS, CycleGANMouthModel
from train.args import ConfigError
from train.data import load_prepared, require_columns
from train.inpainting import InpainterArguments, InpainterStep, masked_l1
from train.loop import main
from train.mouth_inpainter import MouthWindows
from train.step import OptimizerSpec, set_requires_grad
from train.tools.cache_meshes import SETS as MESH_SETS
from train.tools.prepare_meshes import labelled_photos

DOMAINS = ("neutral", "happy")  # the CycleGAN's domain_x and domain_y


def window_domains(ids: list[str], raw_data: Path, names: tuple[str, ...] = DOMAINS) -> np.ndarray:
    """Per mouth window, the index of its expression in ``names`` (the CycleGAN's: 0 neutral, 1 happy), -1 for
    another (JAFFE's other expressions). GENKI-4K labels smiles only; its other faces count as neutral (most are)."""
    known = labelled_photos(raw_data, BuildReport("mouth_windows"))
    domains = np.full(len(ids), -1, np.int64)
    for row, photo_id in enumerate(ids):
        expression = known.get(photo_id, (None, None, None))[1]
        if expression is None and photo_id.startswith("genki4k/"):
            expression = "neutral"
        if expression in names:
            domains[row] = names.index(expression)
    return domains


def cached_meshes(folder: Path) -> dict[str, np.ndarray]:
    """``{photo id: 468 x 3 mesh}`` of every set cached in ``folder`` (``train.tools.cache_meshes``)."""
    meshes = {}
    for name in MESH_SETS:
        path = folder / f"{name}.npz"
        if path.is_file():
            with np.load(path) as cache:
                meshes.update(zip(cache["ids"].tolist(), cache["points"]))
    return meshes


def check_meshes(dataset, meshes: dict[str, np.ndarray], folder: Path) -> None:
    """Every window of ``dataset`` has its photo's mesh, or a :class:`ConfigError` says how to make them."""
    missing = [photo_id for photo_id in dataset["id"] if photo_id not in meshes]
    if missing:
        raise ConfigError(f"--meshes {folder}: no mesh for {len(missing)} windows (e.g. {missing[0]}); "
                          "run `python -m train.tools.cache_meshes --sets fei london jaffe genki4k`")


def edit_targets(dataset, domains: np.ndarray, meshes: dict[str, np.ndarray], cyclegan, exemplars) -> np.ndarray:
    """Per window, where the CycleGAN sends its mesh towards the other domain (468 x 2, the window's frame pixels),
    as the editor does (``generator_points`` and ``target_rules``); NaN for windows of neither domain."""
    targets = np.full((len(dataset), 468, 2), np.nan, np.float32)
    for row, (photo_id, domain) in enumerate(zip(dataset["id"], domains)):
        if domain < 0:
            continue
        points = meshes[photo_id].astype(np.float64)
        target = DOMAINS[1 - domain]
        moved = generator_points(cyclegan, points, lambda canonical: cyclegan.move_mesh(canonical, target))
        moved = target_rules(points, moved, target, {}, exemplars)
        targets[row] = MouthFrame.from_points(points).to_frame(moved)
    return targets


def sampling_grid(source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """H x W x 2 (``grid_sample``'s [-1, 1], x then y): where each pixel of a window whose mesh sits at ``target``
    comes from in the window at ``source``, by the editor's piecewise-affine map; lips that close are sampled from
    inside their inner edge, as the editor samples them."""
    inner = list(LIPS_INNER)
    closing = is_open(source, inner) and closed_share(source[inner], target[inner]) > 0
    sample_from = into_the_lips(source, target, inner) if closing else source
    xs, ys = np.meshgrid(np.arange(FRAME_WIDTH, dtype=np.float32), np.arange(FRAME_HEIGHT, dtype=np.float32))
    mapped = backward_map((FRAME_HEIGHT, FRAME_WIDTH), sample_from, target, triangulate_source=closing)
    if mapped is not None:
        map_x, map_y, changed, (x0, y0, x1, y1) = mapped
        xs[y0:y1, x0:x1] = np.where(changed, map_x, xs[y0:y1, x0:x1])
        ys[y0:y1, x0:x1] = np.where(changed, map_y, ys[y0:y1, x0:x1])
    grid = np.stack([xs / (FRAME_WIDTH - 1) * 2 - 1, ys / (FRAME_HEIGHT - 1) * 2 - 1], axis=-1)
    return torch.from_numpy(grid.astype(np.float32))


class MouthEdits(MouthWindows):
    """``MouthWindows``' items (the window, its own hole and lip maps) plus the CycleGAN's edit of it: ``edit_grids``
    (the warp to the target mesh), ``edit_holes`` and ``edit_maps`` (the target lips, at ``edit_margin``),
    ``back_grids`` and ``back_holes`` (the warp back, and the window's own lips at ``edit_margin``) and ``domains``
    (the window's: 0 neutral, 1 happy). Windows of neither domain are left out."""

    def __init__(self, dataset, targets: np.ndarray, domains: np.ndarray, edit_margin: float, **kwargs):
        super().__init__(dataset, **kwargs)
        self.targets, self.domains, self.edit_margin = targets, domains, edit_margin
        kept = [(row, source) for row, source in zip(self.rows, self.sources) if domains[row] >= 0]
        self.rows, self.sources = [row for row, _ in kept], [source for _, source in kept]

    def __getitem__(self, index: int) -> dict:
        frames, points, margin, (target,) = self.window(index, self.targets[self.rows[index]])
        return {"frames": frames, "holes": torch.from_numpy(hole_mask(points, margin))[None],
                "maps": torch.from_numpy(lip_maps(points)),
                "edit_grids": sampling_grid(points, target),
                "edit_holes": torch.from_numpy(hole_mask(target, self.edit_margin))[None],
                "edit_maps": torch.from_numpy(lip_maps(target)),
                "back_grids": sampling_grid(target, points),
                "back_holes": torch.from_numpy(hole_mask(points, self.edit_margin))[None],
                "domains": int(self.domains[self.rows[index]])}


def resample(images: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(images, grids.to(images.dtype), mode="bicubic", padding_mode="border",
                         align_corners=True).clamp(-1, 1)


def identity_grid(images: torch.Tensor) -> torch.Tensor:
    """N x H x W x 2: the grid that samples ``images`` where they are."""
    return F.affine_grid(torch.eye(2, 3, dtype=images.dtype, device=images.device).expand(len(images), 2, 3),
                         list(images.shape), align_corners=True)


@dataclass
class GANMouthArguments(InpainterArguments):
    """What fine-tuning the learned mouth by a GAN's own losses takes (this file's CycleGAN, ``train/mouth_sagan.py``'s
    SA-GAN)."""

    models: Path = HfArg(default=Path("checkpoints"), help="folder with the GAN's, the mouth_inpainter and the "
                                                           "mouth_exemplars checkpoints")
    meshes: Path = HfArg(default=Path("prepared/meshes"), help="the face meshes of the windows' photos "
                                                               "(train.tools.cache_meshes)")
    raw_data: Path = HfArg(default=Path("../shared/data"), help="the photos' labels (GENKI-4K, FEI, London, JAFFE)")
    epochs: int = 3
    batch_size: int = 8
    lr: float = HfArg(default=1e-4, help="Adam learning rate (a fine-tune), decaying linearly to 0")
    min_margin: float = 2.0
    max_margin: float = 8.0
    d_warmup_steps: int = HfArg(default=100, help="steps at the start where only the discriminators learn")
    judge_downsample: int = HfArg(default=2, help="the discriminators read the windows shrunk this many times (1: at "
                                                  "full resolution)")
    init_from: Path | None = HfArg(default=None, help="the mouth to start from (default: --models' mouth_inpainter; "
                                                      "e.g. an earlier run's final, to go on with other flags)")


@dataclass
class MouthCycleArguments(GANMouthArguments):
    """The mouth's fine-tuning by the CycleGAN's losses."""

    lambda_gan: float = HfArg(default=0.05, help="weight of the target domain's hinge adversarial loss on the edit")
    lambda_cycle: float = HfArg(default=1.0, help="weight of the cycle L1 (the edit warped back and redrawn)")


class GANMouthStep(InpainterStep):
    """A GAN's own mouth: the learned mouth, fine-tuned on the edits the GAN (``gan``, a component with a mesh
    generator) makes. Subclasses build the datasets and the discriminators and compute the step."""

    gan: str  # the GAN component whose edits train the mouth

    @classmethod
    def check_arguments(cls, args) -> None:
        super().check_arguments(args)
        if args.judge_downsample < 1:
            raise ConfigError(f"--judge-downsample must be at least 1, got {args.judge_downsample}")
        for flag, folder in (("--models", args.models), ("--meshes", args.meshes), ("--raw-data", args.raw_data),
                             ("--init-from", args.init_from or args.models)):
            if not Path(folder).is_dir():
                raise ConfigError(f"{flag} {folder}: no such folder")

    def load_parts(self, mouth_class) -> tuple[Any, Any]:
        """Set ``self.model`` (a ``mouth_class`` starting from ``--init-from`` or the learned mouth) and return the
        frozen GAN and the exemplar bank (None without one) from ``--models``."""
        args = self.args
        found = find_checkpoints(args.models)
        for component in (self.gan, "mouth_inpainter"):
            if component not in found:
                raise ConfigError(f"--models {args.models}: no {component} checkpoint")
        start = Path(args.init_from) if args.init_from is not None else found["mouth_inpainter"][0]
        self.model = mouth_class.from_mouth(AutoModel.from_pretrained(start))
        self.config = self.model.config
        gan = model_class(self.gan).from_pretrained(found[self.gan][0]).eval()
        if gan.config.generator_type != "mesh":
            raise ConfigError(f"--models {args.models}: the {self.gan} must have a mesh generator")
        exemplars = (model_class("mouth_exemplars").from_pretrained(found["mouth_exemplars"][0])
                     if "mouth_exemplars" in found else None)
        return gan, exemplars

    @staticmethod
    def edit(generator, batch) -> torch.Tensor:
        """The GAN's edits of a batch: each window warped by the GAN's motion (``edit_grids``), its target lips
        (``edit_holes``, ``edit_maps``) redrawn by the mouth ``generator``."""
        warped = resample(batch["frames"], batch["edit_grids"])
        holes = batch["edit_holes"]
        return warped * (1 - holes) + generator(warped, holes, batch["edit_maps"]) * holes

    def window_datasets(self, edits: Callable[[Any, dict[str, np.ndarray], dict], Any]) -> None:
        """Set the train and validation datasets: ``edits(rows, meshes, options)`` for each split's prepared mouth
        windows, the meshes of their photos and ``MouthWindows``' options (augmented for training; the editor's
        margin, once each, for validation)."""
        args = self.args
        meshes = cached_meshes(Path(args.meshes))
        for attribute, split, augment in (("train_dataset", args.split, True), ("eval_dataset", args.eval_split, False)):
            dataset = load_prepared(args.data, split, required=augment)
            if dataset is not None:
                require_columns(dataset, args.data, ("id", "frame", "points", "gap", "dataset"))
                check_meshes(dataset, meshes, args.meshes)
                options = dict(seed=args.seed, margin_range=(args.min_margin, args.max_margin)) if augment else \
                    dict(augment=False, margin=self.config.hole_margin, repeat=False)
                dataset = edits(dataset, meshes, options)
            setattr(self, attribute, dataset)


class MouthCycleStep(GANMouthStep):
    """The learned mouth as the CycleGAN's appearance branch, with one PatchGAN per domain."""

    name = "mouth_cycle"
    arguments_class = MouthCycleArguments
    gan = "cyclegan"

    def build(self) -> None:
        args = self.args
        cyclegan, exemplars = self.load_parts(CycleGANMouthModel)
        if (cyclegan.config.domain_x, cyclegan.config.domain_y) != DOMAINS:
            raise ConfigError(f"--models {args.models}: the cyclegan must be a mesh CycleGAN neutral <-> happy")
        self.discriminators = {domain: PatchDiscriminator(3 + MAP_CHANNELS, self.config.discriminator_channels, 3,
                                                          "none", spectral=True).to(self.device)
                               for domain in DOMAINS}
        self.model.to(self.device)

        def edits(dataset, meshes: dict[str, np.ndarray], options: dict) -> MouthEdits:
            domains = window_domains(list(dataset["id"]), Path(args.raw_data))
            targets = edit_targets(dataset, domains, meshes, cyclegan, exemplars)
            return MouthEdits(dataset, targets, domains, self.config.hole_margin, **options)

        self.window_datasets(edits)

    def trainable_modules(self):
        return {"G": self.model.generator, "D_neutral": self.discriminators["neutral"],
                "D_happy": self.discriminators["happy"]}

    def make_optimizers(self):
        args = self.args
        adam = dict(lr=args.lr, betas=(args.beta1, args.beta2))
        parameters = [p for d in self.discriminators.values() for p in d.parameters()]
        return {"generator": OptimizerSpec(torch.optim.Adam(self.model.generator.parameters(), **adam),
                                           schedule="linear", ema=True),
                "discriminator": OptimizerSpec(torch.optim.Adam(parameters, **adam), schedule="linear")}

    def judge(self, domain: int, images: torch.Tensor, maps: torch.Tensor, real: bool = False) -> torch.Tensor:
        """The domain's PatchGAN logits on windows with their lip maps. The warp's bicubic resampling softens
        pixel-level detail that real windows keep, a cue the mouth could not remove: by default the windows are
        judged at half resolution; at full resolution (``--judge-downsample 1``) the real ones are resampled too,
        shifted by a random sub-pixel offset."""
        critic = getattr(self.nets, f"D_{DOMAINS[domain]}")
        factor = self.args.judge_downsample
        if real and factor == 1:
            shift = (torch.rand(len(images), 1, 1, 2, device=images.device) - 0.5) * 2 / images.new_tensor(
                [images.shape[3] - 1, images.shape[2] - 1])
            images = resample(images, identity_grid(images) + shift)
        windows = torch.cat([images, maps.to(images.dtype)], 1)
        return critic(F.avg_pool2d(windows, factor) if factor > 1 else windows)

    def edit_and_cycle(self, generator, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The edits (:meth:`edit`), their cycle (warped back, own lips redrawn), and where the mouth drew in either
        pass, in the window's own layout (what the cycle L1 weighs)."""
        edits = self.edit(generator, batch)
        back = resample(edits, batch["back_grids"])
        drawn = torch.maximum(batch["back_holes"], resample(batch["edit_holes"], batch["back_grids"]).clamp(0, 1))
        holes = batch["back_holes"]
        cycled = back * (1 - holes) + generator(back, holes, batch["maps"]) * holes
        return edits, cycled, drawn

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        nets, args = self.nets, self.args
        frames, holes, maps, domains = self.images(batch["frames"]), batch["holes"], batch["maps"], batch["domains"]
        critics = [nets.D_neutral, nets.D_happy]
        # The cycle runs from closed lips only: a smile's teeth cannot come back from the lips that close over them,
        # and asked to, the mouth learned to leave them showing as a white band between the closed lips.
        closed = (domains == 0).to(frames.dtype)
        logs = {}
        if step_index < args.d_warmup_steps:  # the critics alone learn: the edits only, without a graph
            with torch.no_grad():
                edits = self.edit(nets.G, batch)
        else:
            edits, cycled, drawn = self.edit_and_cycle(nets.G, batch)
            set_requires_grad(critics, False)
            predicted = nets.G(frames, holes, maps)
            adversarial = [-self.judge(1 - d, edits[domains == d], batch["edit_maps"][domains == d]).mean()
                           for d in (0, 1) if (domains == d).any()]
            losses = {"hole_l1": masked_l1(predicted, frames, holes),
                      "rest_l1": masked_l1(predicted, frames, 1 - holes) * args.lambda_rest,
                      "gan": torch.stack(adversarial).mean() * args.lambda_gan,
                      "cycle_l1": masked_l1(cycled, frames, drawn * closed[:, None, None, None]) * args.lambda_cycle}
            loss_g = sum(losses.values())
            self.update("generator", loss_g)
            logs = {"generator": loss_g.detach(), **{k: v.detach() for k, v in losses.items()}}
        set_requires_grad(critics, True)
        loss_d = []
        for d in (0, 1):
            real, fake = domains == d, domains == 1 - d  # fakes of domain d are edits of the other's windows
            if real.any():
                loss_d.append(F.relu(1 - self.judge(d, frames[real], maps[real], real=True)).mean())
            if fake.any():
                loss_d.append(F.relu(1 + self.judge(d, edits[fake].detach(), batch["edit_maps"][fake])).mean())
        loss_d = torch.stack(loss_d).sum()
        self.update("discriminator", loss_d)
        return {**logs, "discriminator": loss_d.detach()}

    @torch.no_grad()
    def sample_rows(self, batch) -> torch.Tensor:
        """Rows: the window | the CycleGAN's edit of it | the edit taken back."""
        edits, cycled, _ = self.edit_and_cycle(self.unwrap(self.nets.G), batch)
        return torch.stack([batch["frames"], edits, cycled], 1).float()

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """The hole L1 (on [-1, 1]) at the editor's margin on the faces' own lips, and the cycle L1 where the mouth
        drew."""
        generator = self.unwrap(self.nets.G)
        totals = []
        for batch in dataloader:
            predicted = generator(batch["frames"], batch["holes"], batch["maps"])
            error = ((predicted - batch["frames"]).abs() * batch["holes"]).sum((1, 2, 3))
            _, cycled, drawn = self.edit_and_cycle(generator, batch)
            cycle_error = ((cycled - batch["frames"]).abs() * drawn).sum((1, 2, 3))
            totals.append(torch.stack([error, batch["holes"].sum((1, 2, 3)) * 3, cycle_error,
                                       drawn.sum((1, 2, 3)) * 3], 1))
        totals = self.accelerator.gather_for_metrics(torch.cat(totals))
        totals = totals.sum(0)
        return {"hole_l1": float(totals[0] / totals[1].clamp_min(1)),
                "cycle_l1": float(totals[2] / totals[3].clamp_min(1))}

    def training_data_description(self) -> str:
        return (f"Mouth windows of real neutral and smiling faces (`{self.args.data}`, {self.args.split} split), each "
                f"edited by the committed CycleGAN's mesh generator towards the other expression; per epoch: "
                f"{self.examples_per_source()}.")


if __name__ == "__main__":
    sys.exit(main(MouthCycleStep))
