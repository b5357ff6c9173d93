"""Building blocks shared by the GANs and the classifier.

Each block is written once here; model files only arrange them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation a config names: ``instance`` (CycleGAN/StarGAN), ``batch``, ``group`` or ``none``."""
    if kind == "instance":
        # Affine instance norm, as in StarGAN; track no running stats so train and eval behave the same.
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; expected instance, batch, group or none")


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
         bias: bool = True, spectral: bool = False, padding_mode: str = "zeros") -> nn.Conv2d:
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias, padding_mode=padding_mode)
    return spectral_norm(layer) if spectral else layer


class ConvNormAct(nn.Sequential):
    """conv -> norm -> activation, the unit every encoder here is made of."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, norm: str = "instance",
                 activation: str = "relu", spectral: bool = False, padding_mode: str = "zeros"):
        layers = [
            conv(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=norm == "none",
                 spectral=spectral, padding_mode=padding_mode),
            norm_layer(norm, out_channels),
        ]
        if activation == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif activation == "leaky_relu":
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        elif activation != "none":
            raise ValueError(f"Unknown activation {activation!r}")
        super().__init__(*layers)


class UpConvNormAct(nn.Sequential):
    """2x nearest upsampling then a 3x3 conv: avoids the checkerboard artefacts of transposed convs."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "instance", padding_mode: str = "zeros"):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvNormAct(in_channels, out_channels, 3, 1, norm, "relu", padding_mode=padding_mode),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip, as in the reference CycleGAN ResNet generator."""

    def __init__(self, channels: int, norm: str = "instance", padding_mode: str = "reflect", dropout: float = 0.0):
        super().__init__()
        self.block = nn.Sequential(
            ConvNormAct(channels, channels, 3, 1, norm, "relu", padding_mode=padding_mode),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            ConvNormAct(channels, channels, 3, 1, norm, "none", padding_mode=padding_mode),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class InpaintingUNet(nn.Module):
    """The inpainters' U-Net: levels H .. H/8 (H and W divisible by 8), residual blocks at the bottom, skip
    connections merged by a convolution at each level, ``out_channels`` out through tanh. Its input is whatever the
    model stacks: the image with its hole blanked, the hole, and the conditioning maps."""

    def __init__(self, in_channels: int, out_channels: int, channels: int = 32, residual_blocks: int = 4,
                 norm: str = "instance"):
        super().__init__()
        widths = [channels, channels * 2, channels * 4, channels * 8]
        self.stem = ConvNormAct(in_channels, widths[0], 5, 1, norm, "relu")
        self.down = nn.ModuleList(ConvNormAct(widths[k], widths[k + 1], 3, 2, norm, "relu") for k in range(3))
        self.middle = nn.Sequential(*(ResidualBlock(widths[3], norm, "zeros") for _ in range(residual_blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                          ConvNormAct(widths[k + 1], widths[k], 3, 1, norm, "relu"))
            for k in range(3))
        self.merge = nn.ModuleList(ConvNormAct(widths[k] * 2, widths[k], 3, 1, norm, "relu") for k in range(3))
        self.head = nn.Sequential(nn.Conv2d(widths[0], out_channels, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = self.middle(skips.pop())
        for k in reversed(range(3)):
            x = self.merge[k](torch.cat([self.up[k](x), skips[k]], 1))
        return self.head(x)


class SelfAttention2d(nn.Module):
    """Self-attention over spatial positions (Zhang et al., SAGAN), with a learned gate that starts closed.

    ``gamma`` starts at zero so a fresh network behaves as if the block were absent and learns how much global
    context to mix in. Uses ``scaled_dot_product_attention`` so fused kernels apply where available.
    """

    def __init__(self, channels: int, spectral: bool = False, key_divisor: int = 8):
        super().__init__()
        key_channels = max(channels // key_divisor, 1)
        self.query = conv(channels, key_channels, 1, spectral=spectral)
        self.key = conv(channels, key_channels, 1, spectral=spectral)
        self.value = conv(channels, channels, 1, spectral=spectral)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # B x HW x K
        key = self.key(x).flatten(2).transpose(1, 2)
        value = self.value(x).flatten(2).transpose(1, 2).contiguous()  # B x HW x C
        key_channels = query.shape[-1]
        if not torch.is_grad_enabled():
            # The fused (flash) CPU kernel wants one head width for q, k and v: zero-padding q and k to C leaves every
            # dot product unchanged and is ~5x faster at 32x32 positions than the unfused fallback. Inference only:
            # that kernel has no double backward, which WGAN-GP's gradient penalty needs.
            query = F.pad(query, (0, channels - key_channels))
            key = F.pad(key, (0, channels - key_channels))
        # SAGAN uses unscaled dot products; the 1/sqrt(K) scale (of the unpadded width) only makes training steadier.
        attended = F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None],
                                                  scale=key_channels ** -0.5)[:, 0]
        attended = attended.transpose(1, 2).reshape(batch, channels, height, width)
        return x + self.gamma * attended


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN of pix2pix/CycleGAN: a grid of real/fake logits, one per overlapping patch
    (``out_channels`` > 1: that many logits per patch, e.g. a class head's)."""

    def __init__(self, in_channels: int = 1, base_channels: int = 64, n_layers: int = 3, norm: str = "instance",
                 spectral: bool = False, out_channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [conv(in_channels, base_channels, 4, 2, 1, spectral=spectral), nn.LeakyReLU(0.2, True)]
        channels = base_channels
        for index in range(1, n_layers + 1):
            next_channels = base_channels * min(2 ** index, 8)
            stride = 2 if index < n_layers else 1
            layers += [
                conv(channels, next_channels, 4, stride, 1, bias=norm == "none", spectral=spectral),
                norm_layer(norm, next_channels),
                nn.LeakyReLU(0.2, True),
            ]
            channels = next_channels
        layers.append(conv(channels, out_channels, 4, 1, 1, spectral=spectral))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PretrainedFeatureDiscriminator(nn.Module):
    """A discriminator on frozen ImageNet features (Projected GAN, Sauer et al. 2021), for small data and short runs.

    The first blocks of a torchvision MobileNetV2 turn the image into features that already tell a smile from a
    closed mouth; small trainable heads give real/fake logits at three scales (1/4, 1/8, 1/16 of the input). Projected
    GAN reports that such discriminators converge many times faster on small datasets (in this repo's short CPU runs
    on happy/neutral faces they still learned slowly: see the README). The trunk's weights are buffers, not
    parameters: no optimiser and no ``requires_grad_`` touches them, yet they move with ``.to()`` and are saved. Load
    ImageNet weights with :meth:`load_trunk`; random trunk weights make this an ordinary (worse) discriminator.
    Returns ``N x P``: every head's logits, flattened.
    """

    TAPS = (3, 6, 10)  # MobileNetV2 blocks whose outputs are judged: 24, 32 and 64 channels

    def __init__(self, in_channels: int = 1, head_channels: int = 64):
        super().__init__()
        import torchvision

        self.in_channels = in_channels
        self.trunk = torchvision.models.mobilenet_v2(weights=None).features[: self.TAPS[-1] + 1]
        for module in self.trunk.modules():
            for name, parameter in list(module.named_parameters(recurse=False)):
                del module._parameters[name]
                module.register_buffer(name, parameter.detach())
        self.trunk.eval()
        widths = {3: 24, 6: 32, 10: 64}
        self.heads = nn.ModuleList(
            nn.Sequential(conv(widths[tap], head_channels, 3, 1, 1, spectral=True), nn.LeakyReLU(0.2, True),
                          conv(head_channels, 1, 1, spectral=True))
            for tap in self.TAPS)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()  # frozen batch-norm statistics, always
        return self

    @torch.no_grad()
    def load_trunk(self, mobilenet_features_state: dict[str, torch.Tensor]) -> None:
        """Copy ImageNet weights from a torchvision ``mobilenet_v2().features`` state dict (keys ``0.0.weight``...)."""
        own = self.trunk.state_dict()
        missing = [key for key in own if key not in mobilenet_features_state]
        if missing:
            raise ValueError(f"The MobileNetV2 weights lack {len(missing)} trunk tensors, e.g. {missing[0]}")
        for key, tensor in own.items():
            tensor.copy_(mobilenet_features_state[key].to(tensor.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x.float() + 1) / 2  # [-1, 1] -> [0, 1]
        if self.in_channels == 1:
            rgb = rgb.expand(-1, 3, -1, -1)
        hidden = ((rgb - self.mean) / self.std).to(x.dtype)
        logits = []
        heads = iter(self.heads)
        for index, block in enumerate(self.trunk):
            hidden = block(hidden)
            if index in self.TAPS:
                logits.append(next(heads)(hidden).flatten(1))
        return torch.cat(logits, dim=1)


def init_gan_weights(module: nn.Module, std: float = 0.02) -> None:
    """The reference GAN initialisation: N(0, 0.02) convs and linears, N(1, 0.02) norm scales, zero biases.

    Uses ``transformers.initialization`` so weights already loaded from a checkpoint are never overwritten.
    """
    from transformers import initialization as init

    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = getattr(module, "weight_orig", None)  # spectral-norm layers keep the raw weight here
        if weight is None:
            weight = module.weight
        init.normal_(weight, 0.0, std)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and module.weight is not None:
        init.normal_(module.weight, 1.0, std)
        init.zeros_(module.bias)
    elif isinstance(module, SelfAttention2d):
        init.zeros_(module.gamma)


# --- displacement fields ------------------------------------------------------------------------------------------
# A flow is ``N x 2 x h x w`` (x, y) in fractions of the image's side: the output at p samples the input at
# p + flow(p). Fractions make one field valid at every resolution: upsample it and it applies to a larger crop.


def upsample_flow(flow: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """A low-resolution flow made smooth at ``size`` (bilinear; values stay fractions of the side)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(flow.shape[-2:]) == size:
        return flow
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def warp_by_flow(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``images`` (``N x C x H x W``) sampled at p + flow(p), bilinear, the border replicated; ``flow`` is upsampled
    to the images' size first. Differentiable in both."""
    batch, _, height, width = images.shape
    flow = upsample_flow(flow, (height, width)).to(images.dtype)
    ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=images.device, dtype=images.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # 1 x H x W x 2, (x, y)
    # grid_sample's coordinates span 2 over the side, so a flow in fractions of the side counts double.
    grid = grid + 2 * flow.permute(0, 2, 3, 1)
    return F.grid_sample(images, grid.expand(batch, -1, -1, -1), mode="bilinear", padding_mode="border",
                         align_corners=False)


def flow_smoothness(flow: torch.Tensor) -> torch.Tensor:
    """Total variation of a flow (mean absolute difference of neighbours), in fractions of the side per pixel."""
    return ((flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean())
