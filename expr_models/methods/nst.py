"""Neural style transfer: the face's pixels optimised towards a reference face's feature statistics, inside the face
mask (:func:`expr_models.models.style_transfer.run_style_transfer`). The reference decides the expression."""

from __future__ import annotations

import numpy as np
import torch

from ..faces.geometry import FaceBox, face_mask
from ..labels import EXPRESSIONS
from ..models.runtime import machine_is_busy, torch_threads
from ..models.style_transfer import run_style_transfer
from .base import EditingMethod, Editor, FaceToEdit


class StyleTransferEdit(EditingMethod):
    name = "nst"
    label = "NST"
    component = "style_features"
    aliases = ("styletransfer", "neuralstyletransfer")
    needs_reference = True
    needs_target = False
    reads_expression = False  # the reference face decides
    live = False  # seconds per frame
    note = ("Neural style transfer copies the expression of the **reference face** onto the photo. It optimises the "
            "pixels step by step, so it is much slower than the GANs; the target is only a label.")

    def targets(self, editor: Editor) -> tuple[str, ...]:
        return EXPRESSIONS  # the reference face decides; the target is only a label

    def reference_crop(self, editor: Editor, photo: np.ndarray, box: FaceBox) -> np.ndarray:
        return editor.processor.crop(photo, box, editor.nst_resolution)[0]

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        extractor = editor.model("style_features")
        size, device = editor.nst_resolution, editor.device
        # Everything on the extractor's device up front: run_style_transfer moves content, style and mask, not
        # style_mask.
        mask = torch.from_numpy(face_mask(size))[None, None].to(device)
        style = torch.from_numpy(face.reference_crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device)

        def transfer(pixels: torch.Tensor) -> torch.Tensor:
            content = ((pixels + 1.0) / 2.0).to(device)  # [-1, 1] -> [0, 1]
            result = run_style_transfer(content, style, extractor, mask=mask, style_mask=mask, steps=face.steps,
                                        callback=lambda step, total, loss: face.progress(
                                            step / total, f"Style transfer step {step}/{total}"))
            return result * 2.0 - 1.0

        with torch_threads(optimisation_threads(editor)):
            return editor.processor.edit_luminance(face.crop, transfer, size, 3, face.intensity)


def optimisation_threads(editor: Editor) -> int | None:
    """NST's thread count: the editor's ``num_threads`` when set; with ``"auto"``, one thread while the machine is busy
    (other requests or jobs), else torch's own setting, every idle core."""
    if editor.num_threads != "auto":
        return editor.num_threads
    return 1 if machine_is_busy() else None
