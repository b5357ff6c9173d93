"""A warp-and-refine generator: move the face, then paint only what moving cannot make (teeth, folds, shading).

In the aligned face frame (``expr_models.faces.alignment``) at model resolution ``S``, colour, in [-1, 1]:

    flow     = gain * prior_flow + window * upsample(delta_flow)   # 2 x S x S, fractions of the side
    warped   = x sampled at p + intensity * flow(p)
    output   = warped + intensity * (gain' * prior_residual + mask * change)

``prior_flow`` and ``prior_residual`` are the average-edit baseline's fields for this direction
(``expr_models.models.average_edit``), stored in the generator: a fresh generator (zero ``delta_flow``, a nearly
closed mask) *is* the baseline, and training learns per-person corrections on top of it. ``delta_flow`` is predicted
at ``flow_resolution`` (S/4) and upsampled bilinearly, so it is smooth by construction; ``window`` (the lower face, for
happy/neutral) keeps the eyes and brows still. ``gain`` (optional, ``max_gain > 0``) is one number per face in
(0, max_gain), read by a small encoder of its own and 1 at start: how strongly this face takes the average expression
(``gain'`` is the same number, or with ``prior_gains=2`` a second one for the residual: teeth and folds).
People and photo sets differ mostly in *how much* they smile (on validation people the average edit fits FEI best
at about 1.5x its strength and the London Set at about 0.5x), and one scalar learns that without the capacity to
memorise a face. ``mask`` (soft, GANimation-style) and ``change`` are the appearance part, made at ``S/2`` and
upsampled bilinearly (the network never runs at ``S``: on two CPU cores that is 4x cheaper, and a change that is
blurred by the metric and by the photo's upsampling anyway loses little).

At editing time (:func:`apply_fields`) the flow is upsampled to the full-resolution aligned crop and the crop itself is
warped, in colour, so the person's own skin texture and lip colour move; only the appearance change is upsampled from
``S``. ``intensity`` scales both, and 0 gives the crop back unchanged.

**Class-conditional** (``num_classes`` K > 0, the SA-GAN): the target enters as K constant label planes concatenated
to the input, as the study's generator takes it; the generator holds one prior flow and residual per target class
(``K x 2 x S x S``, ``K x C x S x S``) and uses the label-weighted sum of them (one-hot labels pick one); the window
applies only to the classes flagged in ``windowed_classes`` (e.g. happy and neutral), the others may move the brows.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from ..faces.alignment import warp_and_add
from .layers import ConvNormAct, ResidualBlock, upsample_flow, warp_by_flow

# Mask-head bias at start: sigmoid(-4) ~ 0.02, so a fresh generator adds almost nothing to the baseline.
MASK_BIAS = -4.0


def check_warp_config(in_channels: int, resolution: int, flow_resolution: int) -> None:
    """The shape rules of a warp-and-refine generator (the configs call it too): ``ValueError`` naming the broken one."""
    if in_channels != 3:
        raise ValueError("generator_type warp_refine edits colour: it needs in_channels=3")
    if resolution % 16 or resolution % flow_resolution or not resolution // 16 <= flow_resolution <= resolution // 2:
        raise ValueError(f"flow_resolution {flow_resolution} must divide resolution {resolution} and lie between "
                         "resolution / 16 and resolution / 2 (resolution divisible by 16)")


class WarpRefineGenerator(nn.Module):
    """A small U-Net over (face, face warped by the prior[, label planes]), levels S/2 .. S/16: a flow head at
    ``flow_resolution`` and mask + change heads at S/2. ``window`` (optional) is a function ``rows -> 1 x 1 x rows x
    1`` in [0, 1] that limits the learned flow and the mask to part of the face. ``num_classes`` > 0 makes it
    class-conditional (see the module docstring); ``windowed_classes`` (K bools) says which classes the window holds."""

    def __init__(self, resolution: int, channels: int = 3, width: int = 16, flow_resolution: int = 32,
                 max_flow: float = 0.06, n_residual_blocks: int = 3, norm: str = "instance", window=None,
                 num_classes: int = 0, windowed_classes: tuple[bool, ...] | None = None, max_gain: float = 0.0,
                 prior_gains: int = 1):
        super().__init__()
        if windowed_classes is not None and len(windowed_classes) != num_classes:
            raise ValueError(f"windowed_classes needs one flag per class ({num_classes}), got {len(windowed_classes)}")
        self.num_classes = num_classes
        # Plain floats, not a buffer: made from the config at construction, so nothing to save.
        self.windowed_classes = [float(flag) for flag in (windowed_classes or [True] * num_classes)]
        check_warp_config(channels, resolution, flow_resolution)
        self.resolution, self.channels, self.max_flow, self.window = resolution, channels, max_flow, window
        self.flow_level = {resolution // 16: 3, resolution // 8: 2, resolution // 4: 1, resolution // 2: 0}[flow_resolution]
        # Parameters (not buffers) so save_pretrained keeps them and from_pretrained checks them; never trained.
        priors = max(num_classes, 1)
        self.prior_flow = nn.Parameter(torch.zeros(priors, 2, resolution, resolution), requires_grad=False)
        self.prior_residual = nn.Parameter(torch.zeros(priors, channels, resolution, resolution), requires_grad=False)
        widths = [width, width * 2, width * 4, width * 8]
        self.stem = ConvNormAct(2 * channels + num_classes, widths[0], 3, 2, norm, padding_mode="reflect")
        self.down = nn.ModuleList(ConvNormAct(widths[i], widths[i + 1], 3, 2, norm) for i in range(3))
        self.middle = nn.Sequential(*[ResidualBlock(widths[3], norm) for _ in range(n_residual_blocks)])
        # Up path: at each level, upsample, concatenate the encoder's features of that level, conv.
        self.up = nn.ModuleList(ConvNormAct(widths[i + 1] + widths[i], widths[i], 3, 1, norm) for i in (2, 1, 0))
        self.to_flow = nn.Conv2d(widths[self.flow_level], 2, 3, padding=1)
        self.to_change = nn.Conv2d(widths[0], channels, 3, padding=1)
        self.to_mask = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.max_gain = max_gain
        self.gain_encoder, self.to_gain = None, None
        if max_gain > 0:
            # Its own small encoder without normalisation: the U-Net's instance norm removes exactly the global
            # contrast and colour that tell one photo set's smiles from another's.
            self.gain_encoder = nn.Sequential(
                *[ConvNormAct(c_in, c_out, 3, 2, "none", "leaky_relu")
                  for c_in, c_out in ((2 * channels, width), (width, 2 * width), (2 * width, 4 * width))],
                # Unit-scale pooled features: the gain must move within a few hundred small Adam steps.
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(4 * width, elementwise_affine=False))
            self.to_gain = nn.Linear(4 * width, prior_gains)

    def gain_bias(self) -> float:
        """The gain head's starting bias: ``max_gain * sigmoid(bias) = 1``."""
        return float(-np.log(self.max_gain - 1.0)) if self.max_gain > 1 else 0.0

    def reset_heads(self) -> None:
        """Start as the average-edit baseline: no learned flow, a nearly closed mask, a gain of 1. The models call it
        from ``_init_weights``; transformers' init functions leave weights that were loaded alone."""
        from transformers import initialization as init

        init.zeros_(self.to_flow.weight)
        init.zeros_(self.to_flow.bias)
        init.constant_(self.to_mask.bias, MASK_BIAS)
        if self.to_gain is not None:
            init.zeros_(self.to_gain.weight)
            init.constant_(self.to_gain.bias, self.gain_bias())

    def _windowed(self, field: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.window is None:
            return field
        window = self.window(field.shape[-2], field.device).to(field.dtype)
        if labels is not None:  # per sample: the window where the target class is windowed, else the whole face
            held = (labels @ labels.new_tensor(self.windowed_classes))[:, None, None, None]
            window = 1 - held * (1 - window)
        return field * window

    def priors(self, labels: torch.Tensor | None, count: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior flow and residual for each of ``count`` samples: the label-weighted sum of the class priors."""
        flow, residual = self.prior_flow.to(dtype), self.prior_residual.to(dtype)
        if self.num_classes == 0:
            return flow.expand(count, -1, -1, -1), residual.expand(count, -1, -1, -1)
        weights = labels.to(dtype)
        return torch.einsum("nk,kchw->nchw", weights, flow), torch.einsum("nk,kchw->nchw", weights, residual)

    def fields(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The edit's fields for aligned faces ``x`` (``N x C x S x S``; class-conditional: with ``labels``, ``N x K``
        class weights): ``flow`` (total, ``N x 2 x S x S``), ``delta_flow`` (the learned part, at
        ``flow_resolution``), ``appearance`` (prior residual + mask * change, ``N x C x S x S``), ``mask``, ``gain``
        (``N x G x 1 x 1``: the flow's gain, then the residual's if it has its own; ones without a gain head)."""
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            raise ValueError(f"expected {self.resolution}x{self.resolution} aligned faces, got {tuple(x.shape[-2:])}")
        if (labels is None) != (self.num_classes == 0):
            raise ValueError("a class-conditional generator needs labels (N x K); an unconditional one takes none")
        prior_flow, prior_residual = self.priors(labels, len(x), x.dtype)
        prior_warped = warp_by_flow(x, prior_flow)
        inputs = [x, prior_warped]
        if labels is not None:
            inputs.append(labels.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:]))
        features = [self.stem(torch.cat(inputs, dim=1))]
        for layer in self.down:
            features.append(layer(features[-1]))
        hidden = self.middle(features[-1])
        if self.to_gain is not None:
            pooled = self.gain_encoder(torch.cat([x, prior_warped], dim=1))
            gain = self.max_gain * torch.sigmoid(self.to_gain(pooled))[:, :, None, None]
        else:
            gain = torch.ones(len(x), 1, 1, 1, dtype=x.dtype, device=x.device)
        delta_flow = None
        for level, layer in zip((2, 1, 0), self.up):
            if level + 1 == self.flow_level:
                delta_flow = self.to_flow(hidden)
            hidden = nn.functional.interpolate(hidden, scale_factor=2, mode="nearest")
            hidden = layer(torch.cat([hidden, features[level]], dim=1))
        if self.flow_level == 0:
            delta_flow = self.to_flow(hidden)
        delta_flow = self._windowed(self.max_flow * torch.tanh(delta_flow), labels)
        size = (self.resolution, self.resolution)
        mask = self._windowed(torch.sigmoid(upsample_flow(self.to_mask(hidden), size)), labels)
        change = 2 * torch.tanh(upsample_flow(self.to_change(hidden), size))  # up to the whole [-1, 1] range
        flow = gain[:, :1] * prior_flow + upsample_flow(delta_flow, self.resolution)
        appearance = gain[:, -1:] * prior_residual + mask * change
        return {"flow": flow, "delta_flow": delta_flow, "appearance": appearance, "mask": mask, "gain": gain}

    def render(self, x: torch.Tensor, fields: dict[str, torch.Tensor], intensity: float = 1.0) -> torch.Tensor:
        return (warp_by_flow(x, intensity * fields["flow"]) + intensity * fields["appearance"]).clamp(-1, 1)

    def forward(self, x: torch.Tensor, return_mask: bool = False, intensity: float = 1.0,
                return_fields: bool = False, labels: torch.Tensor | None = None):
        """The edited faces; with ``return_mask`` also the mask, with ``return_fields`` all of :meth:`fields`."""
        fields = self.fields(x, labels)
        image = self.render(x, fields, intensity)
        if return_fields:
            return image, fields
        return (image, fields["mask"]) if return_mask else image


def apply_fields(crop: np.ndarray, flow: np.ndarray, appearance: np.ndarray, intensity: float = 1.0) -> np.ndarray:
    """An aligned crop (``N x N`` or ``N x N x C`` uint8, any ``N``) edited by fields made at model resolution:
    ``flow`` (``s x s x 2``, fractions of the side) and ``appearance`` (``S x S x C`` in [-1, 1] units), both upsampled
    bilinearly to ``N``; the crop itself is warped, so its own pixels move. ``intensity`` 0 returns a copy."""
    crop = np.asarray(crop)
    if crop.ndim < 2 or crop.shape[0] != crop.shape[1]:
        raise ValueError(f"expected a square aligned crop, got shape {crop.shape}")
    if intensity == 0:
        return crop.copy()
    size = crop.shape[0]
    flow = cv2.resize(np.asarray(flow, np.float32), (size, size), interpolation=cv2.INTER_LINEAR) * size
    appearance = cv2.resize(np.asarray(appearance, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return warp_and_add(crop, flow, appearance.reshape(size, size, -1) * 127.5, intensity)


@torch.no_grad()
def edit_aligned_crop(generator: WarpRefineGenerator, crop: np.ndarray, intensity: float = 1.0,
                      labels: torch.Tensor | None = None) -> np.ndarray:
    """An aligned crop (``N x N x 3`` or ``N x N`` uint8, any ``N``) edited by ``generator``: its fields are made at
    the generator's resolution and applied to the crop at its own size (the flow moves the crop's own pixels, in
    colour). ``labels`` (``1 x K``): a class-conditional generator's target. ``intensity`` 0 gives the crop back."""
    crop = np.asarray(crop)
    if intensity == 0:
        return crop.copy()
    small = to_model_resolution(crop, generator.resolution)
    parameter = next(generator.parameters())
    x = torch.from_numpy(small).permute(2, 0, 1)[None].to(parameter.device, parameter.dtype) / 127.5 - 1
    if labels is not None:
        labels = labels.to(parameter.device, parameter.dtype)
    fields = generator.fields(x, labels)
    flow = fields["flow"][0].float().permute(1, 2, 0).cpu().numpy()
    appearance = fields["appearance"][0].float().permute(1, 2, 0).cpu().numpy()
    if crop.ndim == 3 and crop.shape[2] == 3 and (crop == crop[..., :1]).all():
        # A grey photo in three equal channels stays grey: it takes only the change's luminance.
        return np.repeat(apply_fields(crop[..., 0], flow, appearance, intensity)[..., None], 3, axis=2)
    return apply_fields(crop, flow, appearance, intensity)


def to_model_resolution(crop: np.ndarray, resolution: int) -> np.ndarray:
    """An aligned crop of any side resampled to ``resolution`` with the alignment's one resampling (3 channels)."""
    from ..faces.alignment import resample_affine

    crop = np.asarray(crop)
    if crop.ndim == 2:
        crop = np.repeat(crop[..., None], 3, axis=2)
    scale = resolution / crop.shape[0]
    # Pixel centres at integers: output u sits at input (u + 0.5) / scale - 0.5.
    matrix = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5]], np.float64)
    return resample_affine(np.ascontiguousarray(crop[..., :3]), matrix, (resolution, resolution))
