"""expr_models: facial-expression editing with CycleGAN, a conditional SA-GAN and neural style transfer.

Importing the package registers every model type with transformers' Auto classes, so
``AutoModel.from_pretrained(dir)`` works without ``trust_remote_code``, and gives the models their card writer and
pusher (``expr_models.hub.push.HubPublisher``): the models do not import publishing.

The rooms: ``models/`` (one file per family), ``faces/`` (geometry, detection, alignment, the crop <-> tensor
path), ``methods/`` (one module per editing method), ``hub/`` (editor repos, cards, the Space export), ``data/``,
``evaluation/`` and ``cli/``; ``pipeline`` (``ExpressionEditor``), ``components`` (the registry), ``io``, ``labels``
and ``errors`` at the top.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .components import COMPONENTS, METHODS
from .errors import (CheckpointError, ExpressionEditError, HubUnavailableError, ImageLoadError, ImageTooLargeError,
                     MissingDependencyError, NoFaceError, UnknownExpressionError, UnknownMethodError)
from .hub.push import HubPublisher
from .labels import EXPRESSIONS, EXPRESSIONS_WITH_CONTEMPT
from .models.average_edit import AverageEditConfig, AverageEditModel
from .models.classifier import ExpressionClassifier, ExpressionClassifierConfig
from .models.cyclegan import CycleGANConfig, CycleGANModel
from .models.modeling_utils import ExprPreTrainedModel
from .models.sagan import SAGANConfig, SAGANModel
from .models.segmenter import FaceSegmenter, FaceSegmenterConfig
from .models.style_transfer import StyleFeatureConfig, StyleFeatureExtractor, run_style_transfer

__version__ = "0.1.0"

MODEL_CLASSES = dict(COMPONENTS.values())  # config class -> model class

for _config_class, _model_class in MODEL_CLASSES.items():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
# The classifier is also what transformers' image-classification Auto class (and pipeline) expects.
AutoModelForImageClassification.register(ExpressionClassifierConfig, ExpressionClassifier, exist_ok=True)
ExprPreTrainedModel.publisher = HubPublisher()

__all__ = [
    "EXPRESSIONS", "EXPRESSIONS_WITH_CONTEMPT",
    "CycleGANConfig", "CycleGANModel", "SAGANConfig", "SAGANModel",
    "ExpressionClassifier", "ExpressionClassifierConfig", "FaceSegmenter", "FaceSegmenterConfig",
    "StyleFeatureConfig", "StyleFeatureExtractor", "run_style_transfer", "AverageEditConfig", "AverageEditModel",
    "ExpressionEditError", "ImageLoadError", "ImageTooLargeError", "NoFaceError", "CheckpointError",
    "HubUnavailableError", "MissingDependencyError", "UnknownMethodError", "UnknownExpressionError",
]
