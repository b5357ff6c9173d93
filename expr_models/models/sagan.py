"""Class-conditional Self-Attention GAN for many-expression editing, as in the study, with StarGAN's ideas added.

The generator takes a face and target-class *label maps* (one constant plane per class, as the study did) and returns
the face with that expression. The discriminator has self-attention and spectral norm, and two heads:

- ``class_logits`` over ``num_classes + 1`` classes, the last one meaning "generated". The study's softmax
  cross-entropy objective uses this head alone: D is penalised for a wrong class on real faces and for anything but
  "generated" on generated ones; G is penalised when D does not read the target class on its output.
- ``critic``: a PatchGAN-style score map for the Wasserstein (WGAN-GP) variant, which then uses the first
  ``num_classes`` class logits as an auxiliary classifier (StarGAN).
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

from ..faces.alignment import edit_in_frame
from ..labels import EXPRESSIONS
from .cyclegan import lower_face_window
from .layers import ConvNormAct, ResidualBlock, SelfAttention2d, UpConvNormAct, conv, init_gan_weights
from .mesh_gan import MeshDiscriminator, MeshMotionGenerator, amplitude_axes, check_mesh_config
from .modeling_utils import ExprPreTrainedModel
from .warp_refine import WarpRefineGenerator, check_warp_config, edit_aligned_crop


@strict
class SAGANConfig(PreTrainedConfig):
    r"""
    Args:
        resolution: side of the square face crop; must be divisible by ``2 ** discriminator_layers``.
        in_channels: 1 (grayscale/luminance) or 3.
        class_names: the expressions the generator can produce, in label order.
        generator_channels: width of the first generator layer.
        n_downsampling: stride-2 stages in the generator.
        n_residual_blocks: residual blocks at the bottleneck; self-attention follows them.
        attention_mask: predict a change and where to apply it, so unrelated regions are copied through.
        discriminator_channels, discriminator_layers: width of the first layer and number of stride-2 layers of D.
        with_discriminator: build D; False for inference checkpoints.
        objective: ``softmax_ce`` (the study's) or ``wgan_gp``. (The loss weights and ``n_critic`` are training
            arguments, see ``train/sagan.py``.)
        generator_type: ``resnet`` (the study's generator, painting the crop at ``resolution``) or ``warp_refine``
            (``expr_models.models.warp_refine``, class-conditional: per target class a smooth flow added to the average
            edit's and a masked appearance change; needs ``in_channels=3``; edit full-resolution aligned crops with
            ``edit_aligned``). The upper face is held still for ``WINDOWED_CLASSES``; other targets may move the brows.
        flow_resolution: warp_refine: side of the learned flow (upsampled bilinearly).
        max_flow: warp_refine: the learned flow's largest step, as a fraction of the crop's side.
        mesh_points, mesh_dims, mesh_hidden, max_mesh_gain, max_mesh_residual: ``generator_type="mesh"``
            (``expr_models.models.mesh_gan``): the generator moves a face's canonical 468-point mesh by the median
            motion of real pairs from the source class to the target class (through neutral), times a per-face gain,
            plus a bounded residual; the discriminator reads canonical meshes with the same two heads as the image
            one.
        mesh_amplitude: ``generator_type="mesh"``: per target expression, the scale of the whole mesh motion at
            intensity 1 (absent: 1), or a pair ``[horizontal, vertical]`` of scales (``mesh_gan.amplitude_axes``),
            fitted on validation people by ``train/tools/calibrate_mesh_amplitude.py`` so that an edit goes as far as
            those people's real expressions; the intensity multiplies it.
        mesh_undo_sideways_max_gain: ``generator_type="mesh"``: the largest per-face gain on the sideways motion
            that undoes the source expression (None: the gain alone). Its gain head undoes the validation smiles of
            FER2013 and CK+ 1.47 times the median smile, which left their mouths 11% narrower than real neutral
            mouths (median width 0.688 eye distances, real 0.777); at most 1 sideways, 0.769.
    """

    model_type = "expr-sagan"

    resolution: int = 128
    in_channels: int = 1
    class_names: list[str] | tuple[str, ...] = EXPRESSIONS
    generator_channels: int = 32
    n_downsampling: int = 2
    n_residual_blocks: int = 6
    attention_mask: bool = True
    discriminator_channels: int = 32
    discriminator_layers: int = 5
    with_discriminator: bool = True
    objective: str = "softmax_ce"
    generator_type: str = "resnet"
    flow_resolution: int = 32
    max_flow: float = 0.06
    mesh_points: int = 468
    mesh_dims: int = 3
    mesh_hidden: int = 256
    max_mesh_gain: float = 2.0
    max_mesh_residual: float = 0.03
    mesh_amplitude: dict[str, float | list[float]] | None = None
    mesh_undo_sideways_max_gain: float | None = None

    def validate_sagan(self):
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        for name, layers in (("n_downsampling", self.n_downsampling), ("discriminator_layers", self.discriminator_layers)):
            if self.resolution % (2 ** layers):
                raise ValueError(f"resolution {self.resolution} is not divisible by 2**{name} = {2 ** layers}")
        if self.objective not in ("softmax_ce", "wgan_gp"):
            raise ValueError(f"Unknown objective {self.objective!r}; expected softmax_ce or wgan_gp")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names needs at least two distinct names, got {self.class_names}")
        if self.generator_type not in ("resnet", "warp_refine", "mesh"):
            raise ValueError(f"Unknown generator_type {self.generator_type!r}; expected resnet, warp_refine or mesh")
        if self.generator_type == "mesh":
            check_mesh_config(self.max_mesh_gain, self.max_mesh_residual, self.mesh_amplitude)
            cap = self.mesh_undo_sideways_max_gain
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap <= 0):
                raise ValueError(f"mesh_undo_sideways_max_gain must be a positive number or None, got {cap!r}")
        if self.generator_type == "warp_refine":
            check_warp_config(self.in_channels, self.resolution, self.flow_resolution)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# warp_refine: the targets whose edit keeps the eyes and brows still (the CycleGAN's lower-face window); the others
# (surprise, anger, sadness, fear, disgust) move the brows, so their learned flow and mask cover the whole face.
WINDOWED_CLASSES = ("happy", "neutral")


def warp_refine_generator(config: SAGANConfig) -> WarpRefineGenerator:
    return WarpRefineGenerator(config.resolution, config.in_channels, config.generator_channels,
                               config.flow_resolution, config.max_flow, config.n_residual_blocks, "instance",
                               window=lower_face_window, num_classes=config.num_classes,
                               windowed_classes=tuple(name in WINDOWED_CLASSES for name in config.class_names))


def label_maps(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``N x K`` class weights -> ``N x K x H x W`` constant planes, the generator's condition."""
    return labels[:, :, None, None].expand(-1, -1, height, width)


class ConditionalGenerator(nn.Module):
    """Encoder, residual bottleneck with self-attention, decoder; the condition enters as extra input planes."""

    def __init__(self, config: SAGANConfig):
        super().__init__()
        width = config.generator_channels
        layers: list[nn.Module] = [ConvNormAct(config.in_channels + config.num_classes, width, 7, 1, "instance")]
        for _ in range(config.n_downsampling):
            layers.append(ConvNormAct(width, width * 2, 3, 2, "instance"))
            width *= 2
        layers += [ResidualBlock(width, "instance", padding_mode="zeros") for _ in range(config.n_residual_blocks)]
        layers.append(SelfAttention2d(width))
        for index in range(config.n_downsampling):
            layers.append(UpConvNormAct(width, width // 2, "instance"))
            width //= 2
            if index == 0:
                layers.append(SelfAttention2d(width))  # a second, finer attention where the mouth has detail
        self.body = nn.Sequential(*layers)
        self.to_image = nn.Conv2d(width, config.in_channels, 7, padding=3)
        self.to_mask = nn.Conv2d(width, 1, 7, padding=3) if config.attention_mask else None

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor, return_mask: bool = False):
        condition = label_maps(labels.to(pixel_values.dtype), *pixel_values.shape[-2:])
        features = self.body(torch.cat([pixel_values, condition], dim=1))
        image = torch.tanh(self.to_image(features))
        mask = None
        if self.to_mask is not None:
            mask = torch.sigmoid(self.to_mask(features))
            image = mask * image + (1 - mask) * pixel_values
        return (image, mask) if return_mask else image


def spectral_linear(in_features: int, out_features: int) -> nn.Linear:
    return nn.utils.spectral_norm(nn.Linear(in_features, out_features))


@dataclass
class DiscriminatorOutput(ModelOutput):
    critic: torch.Tensor | None = None  # N x 1 x h x w
    class_logits: torch.Tensor | None = None  # N x (num_classes + 1); the last class is "generated"


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm conv stack with self-attention at 1/8 resolution, a critic map and a class head."""

    def __init__(self, config: SAGANConfig):
        super().__init__()
        width = config.discriminator_channels
        layers: list[nn.Module] = []
        in_channels = config.in_channels
        for index in range(config.discriminator_layers):
            out_channels = width * min(2 ** index, 16)
            layers += [conv(in_channels, out_channels, 4, 2, 1, spectral=True), nn.LeakyReLU(0.2, inplace=True)]
            if index == 2:
                layers.append(SelfAttention2d(out_channels, spectral=True))
            in_channels = out_channels
        self.body = nn.Sequential(*layers)
        self.critic = conv(in_channels, 1, 3, 1, 1, spectral=True)
        self.classifier = spectral_linear(in_channels, config.num_classes + 1)

    def forward(self, pixel_values: torch.Tensor) -> DiscriminatorOutput:
        features = self.body(pixel_values)
        return DiscriminatorOutput(critic=self.critic(features), class_logits=self.classifier(features.sum((2, 3))))


class MeshClassDiscriminator(MeshDiscriminator):
    """The mesh discriminator with the image one's two heads: ``num_classes + 1`` class logits (the last meaning
    "generated") and a critic score."""

    def __init__(self, config: SAGANConfig):
        super().__init__(config.mesh_points, config.num_classes + 2, config.mesh_hidden, dims=config.mesh_dims)

    def forward(self, meshes: torch.Tensor) -> DiscriminatorOutput:
        logits = super().forward(meshes)
        return DiscriminatorOutput(critic=logits[:, -1:], class_logits=logits[:, :-1])


@dataclass
class SAGANOutput(ModelOutput):
    generated: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class SAGANModel(ExprPreTrainedModel):
    config_class = SAGANConfig
    card_summary = (
        "A class-conditional self-attention GAN that gives a face any of the configured expressions. With "
        "`generator_type=\"mesh\"` (the committed one) the generator moves the face's 468-point MediaPipe mesh in a "
        "3D canonical frame (`model.move_mesh(canonical_meshes, 'surprise', source='neutral')`): the median motion "
        "source -> neutral -> target of real photo pairs, times a per-face gain, plus a bounded residual; its "
        "discriminator reads real meshes of every expression with the study's class head. The editor "
        "(`expr_models.pipeline`) warps the photo's own pixels to the moved mesh once, at full resolution. The "
        "image generators (`resnet`, the study's: crops in [-1, 1] and label planes, `model.generate(faces, "
        "to='happy')`; `warp_refine`: a flow and a masked change in the aligned frame) are kept."
    )

    def __init__(self, config: SAGANConfig):
        super().__init__(config)
        self.warp = config.generator_type == "warp_refine"
        if config.generator_type == "mesh":
            self.generator = MeshMotionGenerator(config.mesh_points, config.num_classes, config.mesh_hidden,
                                                 config.max_mesh_gain, config.max_mesh_residual, config.mesh_dims)
            discriminator = MeshClassDiscriminator
        else:
            self.generator = warp_refine_generator(config) if self.warp else ConditionalGenerator(config)
            discriminator = ProjectionDiscriminator
        self.discriminator = discriminator(config) if config.with_discriminator else None
        self.post_init()

    def _init_weights(self, module):
        init_gan_weights(module)
        if isinstance(module, (WarpRefineGenerator, MeshMotionGenerator)):
            module.reset_heads()  # start as the baseline (the average edit's fields, the median mesh motion)

    def generate_with(self, pixel_values: torch.Tensor, labels: torch.Tensor, return_mask: bool = False):
        """Either generator on ``N x K`` class weights (the two take the labels differently)."""
        if self.warp:
            return self.generator(pixel_values, return_mask=return_mask, labels=labels)
        return self.generator(pixel_values, labels, return_mask=return_mask)

    def labels_for(self, target: str | int | torch.Tensor, batch_size: int) -> torch.Tensor:
        """A target expression name, index, index tensor or ``N x K`` weights -> ``N x K`` float class weights."""
        num_classes = self.config.num_classes
        if isinstance(target, str):
            if target not in self.config.class_names:
                raise ValueError(f"This SA-GAN edits to {', '.join(self.config.class_names)}, not {target!r}")
            target = self.config.class_names.index(target)
        if isinstance(target, int):
            target = torch.full((batch_size,), target, dtype=torch.long)
        if target.ndim == 1:
            target = F.one_hot(target.long(), num_classes).float()
        if target.shape != (batch_size, num_classes):
            raise ValueError(f"Expected labels of shape {(batch_size, num_classes)}, got {tuple(target.shape)}")
        return target.to(self.device)

    def forward(self, pixel_values: torch.Tensor, labels: str | int | torch.Tensor, **kwargs) -> SAGANOutput:
        generated, mask = self.generate_with(pixel_values, self.labels_for(labels, len(pixel_values)), return_mask=True)
        return SAGANOutput(generated=generated, mask=mask)

    @torch.no_grad()
    def generate(self, pixel_values: torch.Tensor, to: str | int | torch.Tensor) -> torch.Tensor:
        """Give face crops (``N x C x H x W`` in [-1, 1]) the expression ``to`` (a name or ``N x K`` soft weights)."""
        return self.generate_with(pixel_values, self.labels_for(to, len(pixel_values)))

    @torch.no_grad()
    def edit_aligned(self, crop: np.ndarray, target: str | torch.Tensor, intensity: float = 1.0) -> np.ndarray:
        """A face crop aligned by ``expr_models.faces.alignment`` (``N x N x 3`` or ``N x N`` uint8, any ``N``) edited
        to the expression ``target`` (a name or ``1 x K`` class weights); returns the edited crop (same shape, uint8).
        warp_refine only: the fields are made at ``config.resolution`` and applied to the crop at its own size.
        ``intensity`` scales the flow and the appearance change together; 0 gives the crop back."""
        if not self.warp:
            raise ValueError("edit_aligned needs a warp_refine SA-GAN; a resnet one edits through the pipeline")
        return edit_aligned_crop(self.generator, crop, intensity, self.labels_for(target, 1))

    def mesh_conditions(self, target: str, source: str | None, batch_size: int) -> torch.Tensor:
        """mesh: ``N x K`` weights of the priors, one-hot target minus one-hot source, so the prior is the median
        motion source -> neutral -> target. An unknown source counts as neutral."""
        conditions = self.labels_for(target, batch_size).clone()
        if source in self.config.class_names:
            conditions = conditions - self.labels_for(source, batch_size)
        return conditions

    @torch.no_grad()
    def move_mesh(self, canonical: torch.Tensor, target: str, source: str | None = None,
                  intensity: float | torch.Tensor = 1.0) -> torch.Tensor:
        """mesh only: canonical face meshes (``N x P x 2``) of the expression ``source`` (None: unknown) moved to
        ``target``; ``intensity`` scales the motion (times the config's ``mesh_amplitude``: ``target``'s on the
        target's part of it and the residual, ``"neutral"``'s on undoing ``source``; the undoing's sideways gain at
        most ``mesh_undo_sideways_max_gain``)."""
        if self.config.generator_type != "mesh":
            raise ValueError("move_mesh needs a mesh SA-GAN (generator_type='mesh')")
        canonical = canonical.to(self.generator.mean_shape)
        axes = amplitude_axes(self.config.mesh_amplitude, target, canonical.shape[-1])
        undoing = amplitude_axes(self.config.mesh_amplitude, "neutral", canonical.shape[-1])
        # The target's part of the motion at the target's amplitude, the undoing of the source's expression at the
        # one fitted for undoing (→ neutral's): with one scale for both, sad's 2 doubled the undoing of a broad smile
        # too and pinched the mouth into a knot.
        prior_axes = torch.stack([axes if name == target else undoing for name in self.config.class_names])
        cap = self.config.mesh_undo_sideways_max_gain
        undo_gain_cap = None if cap is None else torch.tensor([float(cap)] + [torch.inf] * (canonical.shape[-1] - 1))
        return self.generator(canonical, self.mesh_conditions(target, source, len(canonical)), intensity, axes,
                              prior_axes, undo_gain_cap)

    def edit_photo(self, photo: np.ndarray, target: str, intensity: float = 1.0, points: np.ndarray | None = None,
                   detector=None) -> np.ndarray:
        """A whole photo with its largest face (or the face at ``points``) edited to ``target`` by
        :meth:`edit_aligned` in the aligned frame at the photo's resolution; only the change is pasted back."""
        return edit_in_frame(photo, lambda crop: self.edit_aligned(crop, target, intensity), points, detector)

    def without_discriminator(self) -> "SAGANModel":
        return self.copy_with_config(with_discriminator=False)
