"""The interface of an editing method: what it needs, which targets it can produce, how it edits one face.

The editor (:class:`~expr_models.pipeline.ExpressionEditor`) finds and crops the faces, reads their expressions and
pastes the results back; for each face it asks the method, by name in :data:`expr_models.components.EDITING_METHODS`,
to edit one :class:`FaceToEdit`. A method reaches the editor's models, processor and settings through the
:class:`Editor` it is given, never by importing the pipeline.

A new method: one module here with a subclass of :class:`EditingMethod`, and one line in
``expr_models/components.py``. Options of its own (sliders, say) are keyword arguments of
``ExpressionEditor.edit(..., smile=0.5)``: list their names in :attr:`EditingMethod.controls`, check them in
:meth:`EditingMethod.check_controls`, read them from :attr:`FaceToEdit.controls`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping, Protocol

import numpy as np
import torch

from ..faces.geometry import CropTransform, FaceBox
from ..faces.processing import FaceImageProcessor

ProgressCallback = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening); gr.Progress fits


def no_progress(fraction: float, message: str) -> None:
    """The progress callback of a caller that asked for none."""


class Editor(Protocol):
    """What a method may use of the editor: its models, its face processor and its run settings."""

    processor: FaceImageProcessor
    store: Any  # its ModelStore: ``count`` and ``config`` of a component without loading its weights
    device: torch.device
    num_threads: int | str | None
    nst_resolution: int
    sagan_intensity: str

    def model(self, component: str, index: int = 0) -> Any: ...

    def has(self, component: str) -> bool: ...

    def generating(self) -> ContextManager[None]: ...


@dataclass
class FaceToEdit:
    """One face of a photo, as the editor hands it to a method."""

    crop: np.ndarray  # the full-resolution RGB square around the face (uint8, side x side x 3)
    points: np.ndarray  # its five landmarks (eyes, nose, mouth corners) in crop pixels, 5 x 2
    photo: np.ndarray  # the whole RGB photo
    box: FaceBox  # the face's box in the photo
    transform: CropTransform  # crop <-> photo coordinates
    target: str | None  # the canonical target expression (None: a method that needs no target)
    intensity: float  # in [0, the method's max_intensity]: how much of the expression's change to apply
    source_expression: str | None = None  # the classifier's reading of the face, when there is one
    reference_crop: np.ndarray | None = None  # the reference face, for methods that need one
    steps: int = 100  # optimisation steps, for methods that optimise
    progress: ProgressCallback = no_progress  # this face's share of the edit's progress
    controls: Mapping[str, Any] = field(default_factory=dict)  # the method's own options, checked
    smile: float | None = None  # the classifier's probability of happy for the face, when there is one
    # Set by a method that knows where its edit can reach (x0, y0, x1, y1 in crop pixels; a mesh warp's moving
    # triangles and shading), for its blend mask.
    changed_box: tuple[int, int, int, int] | None = None
    mesh: np.ndarray | None = None  # set by a method that reads the face mesh: 468 x 3, photo pixels
    notes: list[str] = field(default_factory=list)  # what the method tells the user of this face (e.g. left unchanged)


class EditingMethod:
    """One editing method. Subclasses set the class attributes and implement :meth:`targets` and
    :meth:`edit_face`; the defaults of the rest suit a method with one checkpoint of ``component``."""

    name: str  # the canonical name: ``edit(method=...)``, ``--method``, the Space's radio value
    label: str  # what a person reads (CLI help, Space, figure, reports)
    component: str  # the model component it needs (a key of expr_models.components.COMPONENTS)
    aliases: tuple[str, ...] = ()  # other names accepted for it (matched without case, dashes or underscores)
    needs_reference: bool = False  # takes a reference face photo (``edit(reference=...)``)
    needs_target: bool = True  # False: the target is only a label (the reference decides)
    live: bool = True  # fast enough for a webcam stream (the Space's live mode)
    note: str = ""  # what the Space says of it instead of the targets it can produce, where that says too little
    controls: tuple[str, ...] = ()  # the names of its own keyword options of ``ExpressionEditor.edit``
    # Whether an edit starts from the classifier's reading of the face (``FaceToEdit.source_expression`` and
    # ``smile``); where it does not, the reading only tells the user, and a caller that shows none may skip it.
    reads_expression: bool = True

    def targets(self, editor: Editor) -> tuple[str, ...]:
        """The expressions it can produce with the editor's models (empty when its checkpoint is missing)."""
        raise NotImplementedError

    def supported_controls(self, editor: Editor) -> tuple[str, ...]:
        """The controls it takes with the editor's checkpoints (empty without its checkpoint)."""
        return tuple(self.controls) if editor.has(self.component) else ()

    def max_intensity(self, editor: Editor) -> float:
        """The largest ``intensity`` it takes: 1 (the whole expression) unless it can go further."""
        return 1.0

    def prepare(self, editor: Editor, target: str | None) -> None:
        """Load what editing to ``target`` needs, now rather than on the first face."""
        editor.model(self.component)

    def check_controls(self, controls: Mapping[str, Any]) -> dict[str, Any]:
        """The method's own options, checked (unknown names are refused, as Python refuses a keyword)."""
        unknown = sorted(set(controls) - set(self.controls))
        if unknown:
            accepted = f"its options are {', '.join(self.controls)}" if self.controls else "it has no options"
            raise TypeError(f"{self.label} does not take {', '.join(map(repr, unknown))}; {accepted}.")
        return dict(controls)

    def reference_crop(self, editor: Editor, photo: np.ndarray, box: FaceBox) -> np.ndarray:
        """The crop of the reference photo's face that :meth:`edit_face` gets (methods that need a reference)."""
        return editor.processor.crop(photo, box)[0]

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        """The edited full-resolution crop (same shape and dtype as ``face.crop``)."""
        raise NotImplementedError

    def blend_mask(self, editor: Editor, face: FaceToEdit) -> np.ndarray | None:
        """The mask (``side x side`` float32 in [0, 1]) that pastes the edited crop back, or None for the editor's
        feathered face mask."""
        return None

    def crop_scale(self, editor: Editor) -> float | None:
        """How many times the detector's box the face's crop spans, or None for the editor's (the framing the
        generators were trained at)."""
        return None


def warp_refine_edit(editor: Editor, model: Any, face: FaceToEdit) -> np.ndarray:
    """A ``warp_refine`` generator (the committed CycleGAN and SA-GAN) on one face: it moves the face's own pixels in
    the aligned frame, and ``intensity`` scales the flow and the change together, so the slider is a real
    continuum."""
    with editor.generating():
        return editor.processor.edit_aligned(face.crop, face.points,
                                             lambda aligned: model.edit_aligned(aligned, face.target, face.intensity))
