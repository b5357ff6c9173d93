"""The mesh-motion parts shared by the CycleGAN and the SA-GAN when they move faces by their dense mesh
(``generator_type="mesh"``).

A face is its 468-point mesh in the canonical frame (``expr_models.faces.mesh_motion``: the similarity that fits
its stable points to the mean face, one eye distance apart; ``dims`` coordinates per point). A generator maps a source mesh and a target to the target mesh:

    target = source + gain(source, target) * prior(target) + residual(source, target)

``prior`` is the median motion of real training pairs (the mesh-motion baseline), ``gain`` a per-face amplitude (1
at the start, within ``[1 / max_gain, max_gain]``) and ``residual`` a small learned correction, bounded so that with a
few hundred pairs it cannot memorise faces. Both heads start at zero, so an untrained generator is the baseline.
The discriminators read canonical meshes, so unpaired photos of each expression (GENKI-4K, CK+, FER2013) teach
what real target meshes look like, beside the pairs' direct supervision.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm


def check_mesh_config(max_gain: float, max_residual: float, amplitude: dict | None = None) -> None:
    """The mesh generator's bounds and per-target amplitudes, as both GAN configs validate them."""
    if max_gain < 1 or max_residual < 0:
        raise ValueError("max_mesh_gain must be at least 1 and max_mesh_residual at least 0")

    def positive(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0

    for value in (amplitude or {}).values():
        if not (positive(value) or isinstance(value, (list, tuple)) and len(value) == 2 and all(map(positive, value))):
            raise ValueError(f"mesh_amplitude maps each target to a positive scale, or to a pair of them "
                             f"[horizontal, vertical], got {amplitude}")


def amplitude_axes(amplitude: dict | None, target: str, dims: int) -> torch.Tensor:
    """The scale of ``target``'s mesh motion at intensity 1 per canonical coordinate (x, y[, depth]), fitted on
    validation people (``train/tools/calibrate_mesh_amplitude``; 1 where none was fitted). One number scales the
    whole motion; a pair ``[horizontal, vertical]`` scales x apart from y and depth. Why a pair: undoing a smile, the
    generators narrow the mouth as far as real people do at 1x but lower its corners and cheeks only about 0.8 of
    the way, so one scale that brings the corners down pinches the mouth narrower than the person's own."""
    value = (amplitude or {}).get(target, 1.0)
    horizontal, vertical = (value, value) if isinstance(value, (int, float)) else value
    return torch.tensor([float(horizontal)] + [float(vertical)] * (dims - 1))


def check_undo_range(undo_range) -> None:
    """``mesh_undo_range``: None, or ``[low, high]`` with 0 < low <= high."""
    if undo_range is None:
        return
    if not (isinstance(undo_range, (list, tuple)) and len(undo_range) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in undo_range)
            and 0 < undo_range[0] <= undo_range[1]):
        raise ValueError(f"mesh_undo_range must be [low, high] with 0 < low <= high, got {undo_range}")


def expression_amount(deviations: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """How much of an expression each face shows, read linearly from its canonical mesh's deviation from the mean
    shape ``(N, P, D)``: ``(N,)``, 0 for the average face without the expression and 1 for the median training face
    with it (the reader ``train.tools.fit_undo_amount`` fits)."""
    return (deviations * weights.to(deviations)).flatten(1).sum(1) - bias.to(deviations)


def undo_by_amount(source: torch.Tensor, moved: torch.Tensor, amount: torch.Tensor, low: float, high: float
                   ) -> torch.Tensor:
    """``moved`` (the generator's undoing of an expression from ``source``) with its vertical motion (y and depth)
    scaled per face by the ``amount`` of the expression it shows, clamped to ``[low, high]``. Why: the generators
    undo about the median smile on every face, so a broad CK+ or JAFFE grin kept its lifted cheeks and corners and was
    still read as happy; the width of the mouth they already bring back as far as real people do."""
    scale = amount.clamp(low, high).to(moved.dtype).view(-1, 1)
    motion = moved - source
    return source + torch.cat([motion[..., :1], motion[..., 1:] * scale[:, :, None]], dim=-1)


class MeshEncoder(nn.Sequential):
    """Flattened (mesh - mean shape) and a condition vector -> features (LayerNorm MLP)."""

    def __init__(self, in_features: int, hidden: int, layers: int = 2):
        blocks: list[nn.Module] = []
        for index in range(layers):
            blocks += [nn.Linear(in_features if index == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        super().__init__(*blocks)


class MeshMotionGenerator(nn.Module):
    """``(N, P, D)`` canonical source meshes and ``(N, C)`` conditions -> ``(N, P, D)`` target meshes.

    ``conditions`` weighs the ``C`` priors (one-hot for one target; the SA-GAN's target class, or a single column for
    one direction of the CycleGAN); ``intensity`` scales the whole motion, so 0 returns the source, and ``axes``
    (optional, one number per coordinate) each coordinate's. ``prior_axes`` (optional, ``(C, D)``) scales each
    prior's part of the motion per coordinate instead, ``axes`` then scaling only the residual: the SA-GAN's edit from
    one expression to another scales the target's part by the target's amplitude and the undoing of the source by
    the one fitted for undoing (→ neutral's).
    """

    def __init__(self, n_points: int, n_conditions: int, hidden: int = 256, max_gain: float = 2.0,
                 max_residual: float = 0.03, dims: int = 3):
        super().__init__()
        self.n_points, self.n_conditions = n_points, n_conditions
        self.max_gain, self.max_residual = max_gain, max_residual
        # Set from the mesh-motion baseline before training and saved with the weights.
        self.register_buffer("mean_shape", torch.zeros(n_points, dims))
        self.register_buffer("priors", torch.zeros(n_conditions, n_points, dims))
        self.encoder = MeshEncoder(n_points * dims + n_conditions, hidden)
        self.to_gain = nn.Linear(hidden, 1)
        self.to_residual = nn.Linear(hidden, n_points * dims)

    def reset_heads(self) -> None:
        """Start as the baseline: gain 1, no residual. transformers' init functions leave loaded weights alone."""
        from transformers import initialization as init

        for head in (self.to_gain, self.to_residual):
            init.zeros_(head.weight)
            init.zeros_(head.bias)

    def motion(self, meshes: torch.Tensor, conditions: torch.Tensor, prior_axes: torch.Tensor | None = None,
               residual_axes: torch.Tensor | None = None, undo_gain_cap: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The predicted displacement ``(N, P, D)`` and the per-face gain ``(N,)``; ``prior_axes`` ``(C, D)`` and
        ``residual_axes`` ``(D,)`` scale the priors' and the residual's parts per coordinate (absent: 1).
        ``undo_gain_cap`` ``(D,)``: the largest gain per coordinate on the priors weighed negatively (the undoing of
        a source expression); the priors weighed positively keep the whole gain."""
        centred = (meshes - self.mean_shape).flatten(1)
        features = self.encoder(torch.cat([centred, conditions.to(centred.dtype)], dim=1))
        gain = self.max_gain ** torch.tanh(self.to_gain(features)).squeeze(1)
        priors = self.priors if prior_axes is None else self.priors * prior_axes.to(self.priors)[:, None, :]
        conditions = conditions.to(priors.dtype)
        if undo_gain_cap is None:
            prior = gain.view(-1, 1, 1) * torch.einsum("nc,cpd->npd", conditions, priors)
        else:
            adding = torch.einsum("nc,cpd->npd", conditions.clamp_min(0), priors)
            undoing = torch.einsum("nc,cpd->npd", conditions.clamp_max(0), priors)
            capped = torch.minimum(gain.view(-1, 1, 1), undo_gain_cap.to(gain).view(1, 1, -1))
            prior = gain.view(-1, 1, 1) * adding + capped * undoing
        residual = self.max_residual * torch.tanh(self.to_residual(features)).view_as(meshes)
        if residual_axes is not None:
            residual = residual * residual_axes.to(residual)
        return prior + residual, gain

    def forward(self, meshes: torch.Tensor, conditions: torch.Tensor, intensity: float | torch.Tensor = 1.0,
                axes: torch.Tensor | None = None, prior_axes: torch.Tensor | None = None,
                undo_gain_cap: torch.Tensor | None = None) -> torch.Tensor:
        if prior_axes is None and axes is not None:  # one scale per coordinate for the whole motion
            prior_axes = axes.expand(self.n_conditions, -1)
        displacement, _ = self.motion(meshes, conditions, prior_axes, axes, undo_gain_cap)
        if torch.is_tensor(intensity):
            intensity = intensity.view(-1, 1, 1)
        return meshes + intensity * displacement


class MeshDiscriminator(nn.Module):
    """Canonical meshes ``(N, P, D)`` -> ``(N, outputs)`` logits: a spectral-normed MLP on the shape's deviation from
    the mean. Small Gaussian noise on real and fake alike during training keeps it from separating them by jitter."""

    def __init__(self, n_points: int, outputs: int = 1, hidden: int = 256, noise: float = 0.002, dims: int = 3):
        super().__init__()
        self.noise = noise
        self.register_buffer("mean_shape", torch.zeros(n_points, dims))
        self.body = nn.Sequential(
            spectral_norm(nn.Linear(n_points * dims, hidden)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2))
        self.head = spectral_norm(nn.Linear(hidden, outputs))

    def forward(self, meshes: torch.Tensor) -> torch.Tensor:
        centred = meshes - self.mean_shape
        if self.training and self.noise > 0:
            centred = centred + self.noise * torch.randn_like(centred)
        return self.head(self.body(centred.flatten(1)))
