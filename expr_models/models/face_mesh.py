"""MediaPipe Face Mesh's landmark network in PyTorch: 468 face points (x, y, z) from a 192x192 face crop.

The weights are Google's ``face_landmark.tflite`` (Apache-2.0) from the ``mediapipe==0.10.21`` wheel, converted once by
``train/tools/convert_face_mesh.py`` into ``checkpoints/face_mesh/``; at run time only torch is needed. The network is
MediaPipe's BlazeFace-style residual net: a stride-2 stem, residual blocks (3x3 depthwise conv, 1x1 conv, PReLU after
the sum; a stride-2 block adds a 2x2 max-pooled, zero-channel-padded shortcut) down to 3x3, then two heads on the 6x6
features: the 1404 landmark values and a face-presence logit.

TensorFlow's ``SAME`` padding differs from PyTorch's on stride-2 layers (all of it on the bottom/right), so those pad
explicitly. Cutting the crop and mapping the points back to the photo is ``expr_models.faces.mesh``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import ModelOutput

from .modeling_utils import ExprPreTrainedModel


@strict
class FaceMeshConfig(PreTrainedConfig):
    r"""
    Args:
        image_size: side of the square input crop, in pixels (MediaPipe's model: 192).
        num_landmarks: points predicted, each (x, y, z) in crop pixels (468).
        stem_channels: width of the stride-2 stem and the first, full-resolution stage.
        stem_blocks: residual blocks after the stem, before the first downsampling.
        stage_channels: width of each later stage; each starts with a stride-2 block.
        blocks_per_stage: residual blocks per later stage, the stride-2 one included.
        landmark_blocks: 128-wide blocks of the landmark head (the first one stride 2).
        presence_blocks: 128-wide blocks of the face-presence head (the first one stride 2).
        head_channels: width of both heads after their 1x1 reduction (each then has one residual block).
        weights_source: where the weights came from, recorded for the model card.
    """

    model_type = "expr-face-mesh"

    image_size: int = 192
    num_landmarks: int = 468
    stem_channels: int = 16
    stem_blocks: int = 2
    stage_channels: list[int] | tuple[int, ...] = (32, 64, 128, 128)
    blocks_per_stage: int = 3
    landmark_blocks: int = 3
    presence_blocks: int = 1
    head_channels: int = 32
    weights_source: str = "random initialisation"

    def validate_face_mesh(self):
        # Five halvings (stem + four stages) and one more in each head leave 3x3, which the final 3x3 conv reads.
        halvings = 2 + len(self.stage_channels)
        if self.image_size != 3 * 2**halvings:
            raise ValueError(f"image_size {self.image_size} must halve {halvings} times to 3")
        if min(self.blocks_per_stage, self.landmark_blocks, self.presence_blocks) < 1:
            raise ValueError("every stage and head needs at least one block")


@dataclass
class FaceMeshOutput(ModelOutput):
    """``landmarks``: ``N x num_landmarks x 3``, (x, y, z) in pixels of the input crop (z: depth, same scale as x,
    smaller towards the camera). ``presence_logits``: ``N``; sigmoid > 0.5 means a face fills the crop."""

    landmarks: torch.Tensor | None = None
    presence_logits: torch.Tensor | None = None


def _same_pad(hidden: torch.Tensor, stride: int) -> torch.Tensor:
    # TensorFlow's SAME for a 3x3 kernel: 1 each side at stride 1; at stride 2 on an even size, 1 at bottom/right.
    return F.pad(hidden, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class ResidualBlock(nn.Module):
    """PReLU(x + conv1x1(depthwise3x3(x))); stride 2 halves the size, and the shortcut is max-pooled and padded with
    zero channels up to the output width."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride, self.extra_channels = stride, out_channels - in_channels
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride=stride, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.act = nn.PReLU(out_channels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        branch = self.pointwise(self.depthwise(_same_pad(hidden, self.stride)))
        shortcut = F.max_pool2d(hidden, 2) if self.stride == 2 else hidden
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(shortcut + branch)


class Head(nn.Module):
    """128-wide blocks (the first stride 2), a 1x1 reduction with PReLU, one narrow block, and a 3x3 valid conv that
    reads the whole 3x3 map."""

    def __init__(self, in_channels: int, blocks: int, channels: int, outputs: int):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(in_channels, in_channels, 2 if i == 0 else 1)
                                      for i in range(blocks)])
        self.reduce = nn.Conv2d(in_channels, channels, 1)
        self.reduce_act = nn.PReLU(channels)
        self.refine = ResidualBlock(channels, channels)
        self.out = nn.Conv2d(channels, outputs, 3, stride=3)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.refine(self.reduce_act(self.reduce(self.blocks(hidden))))
        return self.out(hidden).flatten(1)


class FaceMeshModel(ExprPreTrainedModel):
    """468 face points from ``N x 3 x 192 x 192`` RGB crops in [-1, 1] (the package's convention; the network itself
    sees [0, 1]). The crop must be cut as :func:`expr_models.faces.mesh.mesh_crop` cuts it."""

    config_class = FaceMeshConfig
    main_input_name = "pixel_values"
    card_summary = (
        "MediaPipe Face Mesh's face-landmark network (468 points with depth, and a face-presence score) ported to "
        "PyTorch: Google's `face_landmark.tflite` from the mediapipe 0.10.21 wheel, weights unchanged. Input: a "
        "192x192 RGB face crop, eyes level, with margin, in [-1, 1]. Output: (x, y, z) per point in crop pixels."
    )

    def __init__(self, config: FaceMeshConfig):
        super().__init__(config)
        self.stem = nn.Conv2d(3, config.stem_channels, 3, stride=2)
        self.stem_act = nn.PReLU(config.stem_channels)
        blocks, width = [ResidualBlock(config.stem_channels, config.stem_channels)
                         for _ in range(config.stem_blocks)], config.stem_channels
        for channels in config.stage_channels:
            blocks += [ResidualBlock(width if i == 0 else channels, channels, 2 if i == 0 else 1)
                       for i in range(config.blocks_per_stage)]
            width = channels
        self.backbone = nn.Sequential(*blocks)
        self.landmark_head = Head(width, config.landmark_blocks, config.head_channels, 3 * config.num_landmarks)
        self.presence_head = Head(width, config.presence_blocks, config.head_channels, 1)
        self.post_init()
        self.eval()

    def _init_weights(self, module):
        # The weights are always converted ones (train/tools/convert_face_mesh.py); torch's defaults suffice.
        pass

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> FaceMeshOutput:
        hidden = (pixel_values + 1) / 2
        hidden = self.stem_act(self.stem(_same_pad(hidden, 2)))
        hidden = self.backbone(hidden)
        landmarks = self.landmark_head(hidden).view(-1, self.config.num_landmarks, 3)
        return FaceMeshOutput(landmarks=landmarks, presence_logits=self.presence_head(hidden)[:, 0])

    @torch.inference_mode()
    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points and presence for ``N x S x S x 3`` uint8 RGB crops (``S`` = ``image_size``), as numpy: points
        ``N x num_landmarks x 3`` float32 in crop pixels, presence ``N`` float32 in [0, 1] (sigmoid of the logit)."""
        crops = np.asarray(crops)
        size = self.config.image_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ValueError(f"crops must be N x {size} x {size} x 3 RGB, got {crops.shape}")
        parameter = next(self.parameters())
        pixels = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
        pixels = pixels.to(parameter.device, parameter.dtype) / 127.5 - 1
        landmarks, presence_logits = self.run_network(pixels)
        return landmarks.float().cpu().numpy(), torch.sigmoid(presence_logits.float()).cpu().numpy()

    def onnx_network(self) -> nn.Module:
        return _PointsAndPresence(self)

    def onnx_example_inputs(self) -> tuple[torch.Tensor]:
        size = self.config.image_size
        return (torch.rand(2, 3, size, size) * 2 - 1,)


class _PointsAndPresence(nn.Module):
    """The face mesh's forward as plain tensors (what an ONNX graph returns): landmarks and presence logits."""

    def __init__(self, model: FaceMeshModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(pixel_values)
        return output.landmarks, output.presence_logits
