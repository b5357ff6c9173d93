"""The second, independent expression reader: the FER2013 classifier of the MIT-licensed PyPI package
``facial-emotion-recognition`` 0.3.4 (Rayyan Akhtar), ported to PyTorch and loaded from safetensors.

It is a different network, trained by other people on other crops, so an edit's success that it confirms does not
rest on the project's own classifier (the Space's judge, which a generator may be trained against). The weights ship
as a pickle inside the package's sdist; ``train/tools/convert_second_reader.py`` reads it once and saves this model.

Its input is the package's own: a grayscale 48x48 face in [-1, 1] (``Normalize(0.5, 0.5)`` after ``ToTensor``).
The package feeds it MTCNN's tight face box; here it reads the editor's crop (``CROP_SCALE`` times the Haar-framed
box) whole: its centre 70-90% read the held-out JAFFE/FEI/London faces no better (49 or 48 right against 47 of 87,
``benchmarks/expression_readers.py --crop-fractions``).
"""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import ImageClassifierOutput

from ..labels import EXPRESSIONS
from .modeling_utils import ExprPreTrainedModel

# The package's output order (its EmotionRecognition.emotions, FER2013's label order); the conversion permutes the
# last layer into EXPRESSIONS' order, so an index means the same here as everywhere else.
PACKAGE_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@strict
class SecondReaderConfig(PreTrainedConfig):
    r"""
    Args:
        resolution: side of the square face the network reads (48: its flattened 6x6 map fixes it).
        in_channels: 1 (grayscale).
        width: channels of the first stage; the next three double it.
        hidden: width of the hidden linear layer.
        class_names: the expressions, in the order of the logits.
    """

    model_type = "expr-fer-reader"

    resolution: int = 48
    in_channels: int = 1
    width: int = 32
    hidden: int = 256
    class_names: list[str] | tuple[str, ...] = EXPRESSIONS

    def __post_init__(self, **kwargs):
        kwargs.setdefault("id2label", dict(enumerate(self.class_names)))
        kwargs.setdefault("label2id", {name: index for index, name in enumerate(self.class_names)})
        super().__post_init__(**kwargs)

    def validate_reader(self):
        if self.resolution % 8:
            raise ValueError(f"resolution must be divisible by 8 (three stride-2 stages), got {self.resolution}")


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    # The package's NetworkV2 stage; the Sequential's indices (1 conv, 2 norm) are its state dict's keys.
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3, stride),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SecondReader(ExprPreTrainedModel):
    """``NetworkV2`` of facial-emotion-recognition 0.3.4: four reflect-padded 3x3 conv-BN-ReLU stages (three with
    stride 2), then two linear layers. The package ends in a sigmoid; this returns the logits before it (the same
    argmax)."""

    config_class = SecondReaderConfig
    card_summary = (
        "The expression classifier of the MIT-licensed PyPI package facial-emotion-recognition 0.3.4 (Rayyan Akhtar), "
        "ported to PyTorch: a grayscale 48x48 face crop (`N x 1 x 48 x 48` in [-1, 1]) -> logits over angry, disgust, "
        "fear, happy, neutral, sad and surprise. expr_models uses it as a second, independent reader of edited faces."
    )

    def __init__(self, config: SecondReaderConfig):
        super().__init__(config)
        width = config.width
        self.conv_1 = _stage(config.in_channels, width, 1)
        self.conv_2 = _stage(width, 2 * width, 2)
        self.conv_3 = _stage(2 * width, 4 * width, 2)
        self.conv_4 = _stage(4 * width, 8 * width, 2)
        side = config.resolution // 8
        self.linear = nn.Sequential(nn.Linear(8 * width * side * side, config.hidden), nn.ReLU(inplace=True),
                                    nn.Linear(config.hidden, len(config.class_names)))
        self.post_init()

    def _init_weights(self, module):
        from transformers import initialization as init

        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.kaiming_normal_(module.weight, nonlinearity="relu")
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs) -> ImageClassifierOutput:
        """Logits for ``N x 1 x 48 x 48`` faces in [-1, 1] (other sizes: :func:`expr_models.evaluation.metrics.match_input`)."""
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(pixel_values))))
        logits = self.linear(x.flatten(1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
