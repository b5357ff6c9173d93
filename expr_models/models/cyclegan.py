"""CycleGAN for unpaired two-domain expression editing (Zhu et al. 2017), as the study used it: Happy <-> Neutral.

One model holds both generators and, for training, both PatchGAN discriminators. Inference checkpoints leave the
discriminators out (``with_discriminators=False``) to stay small.

Beyond the reference generator, ``attention_mask=True`` makes each generator predict a change *and* a soft mask of
where to apply it (as in GANimation), so that edits stay on the mouth and the rest of the face is copied through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import ModelOutput

from ..faces.alignment import edit_in_frame
from .layers import (ConvNormAct, PatchDiscriminator, PretrainedFeatureDiscriminator, ResidualBlock, UpConvNormAct,
                     init_gan_weights)
from .mesh_gan import (MeshDiscriminator, MeshMotionGenerator, amplitude_axes, check_mesh_config,
                       check_undo_range, expression_amount, undo_by_amount)
from .modeling_utils import ExprPreTrainedModel
from .warp_refine import WarpRefineGenerator, check_warp_config, edit_aligned_crop


@strict
class CycleGANConfig(PreTrainedConfig):
    r"""
    Args:
        resolution: side of the square face crop the model works on; must be divisible by ``2 ** n_downsampling``.
        in_channels: 1 (grayscale/luminance, the study's) or 3 (RGB).
        generator_channels: width of the first generator layer (``ngf``; the reference uses 64).
        n_downsampling: stride-2 stages in the generator.
        n_residual_blocks: residual blocks at the bottleneck (the reference uses 9 at 256px).
        discriminator_channels: width of the first PatchGAN layer (``ndf``).
        discriminator_layers: stride-2 layers in the PatchGAN (3 gives the 70x70 receptive field).
        discriminator_type: ``patch`` (the reference PatchGAN) or ``pretrained_features`` (small heads on frozen
            ImageNet MobileNetV2 features, as in Projected GAN, meant for small data; training loads the
            trunk's weights, see ``train/cyclegan.py --discriminator-features``).
        norm: ``instance`` (reference), ``batch``, ``group`` or ``none``.
        attention_mask: predict a change and a mask of where to apply it (keeps edits local), instead of a whole image.
        mask_region: ``face`` (the mask may cover the whole crop) or ``lower_face`` (the mask is multiplied by a fixed
            window that is 0 above ``LOWER_FACE_WINDOW[0]`` of the crop's height and 1 below ``LOWER_FACE_WINDOW[1]``:
            the eyes, brows and forehead are copied through by construction, and the edit goes to the mouth and
            cheeks, where the study's CycleGAN put it).
        with_discriminators: build the discriminators; False for inference checkpoints.
        domain_x, domain_y: the expressions of the two domains. ``generator_xy`` maps ``domain_x`` -> ``domain_y``.
        gan_loss: ``lsgan`` (reference) or ``vanilla``. (The loss weights are training arguments, see
            ``train/cyclegan.py``.)
        generator_type: ``resnet`` (the reference generator, painting the crop at ``resolution``) or
            ``warp_refine`` (``expr_models.models.warp_refine``: a smooth flow added to the average-edit baseline's, and
            a masked appearance change; needs ``in_channels=3``; edit full-resolution crops with ``edit_aligned``).
        flow_resolution: warp_refine: side of the learned flow (upsampled bilinearly); ``resolution / 4`` by default.
        max_flow: warp_refine: the learned flow's largest step, as a fraction of the crop's side.
        max_prior_gain: warp_refine: above 0, each face gets a learned gain in (0, max_prior_gain), 1 at start, on
            the baseline's flow and residual (how strongly this face takes the average expression); 0: none.
        prior_gains: with ``max_prior_gain``: 1, one gain for the flow and the residual; 2, one for each.
        mesh_points, mesh_dims, mesh_hidden, max_mesh_gain, max_mesh_residual: ``generator_type="mesh"``
            (``expr_models.models.mesh_gan``): each generator moves a face's canonical 468-point mesh by the median
            motion of real pairs times a per-face gain in ``[1 / max_mesh_gain, max_mesh_gain]``, plus a residual of
            at most ``max_mesh_residual`` eye distances per point; the discriminators read canonical meshes.
        mesh_amplitude: ``generator_type="mesh"``: per target expression, the scale of the whole mesh motion at
            intensity 1 (absent: 1), or a pair ``[horizontal, vertical]`` of scales (``mesh_gan.amplitude_axes``),
            fitted on validation people by ``train/tools/calibrate_mesh_amplitude.py`` so that an edit goes as far as
            those people's real expressions; the intensity multiplies it.
        mesh_undo_range: ``generator_type="mesh"``: ``[low, high]``, or None. With it, the generator to ``domain_x``
            (undoing ``domain_y``'s expression) scales its vertical motion per face by how much of that expression
            the face shows (``undo_amount_weights`` and ``undo_amount_bias``, saved with the weights and fitted by
            ``train/tools/fit_undo_amount.py``; 1 = the median training face of ``domain_y``), clamped to the range.
    """

    model_type = "expr-cyclegan"

    resolution: int = 128
    in_channels: int = 1
    generator_channels: int = 32
    n_downsampling: int = 2
    n_residual_blocks: int = 6
    discriminator_channels: int = 64
    discriminator_layers: int = 3
    discriminator_type: str = "patch"
    norm: str = "instance"
    attention_mask: bool = True
    mask_region: str = "face"
    with_discriminators: bool = True
    domain_x: str = "neutral"
    domain_y: str = "happy"
    gan_loss: str = "lsgan"
    generator_type: str = "resnet"
    flow_resolution: int = 32
    max_flow: float = 0.06
    max_prior_gain: float = 0.0
    prior_gains: int = 1
    mesh_points: int = 468
    mesh_dims: int = 3
    mesh_hidden: int = 256
    max_mesh_gain: float = 2.0
    max_mesh_residual: float = 0.03
    mesh_amplitude: dict[str, float | list[float]] | None = None
    mesh_undo_range: list[float] | None = None

    def validate_cyclegan(self):
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.resolution % (2 ** self.n_downsampling):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2**n_downsampling = "
                             f"{2 ** self.n_downsampling}")
        if self.norm not in ("instance", "batch", "group", "none"):
            raise ValueError(f"Unknown norm {self.norm!r}; expected instance, batch, group or none")
        if self.discriminator_type not in ("patch", "pretrained_features"):
            raise ValueError(f"Unknown discriminator_type {self.discriminator_type!r}; expected patch or "
                             "pretrained_features")
        if self.mask_region not in ("face", "lower_face"):
            raise ValueError(f"Unknown mask_region {self.mask_region!r}; expected face or lower_face")
        if self.mask_region == "lower_face" and not self.attention_mask:
            raise ValueError("mask_region lower_face needs attention_mask=True (it limits the mask)")
        if self.gan_loss not in ("lsgan", "vanilla"):
            raise ValueError(f"Unknown gan_loss {self.gan_loss!r}; expected lsgan or vanilla")
        if self.domain_x == self.domain_y:
            raise ValueError("domain_x and domain_y must differ")
        if self.generator_type not in ("resnet", "warp_refine", "mesh"):
            raise ValueError(f"Unknown generator_type {self.generator_type!r}; expected resnet, warp_refine or mesh")
        if self.generator_type == "mesh":
            check_mesh_config(self.max_mesh_gain, self.max_mesh_residual, self.mesh_amplitude)
            check_undo_range(self.mesh_undo_range)
        if self.generator_type == "warp_refine":
            if self.prior_gains not in (1, 2):
                raise ValueError(f"prior_gains must be 1 or 2, got {self.prior_gains}")
            if self.max_prior_gain < 0 or 0 < self.max_prior_gain <= 1:
                raise ValueError(f"max_prior_gain must be 0 (no gain) or above 1, got {self.max_prior_gain}")
            check_warp_config(self.in_channels, self.resolution, self.flow_resolution)

    @property
    def domains(self) -> tuple[str, str]:
        return (self.domain_x, self.domain_y)


# Rows of the aligned crop (fractions of its height) where the lower-face window rises from 0 to 1. The eyes sit at
# about 0.4; expr_models.evaluation.metrics.UPPER_FACE_FRACTION (0.45) is where the evaluation's "upper face" ends.
LOWER_FACE_WINDOW = (0.45, 0.55)


def lower_face_window(resolution: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``1 x 1 x R x 1``: 0 above ``LOWER_FACE_WINDOW[0]``, a smoothstep up to 1 at ``LOWER_FACE_WINDOW[1]``."""
    start, end = LOWER_FACE_WINDOW
    rows = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution
    t = ((rows - start) / (end - start)).clamp(0, 1)
    return (t * t * (3 - 2 * t)).view(1, 1, resolution, 1)


class ResnetGenerator(nn.Module):
    """c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-out: the reference CycleGAN generator, optionally with a mask head
    (which ``lower_face_only`` multiplies by :func:`lower_face_window`)."""

    def __init__(self, in_channels: int, channels: int, n_downsampling: int, n_residual_blocks: int, norm: str,
                 attention_mask: bool, lower_face_only: bool = False):
        super().__init__()
        self.attention_mask = attention_mask
        layers: list[nn.Module] = [ConvNormAct(in_channels, channels, 7, 1, norm, padding_mode="reflect")]
        width = channels
        for _ in range(n_downsampling):
            layers.append(ConvNormAct(width, width * 2, 3, 2, norm))
            width *= 2
        layers += [ResidualBlock(width, norm) for _ in range(n_residual_blocks)]
        for _ in range(n_downsampling):
            layers.append(UpConvNormAct(width, width // 2, norm))
            width //= 2
        self.body = nn.Sequential(*layers)
        self.to_image = nn.Conv2d(width, in_channels, 7, padding=3, padding_mode="reflect")
        self.to_mask = nn.Conv2d(width, 1, 7, padding=3, padding_mode="reflect") if attention_mask else None
        # Made at each call, not kept as a buffer: from_pretrained leaves unsaved buffers uninitialised.
        self.lower_face_only = lower_face_only

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        features = self.body(x)
        image = torch.tanh(self.to_image(features))
        mask = None
        if self.to_mask is not None:
            mask = torch.sigmoid(self.to_mask(features))
            if self.lower_face_only:
                mask = mask * lower_face_window(mask.shape[-2], mask.device).to(mask.dtype)
            image = mask * image + (1 - mask) * x
        return (image, mask) if return_mask else image


@dataclass
class CycleGANOutput(ModelOutput):
    """``translated``: the input moved to the target domain; ``reconstructed``: moved back (the cycle)."""

    translated: torch.Tensor | None = None
    reconstructed: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class CycleGANModel(ExprPreTrainedModel):
    config_class = CycleGANConfig
    card_summary = (
        "A CycleGAN that moves a face between two expressions (by default neutral <-> happy): two generators, one "
        "each way. With `generator_type=\"mesh\"` (the committed one) each generator moves the face's 468-point "
        "MediaPipe mesh in a 3D canonical frame (`model.move_mesh(canonical_meshes, 'happy')`): the median motion of "
        "real photo pairs, times a per-face gain, plus a bounded residual; the editor (`expr_models.pipeline`) warps "
        "the photo's own pixels to the moved mesh once, at full resolution, in colour. With "
        "`generator_type=\"warp_refine\"` each generator predicts a flow and a masked change in the aligned face "
        "frame; with `\"resnet\"` (the study's) it repaints face crops in [-1, 1] (`model.generate(faces, "
        "to='happy')`). The pipeline finds the faces in whole photos, edits them and pastes only the change back."
    )

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        lower_face_only = config.mask_region == "lower_face"
        if config.generator_type == "mesh":
            self.generator_xy, self.generator_yx = (
                MeshMotionGenerator(config.mesh_points, 1, config.mesh_hidden, config.max_mesh_gain,
                                    config.max_mesh_residual, config.mesh_dims) for _ in range(2))
            if config.mesh_undo_range is not None:  # reads how much of domain_y's expression a canonical mesh shows
                self.register_buffer("undo_amount_weights", torch.zeros(config.mesh_points, config.mesh_dims))
                self.register_buffer("undo_amount_bias", torch.zeros(()))
        elif config.generator_type == "warp_refine":
            window = lower_face_window if lower_face_only else None
            self.generator_xy, self.generator_yx = (
                WarpRefineGenerator(config.resolution, config.in_channels, config.generator_channels,
                                    config.flow_resolution, config.max_flow, config.n_residual_blocks, config.norm,
                                    window=window, max_gain=config.max_prior_gain, prior_gains=config.prior_gains)
                for _ in range(2))
        else:
            generator_args = (config.in_channels, config.generator_channels, config.n_downsampling,
                              config.n_residual_blocks, config.norm, config.attention_mask)
            self.generator_xy = ResnetGenerator(*generator_args, lower_face_only=lower_face_only)
            self.generator_yx = ResnetGenerator(*generator_args, lower_face_only=lower_face_only)
        if config.with_discriminators and config.generator_type == "mesh":
            self.discriminator_x, self.discriminator_y = (MeshDiscriminator(config.mesh_points, 1, config.mesh_hidden,
                                                                            dims=config.mesh_dims)
                                                          for _ in range(2))
        elif config.with_discriminators and config.discriminator_type == "pretrained_features":
            self.discriminator_x = PretrainedFeatureDiscriminator(config.in_channels, config.discriminator_channels)
            self.discriminator_y = PretrainedFeatureDiscriminator(config.in_channels, config.discriminator_channels)
        elif config.with_discriminators:
            discriminator_args = (config.in_channels, config.discriminator_channels, config.discriminator_layers,
                                  config.norm)
            self.discriminator_x = PatchDiscriminator(*discriminator_args)
            self.discriminator_y = PatchDiscriminator(*discriminator_args)
        else:
            self.discriminator_x = self.discriminator_y = None
        self.post_init()

    def _init_weights(self, module):
        init_gan_weights(module)
        if isinstance(module, (WarpRefineGenerator, MeshMotionGenerator)):
            module.reset_heads()  # start as the baseline (the average edit's fields, the median mesh motion)

    # --- lookup by expression name, so callers never juggle x/y ------------------------------------------------------
    def generator_to(self, target: str) -> ResnetGenerator:
        if target == self.config.domain_y:
            return self.generator_xy
        if target == self.config.domain_x:
            return self.generator_yx
        raise ValueError(f"This CycleGAN edits to {self.config.domain_x!r} or {self.config.domain_y!r}, not {target!r}")

    def generator_from(self, source: str) -> ResnetGenerator:
        return self.generator_to(self.other_domain(source))

    def other_domain(self, domain: str) -> str:
        if domain not in self.config.domains:
            raise ValueError(f"Unknown domain {domain!r}; this CycleGAN knows {self.config.domains}")
        return self.config.domain_y if domain == self.config.domain_x else self.config.domain_x

    def discriminator_of(self, domain: str) -> nn.Module:
        if self.discriminator_x is None:
            raise ValueError("This checkpoint was saved without discriminators (with_discriminators=False)")
        return self.discriminator_y if domain == self.config.domain_y else self.discriminator_x

    def forward(self, pixel_values: torch.Tensor, to: str | None = None, return_reconstruction: bool = True,
                **kwargs) -> CycleGANOutput:
        to = to or self.config.domain_y
        translated, mask = self.generator_to(to)(pixel_values, return_mask=True)
        reconstructed = self.generator_from(to)(translated) if return_reconstruction else None
        return CycleGANOutput(translated=translated, reconstructed=reconstructed, mask=mask)

    @torch.no_grad()
    def generate(self, pixel_values: torch.Tensor, to: str | None = None) -> torch.Tensor:
        """Move face crops (``N x C x H x W`` in [-1, 1]) to the expression ``to``."""
        return self.generator_to(to or self.config.domain_y)(pixel_values)

    @torch.no_grad()
    def edit_aligned(self, crop: np.ndarray, target: str, intensity: float = 1.0) -> np.ndarray:
        """A face crop aligned by ``expr_models.faces.alignment`` (``N x N x 3`` or ``N x N`` uint8, any ``N``, e.g. the
        photo's own resolution from ``native_size``) edited to the expression ``target``; returns the edited crop
        (same shape, uint8). warp_refine only: the fields are made at ``config.resolution`` and applied to the crop
        at its own size (the flow moves the crop's own pixels, in colour). ``intensity`` scales the flow and the
        appearance change together; 0 gives the crop back. Paste it back with
        ``alignment.paste_from_frame(photo, edited, face, original=crop)``."""
        if self.config.generator_type != "warp_refine":
            raise ValueError("edit_aligned needs a warp_refine CycleGAN; a resnet one edits through the pipeline")
        return edit_aligned_crop(self.generator_to(target), crop, intensity)

    @torch.no_grad()
    def move_mesh(self, canonical: torch.Tensor, target: str, intensity: float | torch.Tensor = 1.0) -> torch.Tensor:
        """mesh only: canonical face meshes (``N x P x 2``, ``expr_models.faces.mesh_motion.normalise`` against the
        generator's ``mean_shape``) moved to the expression ``target``; ``intensity`` scales the motion (times the
        config's ``mesh_amplitude`` for ``target``, and back to ``domain_x`` with ``mesh_undo_range`` set, the
        vertical motion times how much of ``domain_y``'s expression each face shows)."""
        if self.config.generator_type != "mesh":
            raise ValueError("move_mesh needs a mesh CycleGAN (generator_type='mesh')")
        generator = self.generator_to(target)
        canonical = canonical.to(generator.mean_shape)
        moved = generator(canonical, canonical.new_ones(len(canonical), 1), intensity,
                          amplitude_axes(self.config.mesh_amplitude, target, canonical.shape[-1]))
        if target == self.config.domain_x and self.config.mesh_undo_range is not None:
            amount = expression_amount(canonical - generator.mean_shape, self.undo_amount_weights,
                                       self.undo_amount_bias)
            moved = undo_by_amount(canonical, moved, amount, *self.config.mesh_undo_range)
        return moved

    def edit_photo(self, photo: np.ndarray, target: str, intensity: float = 1.0, points: np.ndarray | None = None,
                   detector=None) -> np.ndarray:
        """A whole photo (``H x W x 3`` or ``H x W`` uint8) with its largest face (or the face whose five landmarks
        are ``points``) edited to ``target`` by :meth:`edit_aligned`, in the aligned frame at the photo's own
        resolution; only the change is pasted back, inside the face's blend mask. ``ValueError`` without a face."""
        return edit_in_frame(photo, lambda crop: self.edit_aligned(crop, target, intensity), points, detector)

    def without_discriminators(self) -> "CycleGANModel":
        """A copy holding the generators alone, for small inference checkpoints."""
        return self.copy_with_config(with_discriminators=False)
