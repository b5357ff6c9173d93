"""The average-edit baseline: no learning, the median motion and the median appearance change of real faces.

For each (source, target) expression pair the model holds, in the aligned face frame (``expr_models.faces.alignment``):
- ``flow``: a smooth displacement field ``2 x S x S`` (x, y; in fractions of the frame's side), the per-pixel median
  over training subjects of the optical flow from their target photo to their source photo: the target face at frame
  position p looks like the source face at p + flow(p);
- ``residual``: ``C x S x S`` (in [-1, 1] units, i.e. 2/255 per grey level), the median of what differs once the
  source photo is warped by its own flow (teeth, folds, shading).

Applying it to an aligned crop of any size: ``crop(p + intensity * flow(p)) + intensity * residual(p)``, with both
fields upsampled bilinearly to the crop, so the person's own skin texture and lip colour move, in colour, at the
crop's resolution. Deterministic and a few milliseconds per face. ``train/average_edit.py`` builds it.

    model = AverageEditModel.from_pretrained("checkpoints/average")
    edited_photo = model.edit_photo(photo_rgb_uint8, "neutral", "happy", intensity=1.0)   # whole photo, one face
    edited_crop = model.apply(aligned_crop_uint8, "neutral", "happy")                       # an aligned crop
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import ModelOutput

from ..faces.alignment import (AlignedFace, align_face, native_size, paste_from_frame, retinaface_points, warp_and_add,
                               warp_to_frame)
from .modeling_utils import ExprPreTrainedModel

PAIR_SEPARATOR = "->"


def pair_name(source: str, target: str) -> str:
    return f"{source}{PAIR_SEPARATOR}{target}"


@strict
class AverageEditConfig(PreTrainedConfig):
    r"""
    Args:
        resolution: side ``S`` of the stored fields (the aligned frame at which flows and residuals were measured).
        channels: 1 (a luminance residual, added to every colour channel) or 3 (an RGB residual).
        pairs: the edits held, each ``"source->target"`` (e.g. ``"neutral->happy"``), in the order of the fields.
        subjects: how many training subjects each pair's median was taken over (for the card; same order).
    """

    model_type = "expr-average-edit"

    resolution: int = 128
    channels: int = 3
    pairs: list[str] | tuple[str, ...] = ("neutral->happy", "happy->neutral")
    subjects: list[int] | tuple[int, ...] = ()

    def validate_average_edit(self):
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not self.pairs or len(set(self.pairs)) != len(self.pairs):
            raise ValueError(f"pairs must be distinct and at least one, got {self.pairs}")
        for pair in self.pairs:
            if pair.count(PAIR_SEPARATOR) != 1 or pair.split(PAIR_SEPARATOR)[0] == pair.split(PAIR_SEPARATOR)[1]:
                raise ValueError(f"a pair is 'source->target' with two different expressions, not {pair!r}")

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(pair.split(PAIR_SEPARATOR)[1] for pair in self.pairs))


@dataclass
class AverageEditOutput(ModelOutput):
    """``edited``: the aligned crops moved to the target, ``N x C x H x W`` in [-1, 1]."""

    edited: torch.Tensor | None = None


class AverageEditModel(ExprPreTrainedModel):
    config_class = AverageEditConfig
    card_summary = (
        "The average-edit baseline: for each pair of expressions, the median optical flow and the median residual "
        "of real people's photo pairs in the aligned face frame (`expr_models.faces.alignment`). No learning: it is "
        "the bar every learned editor must beat on realism, and a deterministic fallback. Input: a face aligned to the "
        "frame (any size, colour or grey). `model.edit_photo(photo, 'neutral', 'happy')` edits a whole photo."
    )

    def __init__(self, config: AverageEditConfig):
        super().__init__(config)
        size, count = config.resolution, len(config.pairs)
        # Parameters (not buffers) so that save_pretrained stores them and from_pretrained checks they are there.
        self.flows = nn.Parameter(torch.zeros(count, 2, size, size), requires_grad=False)
        self.residuals = nn.Parameter(torch.zeros(count, config.channels, size, size), requires_grad=False)
        self.post_init()

    def _init_weights(self, module):
        pass  # the fields are measured, not initialised; zeros are the identity edit

    def pair_index(self, source: str, target: str) -> int:
        name = pair_name(source, target)
        if name not in self.config.pairs:
            raise ValueError(f"This average edit holds {', '.join(self.config.pairs)}, not {name!r}")
        return list(self.config.pairs).index(name)

    def fields(self, source: str, target: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair's flow in pixels of a ``size`` crop (``size x size x 2``) and its residual in grey levels
        (``size x size x C``), both upsampled bilinearly (float32)."""
        index = self.pair_index(source, target)
        flow = self.flows[index].detach().float().permute(1, 2, 0).cpu().numpy() * size
        residual = self.residuals[index].detach().float().permute(1, 2, 0).cpu().numpy() * 127.5
        if size != self.config.resolution:
            flow = cv2.resize(flow, (size, size), interpolation=cv2.INTER_LINEAR)
            residual = cv2.resize(residual, (size, size), interpolation=cv2.INTER_LINEAR)
        return flow, residual.reshape(size, size, -1)

    def source_for(self, expression: str | None, target: str) -> str:
        """The source expression whose pair to use for a face read as ``expression`` (``None``: unknown): its own
        pair when there is one, else the neutral one (a face that is neither is edited as if from neutral)."""
        pairs = set(self.config.pairs)
        if expression is not None and pair_name(expression, target) in pairs:
            return expression
        if pair_name("neutral", target) in pairs:
            return "neutral"
        sources = [pair.split(PAIR_SEPARATOR)[0] for pair in self.config.pairs if pair.endswith(PAIR_SEPARATOR + target)]
        if not sources:
            raise ValueError(f"no pair edits to {target!r}; this model has {', '.join(self.config.pairs)}")
        return sources[0]

    def apply(self, aligned_face: np.ndarray, source: str, target: str, intensity: float = 1.0) -> np.ndarray:
        """An aligned crop (``N x N`` or ``N x N x C`` uint8, any ``N``) edited from ``source`` to ``target``."""
        face = np.asarray(aligned_face)
        if face.ndim < 2 or face.shape[0] != face.shape[1]:
            raise ValueError(f"expected a square aligned crop, got shape {face.shape}")
        if intensity == 0:
            return face.copy()
        flow, residual = self.fields(source, target, face.shape[0])
        return warp_and_add(face, flow, residual, intensity)

    def edit_photo(self, photo: np.ndarray, source: str, target: str, intensity: float = 1.0,
                   points: np.ndarray | None = None, detector=None) -> np.ndarray:
        """A whole photo (``H x W x 3`` or ``H x W`` uint8) with its largest face edited (or the face whose five
        landmarks are ``points``); the frame keeps the photo's resolution and only the change is pasted back, inside
        the face's blend mask. Raises ``ValueError`` when no face is found."""
        photo = np.asarray(photo)
        if points is None:
            points = retinaface_points(photo, detector)
            if points is None:
                raise ValueError("no face found in the photo")
        face: AlignedFace = align_face(points, native_size(points))
        crop = warp_to_frame(photo, face)
        edited = self.apply(crop, source, target, intensity)
        return paste_from_frame(photo, edited, face, original=crop)

    def forward(self, pixel_values: torch.Tensor, source: str = "neutral", target: str = "happy",
                intensity: float = 1.0, **kwargs) -> AverageEditOutput:
        """Aligned crops ``N x C x H x W`` in [-1, 1] (square) -> the edited crops, differentiable in the input."""
        index = self.pair_index(source, target)
        batch, _, height, width = pixel_values.shape
        flow = self.flows[index:index + 1].to(pixel_values.dtype)
        residual = self.residuals[index:index + 1].to(pixel_values.dtype)
        if (height, width) != (self.config.resolution,) * 2:
            flow = nn.functional.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            residual = nn.functional.interpolate(residual, size=(height, width), mode="bilinear", align_corners=False)
        # grid_sample's normalised coordinates span 2 over the side, so a flow in fractions of the side doubles.
        ys, xs = torch.meshgrid(torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=flow.device),
                                torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=flow.device), indexing="ij")
        grid = torch.stack([xs, ys], dim=-1)[None] + 2 * intensity * flow.permute(0, 2, 3, 1)
        warped = nn.functional.grid_sample(pixel_values, grid.expand(batch, -1, -1, -1).to(pixel_values.dtype),
                                           mode="bilinear", padding_mode="border", align_corners=False)
        if residual.shape[1] != warped.shape[1]:
            residual = residual.mean(1, keepdim=True) if warped.shape[1] == 1 else residual.expand(-1, warped.shape[1],
                                                                                                   -1, -1)
        return AverageEditOutput(edited=(warped + intensity * residual).clamp(-1, 1))

    @torch.no_grad()
    def generate(self, pixel_values: torch.Tensor, source: str = "neutral", target: str = "happy",
                 intensity: float = 1.0) -> torch.Tensor:
        return self.forward(pixel_values, source, target, intensity).edited
