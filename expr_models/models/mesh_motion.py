"""Mesh motion: where each of a face's 468 mesh points goes for a target expression, plus four sliders.

    model = MeshMotionModel.from_pretrained("checkpoints/mesh_motion")
    target = model.target_points(points, "neutral", "happy", intensity=1.0,
                                 controls={"smile": 0.3, "mouth_open": 0.0, "brows": 0.5, "eyes": -0.2})
    # points: 468 x 3 (x, y, depth), as expr_models.faces.mesh.face_mesh gives them; target: 468 x 2 photo pixels,
    # for expr_models.faces.mesh_warp.warp_crop(crop, points, target, ...)

It holds, in the canonical frame of ``expr_models.faces.mesh_motion`` (3D: head pose taken out; eye distance 1):
- ``mean_mesh``: the training faces' mean mesh, the reference each face is fitted to on its stable points;
- ``motions``: per (source, target) expression pair with data, the median over training people of the displacement
  from their source mesh to their target mesh (the baseline). A pair without its own median goes through neutral
  (source -> neutral -> target);
- ``directions``: one per control, zero outside the points it may move: ``smile`` (lips and cheeks), ``mouth_open``
  (the lips, chin and jaw: a real open mouth's shape), ``brows`` (the brows; + raises), ``eyes`` (the lids; + opens).

The expression's motion is scaled by ``intensity`` (0 to ``max_intensity``), each control's direction by its value in
[-1, 1], and the sum is turned and scaled back onto the face. Points that nothing moves keep their exact coordinates.
``mouth_open`` below 0 closes the lips by that share of the opening the edit would leave (:meth:`close_mouth`): a
fixed step back along the direction lifted a closed mouth's lower lip through the upper one.
``train/mesh_motion.py`` builds it from FEI, London Set and JAFFE meshes of training people.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from ..faces.mesh import inner_lip_gap
from ..faces.mesh_motion import normalise
from .modeling_utils import ExprPreTrainedModel

PAIR_SEPARATOR = "->"
# What ``mouth_open`` = -1 closes the lips to, in eye distances: the inner-lip gap of a closed mouth (the London Set's
# and FEI's real neutral photos of held-out people: 0.020 and 0.021 at the median).
CLOSED_LIP_GAP = 0.02
CONTROLS = ("smile", "mouth_open", "brows", "eyes")
NUM_POINTS = 468


def pair_name(source: str, target: str) -> str:
    return f"{source}{PAIR_SEPARATOR}{target}"


@strict
class MeshMotionConfig(PreTrainedConfig):
    r"""
    Args:
        pairs: the expression pairs with a measured median motion, ``"source->target"``, in the order of ``motions``.
        subjects: how many training people each pair's median was taken over (same order; for the card).
        controls: the control names, in the order of ``directions``.
        control_points: for each control, the mesh point indices its direction may move.
        max_intensity: the largest intensity accepted (the expression's median motion times this).
        num_points: mesh points (MediaPipe Face Mesh: 468).
        dims: coordinates per point of the canonical frame: 3 (x, y and the mesh's depth, so head turns are taken
            out in 3D) or 2 (the image plane).
    """

    model_type = "expr-mesh-motion"  # the repo's configs all start with expr-

    pairs: list[str] | tuple[str, ...] = ("neutral->happy", "happy->neutral")
    subjects: list[int] | tuple[int, ...] = ()
    controls: list[str] | tuple[str, ...] = CONTROLS
    control_points: list[list[int]] | tuple[tuple[int, ...], ...] = ((), (), (), ())
    max_intensity: float = 1.5
    num_points: int = NUM_POINTS
    dims: int = 3

    def validate_mesh_motion(self):
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if not self.pairs or len(set(self.pairs)) != len(self.pairs):
            raise ValueError(f"pairs must be distinct and at least one, got {self.pairs}")
        for pair in self.pairs:
            parts = pair.split(PAIR_SEPARATOR)
            if len(parts) != 2 or parts[0] == parts[1]:
                raise ValueError(f"a pair is 'source->target' with two different expressions, not {pair!r}")
        if len(self.control_points) != len(self.controls):
            raise ValueError(f"{len(self.controls)} controls but {len(self.control_points)} point sets")
        for name, points in zip(self.controls, self.control_points):
            if any(not 0 <= int(i) < self.num_points for i in points):
                raise ValueError(f"control {name!r} names a point outside 0..{self.num_points - 1}")

    @property
    def expressions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(part for pair in self.pairs for part in pair.split(PAIR_SEPARATOR)))


class MeshMotionModel(ExprPreTrainedModel):
    config_class = MeshMotionConfig
    main_input_name = "canonical_points"
    card_summary = (
        "Mesh motion for expression edits: the median displacement of the 468 MediaPipe Face Mesh points between "
        "real people's photos of two expressions, in a canonical frame (eyes level, eye distance 1), and four "
        "control directions (smile, mouth open, brows, eyes) that move only their own points. "
        "`model.target_points(points, 'neutral', 'happy', intensity, controls)` gives where a face's points go; "
        "`expr_models.faces.mesh_warp.warp_crop` moves the photo's pixels there."
    )

    def __init__(self, config: MeshMotionConfig):
        super().__init__(config)
        n = config.num_points
        # Parameters (not buffers) so that save_pretrained stores them and from_pretrained checks they are there;
        # float32 (what from_pretrained loads), used in float64 numpy.
        d = config.dims
        self.mean_mesh = nn.Parameter(torch.zeros(n, d), requires_grad=False)
        self.motions = nn.Parameter(torch.zeros(len(config.pairs), n, d), requires_grad=False)
        self.directions = nn.Parameter(torch.zeros(len(config.controls), n, d),
                                       requires_grad=False)
        self.post_init()

    def _init_weights(self, module):
        pass  # measured, not initialised; zeros are no motion

    # --- the motion in the canonical frame ------------------------------------------------------------------------
    def pair_motion(self, source: str, target: str) -> np.ndarray:
        """The median motion ``source -> target`` (468 x dims, eye distances): its own, else through neutral."""
        if source == target:
            return np.zeros((self.config.num_points, self.config.dims))
        pairs = list(self.config.pairs)
        name = pair_name(source, target)
        if name in pairs:
            return self.motions[pairs.index(name)].detach().cpu().numpy().astype(np.float64)
        legs = [pair_name(a, b) for a, b in ((source, "neutral"), ("neutral", target)) if a != b]
        if all(leg in pairs for leg in legs):
            return sum(self.motions[pairs.index(leg)].detach().cpu().numpy().astype(np.float64) for leg in legs)
        raise ValueError(f"This mesh motion has no {name!r} (it holds {', '.join(pairs)})")

    def control_motion(self, controls: Mapping[str, float] | None) -> np.ndarray:
        """The controls' summed motion (468 x dims); each value is clipped to [-1, 1]. ``mouth_open`` below 0 adds
        nothing here: how far it closes the lips depends on their opening (:meth:`close_mouth`)."""
        motion = np.zeros((self.config.num_points, self.config.dims))
        for name, value in (controls or {}).items():
            if name not in self.config.controls:
                raise ValueError(f"unknown control {name!r}; the controls are {', '.join(self.config.controls)}")
            value = float(np.clip(value, 0.0 if name == "mouth_open" else -1.0, 1.0))
            if value:
                index = list(self.config.controls).index(name)
                motion += value * self.directions[index].detach().cpu().numpy().astype(np.float64)
        return motion

    def motion(self, source: str, target: str, intensity: float = 1.0,
               controls: Mapping[str, float] | None = None) -> np.ndarray:
        """The canonical displacement (468 x dims) of an edit: the expression's, scaled, plus the controls'."""
        intensity = float(np.clip(intensity, 0.0, self.config.max_intensity))
        motion = self.control_motion(controls)
        if intensity and source != target:
            motion = motion + intensity * self.pair_motion(source, target)
        return motion

    # --- onto a face ----------------------------------------------------------------------------------------------
    def target_points(self, points: np.ndarray, source: str, target: str, intensity: float = 1.0,
                      controls: Mapping[str, float] | None = None) -> np.ndarray:
        """Where a face's mesh points (468 x dims, photo or crop pixels; x, y and the mesh's depth for a 3D model) go
        for the edit (468 x 2, same pixels).

        The canonical motion is turned and scaled onto this face by the similarity that fits its stable points to
        the mean mesh (in 3D: the head's own turn too), and seen in the image plane. A point with no motion keeps
        its coordinates bit for bit."""
        points = self._checked(points)
        return self.with_controls(points, self._moved(points, points[:, :2], self.motion(source, target, intensity)),
                                  controls)

    def with_controls(self, points: np.ndarray, moved: np.ndarray,
                      controls: Mapping[str, float] | None) -> np.ndarray:
        """``moved`` (468 x 2, where an edit sends a face's ``points``: this model's motion or a generator's) plus the
        controls' motion; a ``mouth_open`` below 0 then closes the lips by that share of their opening there
        (:meth:`close_mouth`)."""
        points = self._checked(points)
        result = self._moved(points, moved, self.control_motion(controls))
        closing = -float(np.clip((controls or {}).get("mouth_open", 0.0), -1.0, 0.0))
        return self.close_mouth(points, result, closing) if closing else result

    def close_mouth(self, points: np.ndarray, target: np.ndarray, share: float) -> np.ndarray:
        """``target`` (468 x 2, where an edit sends a face's ``points``) with the lips closed by ``share`` (0 to 1) of
        the way from their opening there to a closed mouth's (``CLOSED_LIP_GAP``): the ``mouth_open`` points moved
        back along its direction. Lips no further apart than a closed mouth's stay as they are (and all of them, where
        the direction does not part this face's lips)."""
        points = self._checked(points)
        target = np.asarray(target, np.float64)
        excess = inner_lip_gap(target) - CLOSED_LIP_GAP
        if share <= 0 or excess <= 0:
            return target.copy()
        direction = self.directions[list(self.config.controls).index("mouth_open")].detach().cpu().numpy()
        direction = direction.astype(np.float64)
        # How far one step back along the direction closes this face's lips, as seen in the photo (a turned head
        # sees less of it than the canonical frame's 0.3 eye distances); the gap is linear in the step.
        per_step = inner_lip_gap(target) - inner_lip_gap(self._moved(points, target, -direction))
        if per_step <= 0:  # a direction that does not part these lips cannot close them
            return target.copy()
        return self._moved(points, target, -min(share, 1.0) * excess / per_step * direction)

    def _checked(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)
        if points.shape[0] != self.config.num_points or points.shape[1] < self.config.dims:
            raise ValueError(f"expected {self.config.num_points} x {self.config.dims} mesh points, got {points.shape}")
        return points

    def _moved(self, points: np.ndarray, target: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """``target`` (468 x 2) plus the canonical ``motion`` turned and scaled onto the face at ``points``."""
        result = np.array(target[:, :2], np.float64)
        moved = np.any(motion != 0, axis=1)
        if moved.any():
            _, frame = normalise(points, self.mean_mesh.detach().cpu().numpy())
            result[moved] += frame.vectors_to_photo(motion[moved])[:, :2]
        return result

    def forward(self, canonical_points: torch.Tensor, pair_index: torch.Tensor, intensity: torch.Tensor,
                controls: torch.Tensor | None = None) -> torch.Tensor:
        """Batched, in the canonical frame: ``N x 468 x dims`` points, ``N`` pair indices (into ``config.pairs``) and
        intensities, optional ``N x 4`` control values -> the moved canonical points. ``mouth_open`` below 0 moves
        nothing here (closing depends on each face's opening: :meth:`close_mouth`)."""
        motion = intensity.to(self.motions.dtype)[:, None, None] * self.motions[pair_index]
        if controls is not None:
            low = torch.tensor([0.0 if name == "mouth_open" else -1.0 for name in self.config.controls])
            values = torch.maximum(controls.to(self.directions.dtype).clamp(max=1), low.to(self.directions.dtype))
            motion = motion + torch.einsum("nc,cpd->npd", values, self.directions)
        return canonical_points.to(motion.dtype) + motion
