"""Expression shading: the skin's creases and highlights of a smile (nasolabial folds, lifted cheeks, the lower lids),
added by an edit towards a smile and taken away by one towards neutral; and the furrows of the other expressions
(the brows' knot of anger, the nose's wrinkles of disgust, the lit lids under surprise's raised brows), added
towards them and taken away from them.

    model = ExpressionShadingModel.from_pretrained("checkpoints/expression_shading")
    shaded = model.shade(warped_photo, source_points, target_points, expressions={"angry": 1.0, "sad": -1.0})
    # warped_photo: the photo after the mesh warp (its face's mesh now at target_points, 468 x 2 px);
    # source_points: the mesh before the warp. A motion with no smile in it, and no expressions, returns the photo
    # unchanged. expressions: how much of each class's furrows to add (negative: take away), 1 = the median face's.

It holds, in a shape-free texture (every face warped onto the mean mesh, ``expr_models.faces.shading``):
- ``log_ratio``: the median over training people of log(smiling texture / neutral texture), per unit of smile,
  zero on the lips and eyes (the mouth models draw those) and outside the face;
- ``smile_direction``: the median smile's canonical motion over the mouth corners and cheeks
  (``faces.shading.SMILE_POINTS``), against which an edit's motion is measured;
- ``mean_mesh``: the canonical frame's mean mesh (2D); ``texture_points`` follow from it;
- ``class_log_ratio``: per expression of ``class_names``, the median log texture of thousands of unpaired faces of
  that expression over the neutral faces' (FER2013), at ``class_texture_size`` px, zero on the eyes, the mouth and the
  chin below it (where the mesh under-tracks a dropped jaw, and the mouth models draw).

The shading applied is ``exp(smile * amount * log_ratio)``, with ``smile`` the edit's motion projected on
``smile_direction`` (taking a smile away, the map's brightening is not applied: the face's own folds fade instead,
``faces.shading.lift_creases``) and ``amount = (skin_contrast / contrast_reference) ** contrast_power`` within
``[min_amount, max_amount]``: the same smile carves deeper folds under hard light than under soft light.
An expression's furrows are applied as ``exp(weight * class_weight * class_log_ratio)``: the editor asks for the
target's at the intensity and takes the source's away (``methods.mesh.expression_weights``).
``train/expression_shading.py`` builds it from FEI and London Set pairs, and the class maps from FER2013's training
faces. No learning beyond medians and one line fit.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from ..faces.shading import (SMILE_POINTS, apply_log_shading, skin_contrast, smile_coefficient,
                             texture_points)
from ..labels import EXPRESSIONS
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
        class_names: the expressions with a furrow map (``class_log_ratio``), in its order; not happy (the smile map
            above is paired and finer) nor neutral (the reference).
        class_texture_size: side of the furrow maps' texture (the same face layout as ``texture_size``, scaled);
            they come from 48-px faces, so a coarser texture holds all there is.
        class_weight: the furrow maps' scale at weight 1, chosen on validation faces.
        max_class_weight: the largest weight (either sign) applied to one class's map.
        max_class_lift: taking expressions away brightens the skin by at most this much (log units).
        class_faces: how many faces the furrow maps were taken over (for the card).
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
    class_names: list[str] | tuple[str, ...] = ()
    class_texture_size: int = 128
    class_weight: float = 1.0
    max_class_weight: float = 2.0
    max_class_lift: float = 0.05
    class_faces: int = 0

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
        unknown = [name for name in self.class_names if name not in EXPRESSIONS or name in ("happy", "neutral")]
        if unknown or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be distinct expressions other than happy and neutral, got "
                             f"{list(self.class_names)}")
        if self.class_texture_size < 16 or self.max_class_weight < 0:
            raise ValueError(f"class_texture_size must be at least 16 and max_class_weight not negative, got "
                             f"{self.class_texture_size} and {self.max_class_weight}")


class ExpressionShadingModel(ExprPreTrainedModel):
    config_class = ExpressionShadingConfig
    main_input_name = "log_ratio"
    card_summary = (
        "Expression shading for mesh-warp edits: the median expression ratio image (Liu, Shan & Zhang 2001) of real "
        "smiles over the same people's neutral photos, in a shape-free texture, per unit of smile. "
        "`model.shade(warped_photo, source_points, target_points)` multiplies the warped photo by it, warped onto "
        "the edit's mesh and scaled by the smile in the edit's motion and by the photo's lighting contrast: folds "
        "and lifted cheeks appear with a smile and fade with its undoing. The other expressions' furrows (anger's "
        "knotted brows, disgust's wrinkled nose, the lit lids under surprise's raised brows) come from the median "
        "textures of thousands of unpaired faces of each expression over neutral ones: "
        "`model.shade(..., expressions={'angry': 1.0})`."
    )

    def __init__(self, config: ExpressionShadingConfig):
        super().__init__(config)
        size = config.texture_size
        # Parameters (not buffers) so that save_pretrained stores them and from_pretrained checks they are there.
        self.log_ratio = nn.Parameter(torch.zeros(size, size), requires_grad=False)
        self.smile_direction = nn.Parameter(torch.zeros(len(config.smile_points), 2), requires_grad=False)
        self.mean_mesh = nn.Parameter(torch.zeros(NUM_POINTS, 2), requires_grad=False)
        side = config.class_texture_size
        self.class_log_ratio = nn.Parameter(torch.zeros(len(config.class_names), side, side), requires_grad=False)
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

    def class_log_shading(self, expressions: Mapping[str, float] | None) -> np.ndarray | None:
        """The furrow maps' sum for these weights (``{expression: weight}``, each clipped to ``max_class_weight``;
        expressions without a map are ignored), in the ``class_texture_size`` texture; None if none has a weight."""
        config, total = self.config, None
        for name, weight in (expressions or {}).items():
            weight = float(np.clip(weight, -config.max_class_weight, config.max_class_weight)) * config.class_weight
            if name not in config.class_names or weight == 0:
                continue
            term = weight * self._numpy(self.class_log_ratio[list(config.class_names).index(name)])
            total = term if total is None else total + term
        return total

    def shade(self, image: np.ndarray, source: np.ndarray, target: np.ndarray,
              expressions: Mapping[str, float] | None = None) -> np.ndarray:
        """``image`` (H x W (x C) uint8: the face already warped to ``target``, 468 x 2+ px) with the shading of the
        smile in the motion ``source`` -> ``target`` and the furrows of ``expressions`` (``{expression: weight}``,
        1 = the median face's, negative = taken away); the image itself where there is neither. Given
        ``expressions``, the smile's shading needs ``happy`` among them, and its sign: a smile drawn where happy is
        added, undone where it is taken away."""
        return self.shade_with_box(image, source, target, expressions)[0]

    def shade_with_box(self, image: np.ndarray, source: np.ndarray, target: np.ndarray,
                       expressions: Mapping[str, float] | None = None
                       ) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
        """:meth:`shade` and the box of the pixels it changed (None: none)."""
        image, box = np.asarray(image).copy(), None
        smile = self.smile(source, target)
        if expressions is not None:
            # Where the edit's expressions are known, a smile's shading comes with happy only: closing a surprise's
            # jaw lifts the mouth corners too, and painted a smile's cheek highlights onto a face going neutral.
            happy = float(expressions.get("happy", 0.0))
            smile = max(smile, 0.0) if happy > 0 else min(smile, 0.0) if happy < 0 else 0.0
        if abs(smile) >= 1e-3:
            weight = smile * self.amount(image, target)
            # Undoing a smile lifts this face's own folds, as far as the smile is undone (see faces.shading).
            image, box = apply_log_shading(image, target, self.texture_points, weight * self._numpy(self.log_ratio),
                                           lift=min(max(-smile, 0.0), 1.0))
        expressions = expressions or {}
        added = self.class_log_shading({name: w for name, w in expressions.items() if w > 0})
        taken = self.class_log_shading({name: w for name, w in expressions.items() if w < 0})
        if taken is not None:
            # Taking an expression away brightens its median furrows by at most this much: a median knot lifted
            # where this face has none lights the skin up (a surprise undone left the cheeks glowing).
            taken = np.minimum(taken, self.config.max_class_lift)
        furrows = added if taken is None else taken if added is None else added + taken
        if furrows is not None:
            config = self.config
            texture = texture_points(self._numpy(self.mean_mesh), config.class_texture_size,
                                     config.texture_scale * config.class_texture_size / config.texture_size)
            image, shaded = apply_log_shading(image, target, texture, furrows)
            box = shaded if box is None else box if shaded is None else \
                tuple(int(f(a, b)) for f, a, b in zip((min, min, max, max), box, shaded))
        return image, box

    def forward(self, log_ratio_weight: torch.Tensor) -> torch.Tensor:
        """The texture-space log shading for a batch of weights (``N``: smile times amount) -> ``N x S x S``."""
        return log_ratio_weight.to(self.log_ratio.dtype)[:, None, None] * self.log_ratio
