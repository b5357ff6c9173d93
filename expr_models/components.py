"""One registry for the editor's parts: component name -> model class, checkpoint type -> component, and the editing
methods (name -> :class:`~expr_models.methods.base.EditingMethod`, each naming the component it needs).

Every other module (the editor, the evaluation, the Space, the CLI) reads these facts from here. A new model family
adds one line to ``COMPONENTS``; a new editing method adds its module in ``expr_models/methods/`` and one line to
``EDITING_METHODS``.
"""

from __future__ import annotations

from .errors import UnknownMethodError
from .methods.average import AverageEdit
from .methods.base import EditingMethod
from .methods.cyclegan import CycleGANEdit
from .methods.mesh import MeshMotionEdit
from .methods.nst import StyleTransferEdit
from .methods.sagan import SAGANEdit
from .models.average_edit import AverageEditConfig, AverageEditModel
from .models.brow_inpainter import (BrowInpainterConfig, BrowInpainterModel, EyesInpainterConfig, EyesInpainterModel,
                                    LowerFaceInpainterConfig, LowerFaceInpainterModel)
from .models.classifier import ExpressionClassifier, ExpressionClassifierConfig
from .models.cyclegan import CycleGANConfig, CycleGANModel
from .models.expression_shading import ExpressionShadingConfig, ExpressionShadingModel
from .models.face_mesh import FaceMeshConfig, FaceMeshModel
from .models.mesh_motion import MeshMotionConfig, MeshMotionModel
from .models.mouth_exemplars import MouthExemplarsConfig, MouthExemplarsModel
from .models.mouth_inpainter import (CycleGANMouthConfig, CycleGANMouthModel, MouthInpainterConfig, MouthInpainterModel,
                                     SAGANMouthConfig, SAGANMouthModel)
from .models.sagan import SAGANConfig, SAGANModel
from .models.second_reader import SecondReader, SecondReaderConfig
from .models.segmenter import FaceSegmenter, FaceSegmenterConfig
from .models.style_transfer import StyleFeatureConfig, StyleFeatureExtractor

# The editor's name for each trained component -> (config class, model class).
COMPONENTS: dict[str, tuple[type, type]] = {
    "cyclegan": (CycleGANConfig, CycleGANModel),
    "sagan": (SAGANConfig, SAGANModel),
    "classifier": (ExpressionClassifierConfig, ExpressionClassifier),
    "segmenter": (FaceSegmenterConfig, FaceSegmenter),
    "style_features": (StyleFeatureConfig, StyleFeatureExtractor),
    "average": (AverageEditConfig, AverageEditModel),
    "face_mesh": (FaceMeshConfig, FaceMeshModel),
    "mesh_motion": (MeshMotionConfig, MeshMotionModel),
    "mouth_exemplars": (MouthExemplarsConfig, MouthExemplarsModel),
    "mouth_inpainter": (MouthInpainterConfig, MouthInpainterModel),
    "cyclegan_mouth": (CycleGANMouthConfig, CycleGANMouthModel),
    "sagan_mouth": (SAGANMouthConfig, SAGANMouthModel),
    "brow_inpainter": (BrowInpainterConfig, BrowInpainterModel),
    "lower_face_inpainter": (LowerFaceInpainterConfig, LowerFaceInpainterModel),
    "eyes_inpainter": (EyesInpainterConfig, EyesInpainterModel),
    "expression_shading": (ExpressionShadingConfig, ExpressionShadingModel),
    "second_reader": (SecondReaderConfig, SecondReader),  # the evaluation's independent reader
}

# model_type in a checkpoint's config.json -> the component it is.
COMPONENT_BY_MODEL_TYPE: dict[str, str] = {config.model_type: name for name, (config, _) in COMPONENTS.items()}

# The editing methods, in the order the CLI and the Space list them.
EDITING_METHODS: dict[str, EditingMethod] = {method.name: method for method in (
    CycleGANEdit(),
    SAGANEdit(),
    StyleTransferEdit(),
    AverageEdit(),
    MeshMotionEdit(),
)}
METHODS: tuple[str, ...] = tuple(EDITING_METHODS)


def model_class(component: str) -> type:
    """The model class of a component name (``cyclegan``, ``sagan``, ``classifier``, ...)."""
    try:
        return COMPONENTS[component][1]
    except KeyError:
        raise ValueError(f"Unknown model component {component!r}; expected one of {sorted(COMPONENTS)}") from None


def editing_method(method: str) -> EditingMethod:
    """The method called ``method`` (its name or an alias; case, dashes and underscores do not matter)."""
    key = _key(method)
    for found in EDITING_METHODS.values():
        if key in {_key(name) for name in (found.name, *found.aliases)}:
            return found
    raise UnknownMethodError(f"Unknown editing method {method!r}; expected one of {', '.join(EDITING_METHODS)}.")


def canonical_method(method: str) -> str:
    """``method`` as one of METHODS (case, dashes and the long NST names accepted)."""
    return editing_method(method).name


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "").replace("_", "")
