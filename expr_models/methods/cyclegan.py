"""CycleGAN: one checkpoint per pair of expressions (its two domains); the editor may hold several."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..labels import EXPRESSIONS
from ..models.mesh_motion import CONTROLS
from .base import EditingMethod, Editor, FaceToEdit, warp_refine_edit
from .mesh import (MAX_INTENSITY, MESH_CROP_SCALE, check_controls, generator_motion, mesh_warp_edit, moves_meshes,
                   refuse_controls, warp_mask)


class CycleGANEdit(EditingMethod):
    name = "cyclegan"
    label = "CycleGAN"
    component = "cyclegan"
    controls = CONTROLS  # with mesh generators (generator_type="mesh")
    reads_expression = False  # a pair of domains: the target alone sets the direction

    def targets(self, editor: Editor) -> tuple[str, ...]:
        found: list[str] = []
        for index in range(editor.store.count("cyclegan")):
            found += [d for d in editor.store.config("cyclegan", index).domains if d not in found]
        return tuple(name for name in EXPRESSIONS if name in found) + tuple(t for t in found if t not in EXPRESSIONS)

    def supported_controls(self, editor: Editor) -> tuple[str, ...]:
        return tuple(self.controls) if moves_meshes(editor, "cyclegan") else ()

    def max_intensity(self, editor: Editor) -> float:
        return MAX_INTENSITY if moves_meshes(editor, "cyclegan") else 1.0

    def prepare(self, editor: Editor, target: str | None) -> None:
        model = editor.model("cyclegan", checkpoint_for(editor, target))
        if model.config.generator_type == "mesh":
            editor.model("face_mesh")

    def check_controls(self, controls: Mapping[str, Any]) -> dict[str, Any]:
        return check_controls(super().check_controls(controls))

    def blend_mask(self, editor: Editor, face: FaceToEdit) -> np.ndarray | None:
        model = editor.model("cyclegan", checkpoint_for(editor, face.target))
        return warp_mask(face) if model.config.generator_type == "mesh" else None

    def crop_scale(self, editor: Editor) -> float | None:
        return MESH_CROP_SCALE if moves_meshes(editor, "cyclegan") else None

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        model = editor.model("cyclegan", checkpoint_for(editor, face.target))
        if model.config.generator_type == "mesh":
            return mesh_warp_edit(editor, face, generator_motion(
                editor, model, face, lambda meshes: model.move_mesh(meshes, face.target, face.intensity)),
                mouth_owner="cyclegan")
        refuse_controls(self, model, face)
        if model.config.generator_type == "warp_refine":
            return warp_refine_edit(editor, model, face)
        # The study's generator repaints the luminance at its resolution; intensity blends the change.
        config = model.config
        with editor.generating():
            return editor.processor.edit_luminance(face.crop, lambda x: model.generate(x.to(editor.device),
                                                                                       to=face.target),
                                                   config.resolution, config.in_channels, face.intensity)


def checkpoint_for(editor: Editor, target: str | None) -> int:
    """The index of the first CycleGAN checkpoint with ``target`` among its domains."""
    return next(i for i in range(editor.store.count("cyclegan")) if target in editor.store.config("cyclegan", i).domains)
