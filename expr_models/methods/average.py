"""The average edit: real people's median flow and residual between two expressions, in the aligned frame (no
learning; :mod:`expr_models.models.average_edit`)."""

from __future__ import annotations

import numpy as np

from .base import EditingMethod, Editor, FaceToEdit


class AverageEdit(EditingMethod):
    name = "average"
    label = "Average edit"
    component = "average"
    aliases = ("averageedit",)

    def targets(self, editor: Editor) -> tuple[str, ...]:
        return tuple(editor.store.config("average").targets) if editor.has("average") else ()

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        model = editor.model("average")
        source = model.source_for(face.source_expression, face.target)
        return editor.processor.edit_aligned(face.crop, face.points,
                                             lambda aligned: model.apply(aligned, source, face.target, face.intensity))
