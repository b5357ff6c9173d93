"""The class-conditional SA-GAN: one checkpoint, every expression of its ``class_names``."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..models.mesh_motion import CONTROLS
from .base import EditingMethod, Editor, FaceToEdit, warp_refine_edit
from .mesh import (MAX_INTENSITY, MESH_CROP_SCALE, check_controls, generator_motion, mesh_warp_edit, moves_meshes,
                   refuse_controls, source_for, warp_mask)


class SAGANEdit(EditingMethod):
    name = "sagan"
    label = "SA-GAN"
    component = "sagan"
    controls = CONTROLS  # with a mesh generator (generator_type="mesh")

    def targets(self, editor: Editor) -> tuple[str, ...]:
        return tuple(editor.store.config("sagan").class_names) if editor.has("sagan") else ()

    def supported_controls(self, editor: Editor) -> tuple[str, ...]:
        return tuple(self.controls) if moves_meshes(editor, "sagan") else ()

    def max_intensity(self, editor: Editor) -> float:
        return MAX_INTENSITY if moves_meshes(editor, "sagan") else 1.0

    def prepare(self, editor: Editor, target: str | None) -> None:
        if editor.model("sagan").config.generator_type == "mesh":
            editor.model("face_mesh")

    def check_controls(self, controls: Mapping[str, Any]) -> dict[str, Any]:
        return check_controls(super().check_controls(controls))

    def blend_mask(self, editor: Editor, face: FaceToEdit) -> np.ndarray | None:
        return warp_mask(face) if editor.model("sagan").config.generator_type == "mesh" else None

    def crop_scale(self, editor: Editor) -> float | None:
        return MESH_CROP_SCALE if moves_meshes(editor, "sagan") else None

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        model = editor.model("sagan")
        if model.config.generator_type == "mesh":
            # The prior is the median motion source -> neutral -> target: from the face's own reading.
            source = source_for(face.source_expression, face.target, tuple(model.config.class_names), face.smile)
            return mesh_warp_edit(editor, face, generator_motion(
                editor, model, face, lambda meshes: model.move_mesh(meshes, face.target, source, face.intensity)),
                source, mouth_owner="sagan")
        refuse_controls(self, model, face)
        if model.config.generator_type == "warp_refine":
            return warp_refine_edit(editor, model, face)
        config = model.config
        names = list(config.class_names)
        labels = torch.zeros(1, len(names))
        labels[0, names.index(face.target)] = 1.0
        amount = face.intensity
        if editor.sagan_intensity == "condition" and face.source_expression in names and face.intensity < 1.0:
            # Walk the condition from the face's own expression to the target: a real in-between expression, not a
            # cross-fade of two mouths.
            source = torch.zeros(1, len(names))
            source[0, names.index(face.source_expression)] = 1.0
            labels = (1.0 - face.intensity) * source + face.intensity * labels
            amount = 1.0
        with editor.generating():
            return editor.processor.edit_luminance(
                face.crop, lambda x: model.generate(x.to(editor.device), to=labels.to(editor.device)),
                config.resolution, config.in_channels, amount)
