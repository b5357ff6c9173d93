"""CycleGAN: one checkpoint per pair of expressions (its two domains); the editor may hold several."""

from __future__ import annotations

import numpy as np

from ..labels import EXPRESSIONS
from .base import EditingMethod, Editor, FaceToEdit, warp_refine_edit


class CycleGANEdit(EditingMethod):
    name = "cyclegan"
    label = "CycleGAN"
    component = "cyclegan"

    def targets(self, editor: Editor) -> tuple[str, ...]:
        found: list[str] = []
        for index in range(editor.store.count("cyclegan")):
            found += [d for d in editor.store.config("cyclegan", index).domains if d not in found]
        return tuple(name for name in EXPRESSIONS if name in found) + tuple(t for t in found if t not in EXPRESSIONS)

    def prepare(self, editor: Editor, target: str | None) -> None:
        editor.model("cyclegan", checkpoint_for(editor, target))

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        model = editor.model("cyclegan", checkpoint_for(editor, face.target))
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
