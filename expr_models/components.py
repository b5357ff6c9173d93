"""One registry for the editor's parts: component name -> model class, checkpoint type -> component, method -> component.

Every other module (the editor, the evaluation, the Space, the CLI) reads these facts from here.
"""

from __future__ import annotations

from .average_edit import AverageEditConfig, AverageEditModel
from .classifier import ExpressionClassifier, ExpressionClassifierConfig
from .cyclegan import CycleGANConfig, CycleGANModel
from .sagan import SAGANConfig, SAGANModel
from .second_reader import SecondReader, SecondReaderConfig
from .segmenter import FaceSegmenter, FaceSegmenterConfig
from .style_transfer import StyleFeatureConfig, StyleFeatureExtractor

# The editor's name for each trained component -> (config class, model class).
COMPONENTS: dict[str, tuple[type, type]] = {
    "cyclegan": (CycleGANConfig, CycleGANModel),
    "sagan": (SAGANConfig, SAGANModel),
    "classifier": (ExpressionClassifierConfig, ExpressionClassifier),
    "segmenter": (FaceSegmenterConfig, FaceSegmenter),
    "style_features": (StyleFeatureConfig, StyleFeatureExtractor),
    "average": (AverageEditConfig, AverageEditModel),
    "second_reader": (SecondReaderConfig, SecondReader),  # the evaluation's independent reader
}

# model_type in a checkpoint's config.json -> the component it is.
COMPONENT_BY_MODEL_TYPE: dict[str, str] = {config.model_type: name for name, (config, _) in COMPONENTS.items()}

# Editing methods, in the order the CLI and the Space list them, and the component each one needs.
METHOD_COMPONENTS: dict[str, str] = {"cyclegan": "cyclegan", "sagan": "sagan", "nst": "style_features",
                                     "average": "average"}
METHODS: tuple[str, ...] = tuple(METHOD_COMPONENTS)
METHOD_LABELS: dict[str, str] = {"cyclegan": "CycleGAN", "sagan": "SA-GAN", "nst": "NST", "average": "Average edit"}

_METHOD_ALIASES = {"cyclegan": "cyclegan", "sagan": "sagan", "nst": "nst", "styletransfer": "nst",
                   "neuralstyletransfer": "nst", "average": "average", "averageedit": "average"}


def model_class(component: str) -> type:
    """The model class of a component name (``cyclegan``, ``sagan``, ``classifier``, ...)."""
    try:
        return COMPONENTS[component][1]
    except KeyError:
        raise ValueError(f"Unknown model component {component!r}; expected one of {sorted(COMPONENTS)}") from None


def canonical_method(method: str) -> str:
    """``method`` as one of METHODS (case, dashes and the long NST names accepted)."""
    from .errors import UnknownMethodError

    name = str(method).strip().lower().replace("-", "").replace("_", "")
    if name not in _METHOD_ALIASES:
        raise UnknownMethodError(f"Unknown editing method {method!r}; expected one of {', '.join(METHODS)}.")
    return _METHOD_ALIASES[name]
