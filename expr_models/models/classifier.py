"""A small CNN that reads a face crop's expression: the judge of the evaluation and the Space's before/after reading.

Two bodies: ``vgg`` (two 3x3 convs and a max-pool per stage, the first committed classifier) and ``resnet`` (a 3x3
stride-2 stem, then basic residual blocks, the first of each later stage with stride 2). ``temperature`` divides the
logits (fitted on validation faces after training), so the Space's percentages are calibrated; ``flip_average``
averages the logits of the face and its mirror image in eval mode.
"""

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
        widths: channels of each stage. ``vgg``: every stage is two 3x3 convs and a 2x2 max-pool.
        dropout: before the linear head.
        architecture: ``vgg`` or ``resnet``.
        blocks: ``resnet`` only: basic residual blocks per stage (the stem halves the side, every later stage too).
        temperature: the logits are divided by it (temperature scaling; 1 = as trained).
        class_bias: added to the logits before the temperature (a logit adjustment for rare classes; None = 0).
        flip_average: in eval mode, average the logits of the face and its horizontal mirror.
    """

    model_type = "expr-classifier"

    resolution: int = 64
    in_channels: int = 1
    class_names: list[str] | tuple[str, ...] = EXPRESSIONS
    widths: list[int] | tuple[int, ...] = (32, 64, 128, 256)
    dropout: float = 0.3
    architecture: str = "vgg"
    blocks: list[int] | tuple[int, ...] = (1, 2, 2, 1)
    temperature: float = 1.0
    class_bias: list[float] | None = None
    flip_average: bool = False

    def __post_init__(self, **kwargs):
        kwargs.setdefault("id2label", dict(enumerate(self.class_names)))
        kwargs.setdefault("label2id", {name: index for index, name in enumerate(self.class_names)})
        super().__post_init__(**kwargs)

    def validate_classifier(self):
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.architecture not in ("vgg", "resnet"):
            raise ValueError(f"architecture must be 'vgg' or 'resnet', got {self.architecture!r}")
        if self.architecture == "resnet" and len(self.blocks) != len(self.widths):
            raise ValueError(f"blocks ({len(self.blocks)} stages) and widths ({len(self.widths)}) differ in length")
        if self.class_bias is not None and len(self.class_bias) != len(self.class_names):
            raise ValueError(f"class_bias has {len(self.class_bias)} values for {len(self.class_names)} classes")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.resolution % (2 ** len(self.widths)):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2**len(widths) = {2 ** len(self.widths)}")


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN) shortcut, then ReLU (He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride, "batch")
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, 1, "batch", activation="none")
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else \
            ConvNormAct(in_channels, out_channels, 1, stride, "batch", activation="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def resnet_body(config: ExpressionClassifierConfig) -> nn.Sequential:
    layers: list[nn.Module] = [ConvNormAct(config.in_channels, config.widths[0], 3, 2, "batch")]
    in_channels = config.widths[0]
    for stage, (width, count) in enumerate(zip(config.widths, config.blocks)):
        for index in range(count):
            layers.append(BasicBlock(in_channels, width, 2 if stage > 0 and index == 0 else 1))
            in_channels = width
    return nn.Sequential(*layers)


class ExpressionClassifier(ExprPreTrainedModel):
    config_class = ExpressionClassifierConfig
    card_summary = (
        "A small CNN (VGG-style or residual: `architecture` in the configuration) that classifies the expression of a "
        "grayscale face crop (`N x 1 x resolution x resolution` in [-1, 1]) into angry, disgust, fear, happy, neutral, "
        "sad or surprise. expr_models uses it to measure whether an edit reached its target expression, and the Space "
        "shows its calibrated probabilities."
    )

    def __init__(self, config: ExpressionClassifierConfig):
        super().__init__(config)
        if config.architecture == "resnet":
            self.features = resnet_body(config)
        else:
            stages: list[nn.Module] = []
            in_channels = config.in_channels
            for width in config.widths:
                stages += [ConvNormAct(in_channels, width, 3, 1, "batch"), ConvNormAct(width, width, 3, 1, "batch"),
                           nn.MaxPool2d(2)]
                in_channels = width
            self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config.dropout),
                                  nn.Linear(config.widths[-1], len(config.class_names)))
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

    def train(self, mode: bool = True) -> "ExpressionClassifier":
        # In eval mode the weights go channels_last: CPU convs then take oneDNN's path, where NCHW weights fall to
        # the slow im2col one at batch 1 (one face, 1 thread: 16.7 -> 9.6 ms measured); the numbers are the same.
        super().train(mode)
        if not mode:
            self.to(memory_format=torch.channels_last)
        return self

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> ImageClassifierOutput:
        # With labels it is training: torch's forward (run_network itself falls back to torch wherever its graph
        # cannot serve: training mode, gradients, autocast).
        logits = self.logits(pixel_values) if labels is not None else self.run_network(pixel_values)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The calibrated logits by torch (``forward`` runs the checkpoint's ONNX graph of this where it can)."""
        if self.config.flip_average and not self.training:
            # the face and its mirror in one batch: at batch 1 one pass of two costs less than two passes of one
            count = pixel_values.shape[0]
            both = self.head(self.features(torch.cat([pixel_values, pixel_values.flip(-1)])))
            logits = (both[:count] + both[count:]) / 2
        else:
            logits = self.head(self.features(pixel_values))
        if self.config.class_bias is not None:
            logits = logits + logits.new_tensor(self.config.class_bias)
        return logits / self.config.temperature

    def onnx_network(self) -> nn.Module:
        return _Logits(self)

    def onnx_example_inputs(self) -> tuple[torch.Tensor]:
        size = self.config.resolution
        return (torch.rand(2, self.config.in_channels, size, size) * 2 - 1,)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled features just before the linear head (``N x widths[-1]``): the space KID is measured in."""
        return self.head[:-1](self.features(pixel_values))


class _Logits(nn.Module):
    """The classifier's calibrated logits as one tensor (what its ONNX graph returns)."""

    def __init__(self, model: ExpressionClassifier):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.logits(pixel_values)
