"""Mouth exemplars: real open-mouth interiors (teeth, gums, cavity) for filling a mouth that an edit opens.

    model = MouthExemplarsModel.from_pretrained("checkpoints/mouth_exemplars")
    exemplar = model.closest(target_inner_lips)        # the stored mouth whose inner-lip shape is nearest
    # exemplar.interior: 48 x 128 x 3 uint8 in the mouth frame of expr_models.faces.mouth_fill; exemplar.lip_colour

It holds, per exemplar (one open smile of a London Set training person, CC BY 4.0):
- ``interiors``: the interior inside the inner lips, mapped onto the fixed template polygon of
  ``expr_models.faces.mouth_fill`` (``frame_height x frame_width x 3``, 0..255 held exactly in float16);
- ``shapes``: the 20 inner-lip points normalised by the mouth's width (``mouth_fill.lip_shape``): the retrieval key;
- ``lip_colours`` and ``skin_colours``: the mean RGB of the lips (between the outer and inner contours) and of the
  skin around the mouth, the brightness references the fill relights against.

``train/mouth_exemplars.py`` builds it. No learning.
"""

from __future__ import annotations

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from ..faces.mouth_fill import FRAME_HEIGHT, FRAME_WIDTH, Exemplar, edge_clarity, lip_shape
from .modeling_utils import ExprPreTrainedModel

LIP_POINTS = 20


@strict
class MouthExemplarsConfig(PreTrainedConfig):
    r"""
    Args:
        num_exemplars: how many open mouths are stored.
        frame_height: the mouth frame's height in pixels.
        frame_width: the mouth frame's width in pixels.
        subjects: the London Set id of each exemplar's person (same order; for the card and attribution).
        gaps: each exemplar's inner-lip gap in eye distances (``faces.mesh.inner_lip_gap``).
        max_distance: a target inner-lip shape farther than this from every exemplar (mean point distance, mouth
            widths) gets none: a smile's teeth do not fit a round surprised mouth. None: no limit.
    """

    model_type = "expr-mouth-exemplars"

    num_exemplars: int = 1
    frame_height: int = FRAME_HEIGHT
    frame_width: int = FRAME_WIDTH
    subjects: list[str] | tuple[str, ...] = ()
    gaps: list[float] | tuple[float, ...] = ()
    max_distance: float | None = None

    def validate_mouth_exemplars(self):
        if self.num_exemplars < 1:
            raise ValueError(f"num_exemplars must be at least 1, got {self.num_exemplars}")
        if (self.frame_height, self.frame_width) != (FRAME_HEIGHT, FRAME_WIDTH):
            raise ValueError(f"the mouth frame is {FRAME_HEIGHT} x {FRAME_WIDTH} (expr_models.faces.mouth_fill), "
                             f"got {self.frame_height} x {self.frame_width}")


class MouthExemplarsModel(ExprPreTrainedModel):
    config_class = MouthExemplarsConfig
    main_input_name = "shapes"
    card_summary = (
        "Mouth exemplars for expression edits: real open-mouth interiors (teeth, gums, cavity) of London Set smiles, "
        "each mapped into a fixed mouth frame, with its inner-lip shape (the retrieval key) and lip colour. "
        "`model.closest(inner_lips)` gives the nearest; `expr_models.faces.mouth_fill.fill_mouth` warps it into a "
        "newly opened mouth and relights it to the person; `expr_models.faces.mouth_fill.gasp_teeth` draws the "
        "edges of a stored mouth's upper teeth under the upper lip of a gasp."
    )

    def __init__(self, config: MouthExemplarsConfig):
        super().__init__(config)
        n = config.num_exemplars
        # Parameters (not buffers) so that save_pretrained stores them and from_pretrained checks they are there.
        self.interiors = nn.Parameter(torch.zeros(n, config.frame_height, config.frame_width, 3, dtype=torch.float16),
                                      requires_grad=False)
        self.shapes = nn.Parameter(torch.zeros(n, LIP_POINTS, 2), requires_grad=False)
        self.lip_colours = nn.Parameter(torch.zeros(n, 3), requires_grad=False)
        self.skin_colours = nn.Parameter(torch.zeros(n, 3), requires_grad=False)
        self.post_init()

    def _init_weights(self, module):
        pass  # photographed, not initialised

    def distances(self, inner_lips: np.ndarray) -> np.ndarray:
        """The distance (mean point distance, mouth widths) of each stored shape to these inner lips (20 x 2)."""
        shape = lip_shape(inner_lips)
        stored = self.shapes.detach().cpu().double().numpy()
        return np.linalg.norm(stored - shape[None], axis=2).mean(1)

    def exemplar(self, index: int) -> Exemplar:
        interior = self.interiors[index].detach().cpu().float().numpy()
        return Exemplar(np.clip(np.round(interior), 0, 255).astype(np.uint8),
                        self.lip_colours[index].detach().cpu().float().numpy())

    def shape(self, index: int) -> np.ndarray:
        """The stored inner-lip shape of exemplar ``index`` (20 x 2, mouth widths: ``mouth_fill.lip_shape``)."""
        return self.shapes[index].detach().cpu().double().numpy()

    def edge_clarities(self) -> np.ndarray:
        """Per exemplar, how cleanly its upper teeth end (``mouth_fill.edge_clarity``): measured on first use (40 ms
        for 28) and kept, since only a gasp asks."""
        if getattr(self, "_edge_clarities", None) is None:
            self._edge_clarities = np.array([edge_clarity(self.exemplar(index))
                                             for index in range(self.config.num_exemplars)])
        return self._edge_clarities

    def closest(self, inner_lips: np.ndarray) -> Exemplar | None:
        """The exemplar whose inner-lip shape is nearest to ``inner_lips`` (20 x 2, any pixels); None where even
        that one is farther than ``config.max_distance``."""
        distances = self.distances(inner_lips)
        best = int(np.argmin(distances))
        limit = self.config.max_distance
        return None if limit is not None and distances[best] > limit else self.exemplar(best)

    def forward(self, shapes: torch.Tensor) -> torch.Tensor:
        """Batched retrieval: ``N x 20 x 2`` normalised inner-lip shapes -> ``N`` exemplar indices."""
        stored = self.shapes.to(shapes.dtype)
        return torch.linalg.vector_norm(shapes[:, None] - stored[None], dim=-1).mean(-1).argmin(1)
