"""The study's face segmenter: a torchvision Mask R-CNN with one foreground class, "face", trained on WIDER FACE.

WIDER FACE has boxes, not masks, so training derives a filled ellipse inside each box as its mask (see
``train/segmenter.py``). ``with_masks=False`` gives a box-only Faster R-CNN with the same backbone. The backbone size is
configurable: ``resnet50`` is the study's, the small ones fit the CPU Space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
import torchvision
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import misc as misc_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from transformers import PreTrainedConfig
from transformers.utils import ModelOutput

from .modeling_utils import ExprPreTrainedModel

RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
MOBILENET_BACKBONES = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")


@strict
class FaceSegmenterConfig(PreTrainedConfig):
    r"""
    Args:
        backbone: ``resnet18|34|50|101`` with an FPN, or ``mobilenet_v2|mobilenet_v3_small|mobilenet_v3_large``.
        with_masks: Mask R-CNN (True) or a box-only Faster R-CNN (False).
        fpn_channels: width of the feature pyramid and the mask head (torchvision uses 256).
        box_head_size: width of the box head's MLP (torchvision uses 1024).
        min_size, max_size: the shorter/longer image side that torchvision resizes to.
        smallest_anchor: the anchor size of the finest feature map, doubling from there; WIDER faces can be 10 px.
        backbone_norm: ``batch`` for training from scratch, ``frozen_batch`` for fine-tuning ImageNet weights.
        score_threshold: detections below this score are dropped at inference.
        detections_per_image: at most this many faces per photo.
    """

    model_type = "expr-face-segmenter"

    backbone: str = "mobilenet_v3_large"
    with_masks: bool = True
    min_size: int = 512
    max_size: int = 1024
    fpn_channels: int = 64
    box_head_size: int = 256
    smallest_anchor: int = 16
    backbone_norm: str = "batch"
    score_threshold: float = 0.5
    detections_per_image: int = 100

    def validate_segmenter(self):
        if self.backbone not in RESNET_BACKBONES + MOBILENET_BACKBONES:
            raise ValueError(f"Unknown backbone {self.backbone!r}; expected one of "
                             f"{', '.join(RESNET_BACKBONES + MOBILENET_BACKBONES)}")
        if self.backbone_norm not in ("batch", "frozen_batch"):
            raise ValueError(f"backbone_norm must be batch or frozen_batch, got {self.backbone_norm!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")


@dataclass
class FaceSegmenterOutput(ModelOutput):
    """Training: ``loss`` and its parts in ``losses``. Inference: ``detections``, one dict per image with ``boxes``
    (``K x 4`` xyxy pixels), ``scores`` (``K``) and, for Mask R-CNN, ``masks`` (``K x 1 x H x W`` in [0, 1])."""

    loss: torch.Tensor | None = None
    losses: dict | None = None
    detections: list | None = None


def build_backbone(config: FaceSegmenterConfig) -> BackboneWithFPN:
    """The chosen classification network, cut into stages, under a feature pyramid of ``fpn_channels``."""
    norm_layer = misc_ops.FrozenBatchNorm2d if config.backbone_norm == "frozen_batch" else nn.BatchNorm2d
    if config.backbone in RESNET_BACKBONES:
        body = getattr(torchvision.models, config.backbone)(weights=None, norm_layer=norm_layer)
        return_layers = {f"layer{index}": str(index - 1) for index in range(1, 5)}
        in_channels_list = [getattr(body, f"layer{index}")[-1].conv1.in_channels for index in range(1, 5)]
    else:
        # As torchvision's mobilenet FPN: the last two stages, found by their stride-2 ("_is_cn") blocks.
        body = getattr(torchvision.models, config.backbone)(weights=None, norm_layer=norm_layer).features
        stages = [0] + [index for index, block in enumerate(body) if getattr(block, "_is_cn", False)] + [len(body) - 1]
        return_layers = {str(stages[-2]): "0", str(stages[-1]): "1"}
        in_channels_list = [body[stages[-2]].out_channels, body[stages[-1]].out_channels]
    return BackboneWithFPN(body, return_layers, in_channels_list, config.fpn_channels, extra_blocks=LastLevelMaxPool())


def build_detector(config: FaceSegmenterConfig) -> nn.Module:
    backbone = build_backbone(config)
    n_feature_maps = 5 if config.backbone in RESNET_BACKBONES else 3  # the stages plus the max-pooled level
    smallest = config.smallest_anchor
    if n_feature_maps == 5:  # one size per FPN level, doubling
        sizes = tuple((smallest * 2**level,) for level in range(5))
    else:  # three levels: two sizes each, so the range still spans tiny to large faces
        sizes = tuple((smallest * 4**level, smallest * 4**level * 2) for level in range(3))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * n_feature_maps)
    # Smaller heads than torchvision's defaults (1024-wide box MLP, four 256-wide mask convs): one class needs less.
    heads = dict(
        box_head=TwoMLPHead(config.fpn_channels * 7 * 7, config.box_head_size),
        box_predictor=FastRCNNPredictor(config.box_head_size, 2),
    )
    common = dict(min_size=config.min_size, max_size=config.max_size, rpn_anchor_generator=anchors,
                  box_score_thresh=config.score_threshold, box_detections_per_img=config.detections_per_image)
    if not config.with_masks:
        return FasterRCNN(backbone, **heads, **common)
    mask_head = MaskRCNNHeads(config.fpn_channels, (config.fpn_channels,) * 2, 1)
    mask_predictor = MaskRCNNPredictor(config.fpn_channels, config.fpn_channels, 2)
    return MaskRCNN(backbone, **heads, mask_head=mask_head, mask_predictor=mask_predictor, **common)


class FaceSegmenter(ExprPreTrainedModel):
    config_class = FaceSegmenterConfig
    card_summary = (
        "A Mask R-CNN (torchvision) with one class, face, that finds every face in a photo and returns its box, score "
        "and a soft mask. Trained on WIDER FACE boxes with ellipse masks derived from them."
    )

    def __init__(self, config: FaceSegmenterConfig):
        super().__init__(config)
        self.detector = build_detector(config)
        self.post_init()

    def _init_weights(self, module):
        # torchvision initialises every layer of the detector in its constructors; keep that.
        pass

    def forward(self, pixel_values: list[torch.Tensor] | torch.Tensor, targets: list[dict] | None = None,
                **kwargs) -> FaceSegmenterOutput:
        """``pixel_values``: RGB images in [0, 1], a list of ``3 x H x W`` (sizes may differ) or a batch tensor."""
        images = list(pixel_values)
        if self.training:
            if targets is None:
                raise ValueError("FaceSegmenter needs targets (boxes, labels and masks) in training mode")
            losses = self.detector(images, targets)
            return FaceSegmenterOutput(loss=sum(losses.values()), losses=losses)
        return FaceSegmenterOutput(detections=self.detector(images))

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> list[dict]:
        """One ``H x W x 3`` uint8 RGB photo -> ``[{box: (x0, y0, x1, y1), score, mask: H x W float or None}]``."""
        was_training = self.training
        self.eval()
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255).to(self.device)
        detections = self.forward([tensor]).detections[0]
        self.train(was_training)
        faces = []
        for index in range(len(detections["boxes"])):
            mask = detections["masks"][index, 0].cpu().numpy() if "masks" in detections else None
            faces.append({"box": tuple(detections["boxes"][index].tolist()),
                          "score": float(detections["scores"][index]), "mask": mask})
        return faces
