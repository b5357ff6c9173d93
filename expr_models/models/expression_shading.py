"""Expression shading: the skin's creases and highlights of a smile (nasolabial folds, lifted cheeks, the lower lids),
added by an edit towards a smile and taken away by one towards neutral.

    model = ExpressionShadingModel.from_pretrained("checkpoints/expression_shading")
    shaded = model.shade(warped_photo, source_points, target_points)
    # warped_photo: the photo after the mesh warp (its face's mesh now at target_points, 468 x 2 px);
    # source_points: the mesh before the warp. A motion with no smile in it returns the photo unchanged.

It holds, in a shape-free texture (every face warped onto the mean mesh, ``expr_models.faces.shading``):
- ``log_ratio``: the median over training people of log(smiling texture / neutral texture), per unit of smile,
  zero on the lips and eyes (the mouth models draw those) and outside the face;
- ``smile_direction``: the median smile's canonical motion over the mouth corners and cheeks
  (``faces.shading.SMILE_POINTS``), against which an edit's motion is measured;
- ``mean_mesh``: the canonical frame's mean mesh (2D); ``texture_points`` follow from it.

The shading applied is ``exp(smile * amount * log_ratio)``, with ``smile`` the edit's motion projected on
``smile_direction`` (taking a smile away, the map's brightening is not applied: the face's own folds fade instead,
``faces.shading.lift_creases``) and ``amount = (skin_contrast / contrast_reference) ** contrast_power`` within
``[min_amount, max_amount]``: the same smile carves deeper folds under hard light than under soft light.
``train/expression_shading.py`` builds it from FEI and London Set pairs. No learning beyond medians and one line fit.
"""

from __future__ import annotations

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from ..faces.shading import (SMILE_POINTS, apply_log_shading, skin_contrast, smile_coefficient,
                             texture_points)
from .modeling_utils import ExprPreTrainedModel

NUM_POINTS = 468


@strict
class ExpressionShadingConfig(PreTrainedConfig):
    r"""
    Args:
        texture_size: side of the shape-free texture, in pixels.
        texture_scale: pixels per eye distance in the texture.
        smile_points: the mesh points whose motion measures the smile (default ``faces.shading.SMILE_POINTS``).
        contrast_reference: the skin contrast (``faces.shading.skin_contrast``) at which ``amount`` is 1.
        contrast_power: how fast the amount grows with the skin contrast.
        min_amount: the amount's floor.
        max_amount: the amount's ceiling.
        max_smile: the largest smile coefficient applied (either sign), so that a slider pushed far does not paint
            folds deeper than any real face showed.
        people: how many training people the median was taken over (for the card).
    """

    model_type = "expr-expression-shading"

    texture_size: int = 256
    texture_scale: float = 80.0
    smile_points: list[int] | tuple[int, ...] = SMILE_POINTS
    contrast_reference: float = 0.16
    contrast_power: float = 1.0
    min_amount: float = 0.25
    max_amount: float = 2.5
    max_smile: float = 2.0
    people: int = 0

    def validate_expression_shading(self):
        if self.texture_size < 16 or self.texture_scale <= 0:
            raise ValueError(f"texture_size must be at least 16 and texture_scale positive, got "
                             f"{self.texture_size} and {self.texture_scale}")
        if not 0 <= self.min_amount <= self.max_amount:
            raise ValueError(f"need 0 <= min_amount <= max_amount, got {self.min_amount} and {self.max_amount}")
        if self.contrast_reference <= 0:
            raise ValueError(f"contrast_reference must be positive, got {self.contrast_reference}")
        if not self.smile_points or any(not 0 <= int(i) < NUM_POINTS for i in self.smile_points):
            raise ValueError(f"smile_points must be mesh points in 0..{NUM_POINTS - 1}")


class ExpressionShadingModel(ExprPreTrainedModel):
    config_class = ExpressionShadingConfig
    main_input_name = "log_ratio"
    card_summary = (
        "Expression shading for mesh-warp edits: the median expression ratio image (Liu, Shan & Zhang 2001) of real "
        "smiles over the same people's neutral photos, in a shape-free texture, per unit of smile. "
        "`model.shade(warped_photo, source_points, target_points)` multiplies the warped photo by it, warped onto "
        "the edit's mesh and scaled by the smile in the edit's motion and by the photo's lighting contrast: folds "
        "and lifted cheeks appear with a smile and fade with its undoing."
    )

    def __init__(self, config: ExpressionShadingConfig):
        super().__init__(config)
        size = config.texture_size
        # Parameters (not buffers) so that save_pretrained stores them and from_pretrained checks they are there.
        self.log_ratio = nn.Parameter(torch.zeros(size, size), requires_grad=False)
        self.smile_direction = nn.Parameter(torch.zeros(len(config.smile_points), 2), requires_grad=False)
        self.mean_mesh = nn.Parameter(torch.zeros(NUM_POINTS, 2), requires_grad=False)
        self.post_init()

    def _init_weights(self, module):
        pass  # measured, not initialised; a zero ratio is no shading

    def _numpy(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().float().cpu().numpy().astype(np.float64)

    @property
    def texture_points(self) -> np.ndarray:
        return texture_points(self._numpy(self.mean_mesh), self.config.texture_size, self.config.texture_scale)

    def smile(self, source: np.ndarray, target: np.ndarray) -> float:
        """The edit's smile coefficient (1 = the median smile, -1 = its undoing), clipped to ``max_smile``."""
        value = smile_coefficient(source, target, self._numpy(self.smile_direction), self._numpy(self.mean_mesh),
                                  tuple(self.config.smile_points))
        return float(np.clip(value, -self.config.max_smile, self.config.max_smile))

    def amount(self, image: np.ndarray, points: np.ndarray) -> float:
        """How deep this photo's light carves the folds, relative to the median pair (1)."""
        config = self.config
        contrast = skin_contrast(image, points, config.texture_scale)
        if not np.isfinite(contrast):
            return 1.0
        value = (contrast / config.contrast_reference) ** config.contrast_power
        return float(np.clip(value, config.min_amount, config.max_amount))

    def shade(self, image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``image`` (H x W (x C) uint8: the face already warped to ``target``, 468 x 2+ px) with the shading of the
        smile in the motion ``source`` -> ``target``; the image itself where the motion holds no smile."""
        return self.shade_with_box(image, source, target)[0]

    def shade_with_box(self, image: np.ndarray, source: np.ndarray, target: np.ndarray
                       ) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
        """:meth:`shade` and the box of the pixels it changed (None: none)."""
        smile = self.smile(source, target)
        if abs(smile) < 1e-3:
            return np.asarray(image).copy(), None
        weight = smile * self.amount(image, target)
        # Undoing a smile lifts this face's own folds, as far as the smile is undone (see faces.shading).
        return apply_log_shading(image, target, self.texture_points, weight * self._numpy(self.log_ratio),
                                 lift=min(max(-smile, 0.0), 1.0))

    def forward(self, log_ratio_weight: torch.Tensor) -> torch.Tensor:
        """The texture-space log shading for a batch of weights (``N``: smile times amount) -> ``N x S x S``."""
        return log_ratio_weight.to(self.log_ratio.dtype)[:, None, None] * self.log_ratio
