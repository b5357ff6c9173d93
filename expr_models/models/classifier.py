"""A small CNN that reads a face crop's expression: the judge of the evaluation and the Space's before/after reading."""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import ImageClassifierOutput

from ..labels import EXPRESSIONS
from .layers import ConvNormAct
from .modeling_utils import ExprPreTrainedModel


@strict
class ExpressionClassifierConfig(PreTrainedConfig):
    r"""
    Args:
        resolution: side of the square face crop (FER2013 is 48; 64 leaves room for the editors' crops).
        in_channels: 1 (grayscale) or 3.
        class_names: the expressions, in label order.
        widths: channels of each stage; every stage is two 3x3 convs and a 2x2 max-pool.
        dropout: before the linear head.
    """

    model_type = "expr-classifier"

    resolution: int = 64
    in_channels: int = 1
    class_names: list[str] | tuple[str, ...] = EXPRESSIONS
    widths: list[int] | tuple[int, ...] = (32, 64, 128, 256)
    dropout: float = 0.3

    def __post_init__(self, **kwargs):
        kwargs.setdefault("id2label", dict(enumerate(self.class_names)))
        kwargs.setdefault("label2id", {name: index for index, name in enumerate(self.class_names)})
        super().__post_init__(**kwargs)

    def validate_classifier(self):
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.resolution % (2 ** len(self.widths)):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2**len(widths) = {2 ** len(self.widths)}")


class ExpressionClassifier(ExprPreTrainedModel):
    config_class = ExpressionClassifierConfig
    card_summary = (
        "A small VGG-style CNN that classifies the expression of a grayscale face crop (`N x 1 x 64 x 64` in [-1, 1]) "
        "into angry, disgust, fear, happy, neutral, sad or surprise. expr_models uses it to measure whether an edit "
        "reached its target expression."
    )

    def __init__(self, config: ExpressionClassifierConfig):
        super().__init__(config)
        stages: list[nn.Module] = []
        in_channels = config.in_channels
        for width in config.widths:
            stages += [ConvNormAct(in_channels, width, 3, 1, "batch"), ConvNormAct(width, width, 3, 1, "batch"),
                       nn.MaxPool2d(2)]
            in_channels = width
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config.dropout),
                                  nn.Linear(in_channels, len(config.class_names)))
        self.post_init()

    def _init_weights(self, module):
        from transformers import initialization as init

        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, 0.0, 0.01)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> ImageClassifierOutput:
        logits = self.head(self.features(pixel_values))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled features just before the linear head (``N x widths[-1]``): the space KID is measured in."""
        return self.head[:-1](self.features(pixel_values))
