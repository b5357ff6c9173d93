"""Canonical face meshes of the training people, for the mesh GANs (``train/cyclegan_mesh.py``, ``train/sagan_mesh.py``).

``python -m train.tools.prepare_meshes`` packages every cached face mesh (``train.tools.cache_meshes``: MediaPipe's
468 points of each photo, in photo pixels) as a ``datasets.DatasetDict`` with the project's person splits:

- ``train`` / ``validation`` / ``test``: labelled meshes of JAFFE, FEI, the London Set, CK+ (its subject split),
  FER2013 (its own test, and the project's validation carve-out of train) and GENKI-4K's smiles (as happy);
- ``pairs_train`` / ``pairs_validation`` / ``pairs_test``: (source, target) meshes of one person
  (``expr_models.data.paired_faces``: FEI and the London Set neutral <-> happy, JAFFE neutral -> each expression and
  happy -> neutral).

Training puts each mesh in the canonical frame of the mesh-motion model's mean mesh
(``expr_models.faces.mesh_motion.normalise``: fitted on the points an expression hardly moves), so one person's
motion applies to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers.hf_argparser import HfArg

import numpy as np
import torch

from expr_models.faces.mesh_motion import normalise
from expr_models.labels import EXPRESSIONS
from expr_models.models.mesh_motion import MeshMotionModel
from train.args import REPO_ROOT, ConfigError


@dataclass
class MeshGANArguments:
    """The flags both mesh GANs add to their image GAN's (mix in before it)."""

    batch_size: int = 32
    lambda_paired: float = HfArg(default=100.0, help="weight of the paired L1 (eye distances) against the real mesh")
    mesh_motion: Path = HfArg(default=REPO_ROOT / "checkpoints" / "mesh_motion",
                              help="the mesh-motion baseline: its mean mesh and median motions become the priors")
    pair_repeats: int = HfArg(default=10, help="an epoch shows every training pair this many times")


@dataclass
class MeshSet:
    """Canonical meshes ``(N, 468, 2)`` float32 with their labels (indices into ``EXPRESSIONS``)."""

    meshes: torch.Tensor
    labels: torch.Tensor

    def of(self, expression: str) -> torch.Tensor:
        return self.meshes[self.labels == EXPRESSIONS.index(expression)]


@dataclass
class MeshPairs:
    """Canonical source and target meshes ``(N, 468, 2)`` of one person, and their expressions."""

    sources: torch.Tensor
    targets: torch.Tensor
    source_labels: torch.Tensor
    target_labels: torch.Tensor
    datasets: list[str]

    def of(self, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = ((self.source_labels == EXPRESSIONS.index(source))
                  & (self.target_labels == EXPRESSIONS.index(target)))
        return self.sources[chosen], self.targets[chosen]


def check_mesh_arguments(args, script: str) -> None:
    """What both mesh GANs' scripts need: a mesh generator and a saved mesh-motion baseline."""
    if args.model.generator_type != "mesh":
        raise ConfigError(f"train.{script} trains --generator-type mesh")
    if not (args.mesh_motion / "config.json").is_file():
        raise ConfigError(f"--mesh-motion {args.mesh_motion} is not a saved MeshMotionModel folder")


def load_baseline(path: Path, *modules: torch.nn.Module) -> tuple[MeshMotionModel, np.ndarray]:
    """The mesh-motion baseline and its canonical mean mesh, copied into each module's ``mean_shape``."""
    baseline = MeshMotionModel.from_pretrained(path)
    mean_mesh = baseline.mean_mesh.detach().numpy()
    with torch.no_grad():
        for module in modules:
            module.mean_shape.copy_(torch.from_numpy(mean_mesh))
    return baseline, mean_mesh


def canonical(points: np.ndarray, mean_mesh: np.ndarray) -> np.ndarray:
    return normalise(points, mean_mesh)[0].astype(np.float32)


def _canonical_stack(column, mean_mesh: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([canonical(np.asarray(points), mean_mesh) for points in column]))


def load_meshes(data: Path, mean_mesh: np.ndarray, split: str = "train") -> MeshSet:
    """The labelled canonical meshes of one split of a prepared mesh dataset."""
    from datasets import load_from_disk

    rows = load_from_disk(str(data))[split].with_format("numpy")[:]
    return MeshSet(_canonical_stack(rows["points"], mean_mesh), torch.from_numpy(rows["expression"]).long())


def load_pairs(data: Path, mean_mesh: np.ndarray, split: str = "train") -> MeshPairs:
    """The canonical (source, target) meshes of one split's photo pairs."""
    from datasets import load_from_disk

    rows = load_from_disk(str(data))[f"pairs_{split}"].with_format("numpy")[:]
    return MeshPairs(_canonical_stack(rows["source_points"], mean_mesh),
                     _canonical_stack(rows["target_points"], mean_mesh),
                     torch.from_numpy(rows["source_expression"]).long(),
                     torch.from_numpy(rows["target_expression"]).long(), [str(d) for d in rows["dataset"]])


def mirror_permutation(mean_mesh: np.ndarray) -> torch.Tensor:
    """Index ``i`` -> the point mirroring ``i`` across the face's midline (the canonical frame's x = 0): the one-to-one
    matching of the mirrored mean mesh onto itself with the least squared distance; checked to undo itself."""
    from scipy.optimize import linear_sum_assignment

    mean = np.asarray(mean_mesh, np.float64)[:, :2]
    mirrored = mean * np.array([-1.0, 1.0])
    _, permutation = linear_sum_assignment(((mirrored[:, None, :] - mean[None, :, :]) ** 2).sum(-1))
    if not np.array_equal(permutation[permutation], np.arange(len(mean))):
        raise ValueError("the mean mesh is not left-right symmetric enough to mirror its points")
    return torch.from_numpy(permutation)


def mirrored(meshes: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Canonical meshes ``(..., P, 2)`` of the mirror-image faces."""
    flip = meshes.new_ones(meshes.shape[-1])
    flip[0] = -1.0  # x changes sign; y (and depth) stay
    return meshes[..., permutation, :] * flip


def gain_and_cosine(edited: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair: the edit's motion projected on the real motion over the real motion's length (gain), and the cosine
    between the two motions (canonical meshes ``(N, P, 2)``)."""
    edit, real = (edited - sources).flatten(1), (targets - sources).flatten(1)
    real_norm = real.norm(dim=1).clamp_min(1e-9)
    gain = (edit * real).sum(1) / real_norm ** 2
    cosine = (edit * real).sum(1) / (edit.norm(dim=1).clamp_min(1e-9) * real_norm)
    return gain, cosine


class MeshBatches(torch.utils.data.Dataset):
    """Item ``i``: pair ``i mod pairs`` and, independently, one random labelled mesh of each class asked for; each
    mirrored with probability 1/2 (a pair's two meshes together)."""

    def __init__(self, pairs: dict[str, torch.Tensor], unpaired: dict[str, torch.Tensor], length: int, seed: int,
                 permutation: torch.Tensor | None):
        self.pairs, self.unpaired = pairs, unpaired
        self.length, self.seed, self.permutation = length, seed, permutation
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch + index)
        count = len(next(iter(self.pairs.values())))
        item = {key: values[index % count] for key, values in self.pairs.items()}
        for key, values in self.unpaired.items():
            item[key] = values[int(torch.randint(len(values), (), generator=generator))]
        if self.permutation is not None:
            for key in list(item):
                if item[key].ndim == 2 and torch.rand((), generator=generator) < 0.5:
                    item[key] = mirrored(item[key], self.permutation)
        return item
