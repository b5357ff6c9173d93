"""The class-conditional SA-GAN: one checkpoint, every expression of its ``class_names``."""

from __future__ import annotations

import numpy as np
import torch

from .base import EditingMethod, Editor, FaceToEdit, warp_refine_edit


class SAGANEdit(EditingMethod):
    name = "sagan"
    label = "SA-GAN"
    component = "sagan"

    def targets(self, editor: Editor) -> tuple[str, ...]:
        return tuple(editor.store.config("sagan").class_names) if editor.has("sagan") else ()

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        model = editor.model("sagan")
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
