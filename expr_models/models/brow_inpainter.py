"""The learned brows: a class-conditional inpainting network that redraws the upper face (the brows, the skin between
them and the forehead above) as a target expression marks it: the furrows of a frown, the smooth brow of a neutral
face, the raised brows and forehead lines of surprise.

    model = BrowInpainterModel.from_pretrained("checkpoints/brow_inpainter")
    out = model.inpaint(windows, holes, maps, "neutral")   # N x 1 x H x W in [-1, 1]: the holes redrawn

It works in the brow frame of ``expr_models.faces.brow_frame`` (40 x 56 grey, the eyes 20 px apart). Inputs:
``windows`` (the upper face, grey, [-1, 1]); ``holes`` (N x 1 x H x W in [0, 1]: what to redraw); ``maps``
(N x 2 x H x W: the target brows and eye openings, ``brow_frame.brow_maps``); a target expression, given to the
network as constant label maps, as the paper's SA-GAN is.

Why it exists: on FER2013's faces the mesh barely tells a frown from a neutral brow (the mean brow-to-eye distance of
its angry and neutral faces differs by 0.02 eye distances, a third of a pixel), yet a reader sees the frown at once:
it is in the shading, the furrows between the brows and the lowered, darker brow. A warp cannot take that away, and
the expression shading's median class maps only fade it. This model draws the upper face anew for the target.

Trained without pairs (``train/brow_inpainter.py``): every labelled real face is an example. Its own upper face is
hidden and rebuilt from the rest of the window, its brow and eye shape and its own label (L1). The same faces are
also redrawn for a random other label, with no picture to match: the discriminator's class head (softmax
cross-entropy on the real faces' labels, as the paper's) makes that drawing read as the asked-for expression, and its
PatchGAN critic makes it look real. The paper's head also had a "generated" class; here it taught the generator
nothing of the label (after 1,000 steps the head read 12% of the drawings as the label asked for, chance 14%), so the
head learns real labels alone, as in AC-GAN, and learns them first, before the generator starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import ModelOutput

from ..faces.brow_frame import EYE_DISTANCE, FRAME_HEIGHT, FRAME_WIDTH
from ..faces.inpaint_regions import REGIONS
from ..faces.lower_face_frame import FRAME_HEIGHT as LOWER_FACE_HEIGHT
from ..faces.lower_face_frame import FRAME_WIDTH as LOWER_FACE_WIDTH
from ..labels import EXPRESSIONS
from .layers import InpaintingUNet, conv, init_gan_weights
from .modeling_utils import ExprPreTrainedModel


@strict
class BrowInpainterConfig(PreTrainedConfig):
    r"""
    Args:
        class_names: the expressions the model draws, in label order.
        region: the face region it redraws (``expr_models.faces.inpaint_regions``): ``upper_face`` (the brows, the
            glabella, a band of forehead) or ``lower_face`` (the cheeks, the folds, the lips, the chin).
        base_channels: channels of the U-Net's first level (x2 per level, three levels down).
        residual_blocks: residual blocks at the U-Net's bottom (H/8).
        norm: the generator's normalisation (``instance``, ``batch``, ``group``, ``none``).
        frame_height: the region's frame height (``brow_frame``, ``lower_face_frame``).
        frame_width: the region's frame width.
        eye_distance: the eye centres' distance in the frame.
        hole_margin: how far (frame pixels) the hole reaches past the region's outline at editing time.
        edit_expressions: the targets the editor asks this checkpoint to draw (None: all of ``class_names``): those
            whose drawings look real and are read better. ``inpaint`` draws any class.
        edit_colour_photos: whether the editor uses it on colour photos too, or on grey ones alone (its grey drawing,
            added to every channel, can smudge coloured skin).
        max_lost_detail: the most fine detail (``AlignedFrame.lost_detail``, grey levels) a face may hold beyond the
            frame's resolution for the editor to redraw it (None: no limit): on a sharper face the drawing, made at the
            frame's resolution, is a smudge.
        label_guidance: per target expression, how far ``inpaint`` pushes the drawing past what the label alone
            draws, away from the mean drawing over every label: drawing + g x (drawing - mean) (None or a missing
            target: 0, the drawing itself). It strengthens what the label adds to the region, not what every label
            draws there (the face's own shape); set per target on validation crops, where it read better without
            painting features on.
        with_discriminator: build the discriminator; False for inference checkpoints.
        discriminator_channels: the discriminator's first-layer channels.
    """

    model_type = "expr-brow-inpainter"

    class_names: list[str] | tuple[str, ...] = EXPRESSIONS
    region: str = "upper_face"
    base_channels: int = 16  # 32 drew better frowns but is 4.5 MB even in int8: over the checkpoints' budget
    residual_blocks: int = 3
    norm: str = "instance"
    frame_height: int = FRAME_HEIGHT
    frame_width: int = FRAME_WIDTH
    eye_distance: float = EYE_DISTANCE
    hole_margin: float = 2.0
    edit_expressions: list[str] | tuple[str, ...] | None = None
    edit_colour_photos: bool = True
    max_lost_detail: float | None = None
    label_guidance: dict[str, float] | None = None
    with_discriminator: bool = True
    discriminator_channels: int = 32

    def validate_brow_inpainter(self):
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {sorted(REGIONS)}, got {self.region!r}")
        region = REGIONS[self.region]
        if (self.frame_height, self.frame_width, self.eye_distance) != (*region.size, region.eye_distance):
            raise ValueError(f"the {self.region} frame is {region.size[0]} x {region.size[1]} with the eyes "
                             f"{region.eye_distance:g} px apart (expr_models.faces.inpaint_regions), got "
                             f"{self.frame_height} x {self.frame_width} with {self.eye_distance:g}")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must hold at least two distinct expressions, got {self.class_names}")
        if self.base_channels < 4 or self.residual_blocks < 0 or self.hole_margin < 0:
            raise ValueError("base_channels must be >= 4, residual_blocks and hole_margin >= 0")
        unknown = set(self.edit_expressions or ()) - set(self.class_names)
        if unknown:
            raise ValueError(f"edit_expressions {sorted(unknown)} are not among class_names {list(self.class_names)}")
        guided = self.label_guidance or {}
        if set(guided) - set(self.class_names) or any(not 0 <= float(g) <= 4 for g in guided.values()):
            raise ValueError(f"label_guidance takes expressions among class_names, each with a guidance in [0, 4], "
                             f"got {self.label_guidance}")


class BrowInpaintingGenerator(InpaintingUNet):
    """The U-Net over (window with the hole blanked, hole, target maps, label maps): grey out (tanh)."""

    def __init__(self, num_classes: int, map_channels: int, channels: int = 32, residual_blocks: int = 3,
                 norm: str = "instance"):
        super().__init__(1 + 1 + map_channels + num_classes, 1, channels, residual_blocks, norm)

    def forward(self, windows: torch.Tensor, holes: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor
                ) -> torch.Tensor:
        label_maps = labels[:, :, None, None].expand(-1, -1, *windows.shape[2:]).to(windows.dtype)
        return super().forward(torch.cat([windows * (1 - holes), holes, maps, label_maps], 1))


@dataclass
class BrowCritique(ModelOutput):
    critic: torch.Tensor | None = None        # N x 1 x h x w: real/fake logits per patch
    class_logits: torch.Tensor | None = None  # N x num_classes


class ClassPatchDiscriminator(nn.Module):
    """Spectral-norm convolutions (H -> H/8) over the window and its maps, with two heads: a PatchGAN critic, and the
    class head (``num_classes`` logits) on the averaged features."""

    def __init__(self, num_classes: int, map_channels: int, channels: int = 32):
        super().__init__()
        widths = [channels, channels * 2, channels * 4]
        layers: list[nn.Module] = []
        in_channels = 1 + map_channels
        for width in widths:
            layers += [conv(in_channels, width, 4, 2, 1, spectral=True), nn.LeakyReLU(0.2, inplace=True)]
            in_channels = width
        self.body = nn.Sequential(*layers)
        self.critic = conv(in_channels, 1, 3, 1, 1, spectral=True)
        self.classifier = nn.utils.spectral_norm(nn.Linear(in_channels, num_classes))

    def forward(self, windows: torch.Tensor, maps: torch.Tensor) -> BrowCritique:
        features = self.body(torch.cat([windows, maps], 1))
        return BrowCritique(critic=self.critic(features), class_logits=self.classifier(features.mean((2, 3))))


class BrowInpainterModel(ExprPreTrainedModel):
    config_class = BrowInpainterConfig
    main_input_name = "windows"
    card_summary = (
        "The learned brows for expression edits: a class-conditional inpainting U-Net that redraws the upper face "
        "(the brows, the skin between them, a band of forehead) as a target expression marks it, in a 40 x 56 grey "
        "brow frame. Trained without pairs on labelled real faces: each face's upper face is hidden and rebuilt for "
        "its own label (L1), and redrawn for a random other label, judged by a discriminator with a class head "
        "(softmax cross-entropy on real faces' labels) and a PatchGAN critic. The editor (`expr_models.pipeline`) "
        "adds its change to the photo's shading after the mesh warp."
    )

    def __init__(self, config: BrowInpainterConfig):
        super().__init__(config)
        classes, maps = len(config.class_names), REGIONS[config.region].map_channels
        self.generator = BrowInpaintingGenerator(classes, maps, config.base_channels, config.residual_blocks,
                                                 config.norm)
        self.discriminator = (ClassPatchDiscriminator(classes, maps, config.discriminator_channels)
                              if config.with_discriminator else None)
        self.post_init()

    def _init_weights(self, module):
        init_gan_weights(module)

    def labels(self, target: str | int | torch.Tensor, count: int) -> torch.Tensor:
        """One-hot ``count x num_classes`` rows for an expression name, an index, or index tensor."""
        names = list(self.config.class_names)
        if isinstance(target, str):
            if target not in names:
                raise ValueError(f"unknown expression {target!r}; the brow model draws {names}")
            target = names.index(target)
        index = torch.as_tensor(target).long().reshape(-1).expand(count) if torch.as_tensor(target).numel() == 1 \
            else torch.as_tensor(target).long()
        return nn.functional.one_hot(index, len(names)).float()

    def forward(self, windows: torch.Tensor, holes: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor
                ) -> torch.Tensor:
        """The generator's full-window prediction (``N x 1 x H x W`` in [-1, 1]) for one-hot ``labels``."""
        return self.generator(windows, holes, maps, labels)

    @torch.no_grad()
    def inpaint(self, windows: torch.Tensor, holes: torch.Tensor, maps: torch.Tensor,
                target: str | int | torch.Tensor) -> torch.Tensor:
        """``windows`` with their ``holes`` redrawn for the ``target`` expression; the rest is the input. A target
        named in the config's ``label_guidance`` is drawn past the label's own drawing, away from the mean over the
        labels (one batch of every label, the windows being small)."""
        parameter = next(self.generator.parameters())
        windows, holes, maps = (t.to(parameter.device, parameter.dtype) for t in (windows, holes, maps))
        guidance = (self.config.label_guidance or {}).get(target, 0.0) if isinstance(target, str) else 0.0
        if guidance:  # every label's drawing in one batch: the target's is among them
            classes, count = len(self.config.class_names), len(windows)
            every = torch.eye(classes, device=parameter.device).repeat_interleave(count, 0)
            drawings = self.run_network(windows.repeat(classes, 1, 1, 1), holes.repeat(classes, 1, 1, 1),
                                        maps.repeat(classes, 1, 1, 1), every)
            drawings = drawings.reshape(classes, count, *windows.shape[1:])
            predicted = drawings[self.config.class_names.index(target)]
            predicted = (predicted + guidance * (predicted - drawings.mean(0))).clamp(-1, 1)
        else:
            predicted = self.run_network(windows, holes, maps, self.labels(target, len(windows)).to(parameter.device))
        return windows * (1 - holes) + predicted * holes

    def onnx_network(self) -> nn.Module:
        return self.generator

    def onnx_example_inputs(self) -> tuple[torch.Tensor, ...]:
        size = (self.config.frame_height, self.config.frame_width)
        holes = (torch.rand(2, 1, *size) > 0.5).float()
        maps = torch.rand(2, REGIONS[self.config.region].map_channels, *size)
        return torch.rand(2, 1, *size) * 2 - 1, holes, maps, self.labels(torch.tensor([0, 3]), 2)

    def without_discriminator(self) -> "BrowInpainterModel":
        """A copy holding the generator alone, for small inference checkpoints."""
        return self.copy_with_config(with_discriminator=False)


@strict
class LowerFaceInpainterConfig(BrowInpainterConfig):
    r"""
    The learned lower face: :class:`BrowInpainterConfig` for the ``lower_face`` region (the cheeks, the nasolabial
    folds, the lips and the chin, in the 48 x 56 frame of ``expr_models.faces.lower_face_frame``).
    """

    model_type = "expr-lower-face-inpainter"

    region: str = "lower_face"
    frame_height: int = LOWER_FACE_HEIGHT
    frame_width: int = LOWER_FACE_WIDTH

    def validate_lower_face(self):
        if self.region != "lower_face":
            raise ValueError(f"a lower-face inpainter redraws the lower_face region, got {self.region!r}")


class LowerFaceInpainterModel(BrowInpainterModel):
    """The learned lower face: the brows' network and training, redrawing the lower face. Where a smile is undone it
    draws the cheeks, folds and lips of the target expression; a warp moves the smile's folds and lit cheeks with the
    skin, and the median shading (``ExpressionShadingModel``) darkens them into a grey blot on a 48-px face."""

    config_class = LowerFaceInpainterConfig
    card_summary = (
        "The learned lower face for expression edits: a class-conditional inpainting U-Net that redraws the lower face "
        "(the cheeks, the nasolabial folds, the lips and the chin) as a target expression marks it, in a 48 x 56 grey "
        "frame levelled on the eyes. Trained without pairs on labelled real faces, as the learned brows are: each "
        "face's lower face is hidden and rebuilt for its own label (L1), and redrawn for a random other label, judged "
        "by a discriminator with a class head (softmax cross-entropy on real faces' labels) and a PatchGAN critic. "
        "The editor (`expr_models.pipeline`) adds its change to the photo's shading after the mesh warp."
    )


@strict
class EyesInpainterConfig(BrowInpainterConfig):
    r"""
    The learned eyes: :class:`BrowInpainterConfig` for the ``eyes`` region (each eye, its lids and the skin up to its
    brow, in the brow frame of ``expr_models.faces.brow_frame``).
    """

    model_type = "expr-eyes-inpainter"

    region: str = "eyes"

    def validate_eyes(self):
        if self.region != "eyes":
            raise ValueError(f"an eyes inpainter redraws the eyes region, got {self.region!r}")


class EyesInpainterModel(BrowInpainterModel):
    """The learned eyes: the brows' network and training, redrawing the eyes and their lids. Where a squint or a frown
    is undone, the warp opens the eye by stretching its dark slit and lashes into a blot, and lifts the lowered brow's
    shadow onto the lid; there is no white or iris there to move, so this draws them."""

    config_class = EyesInpainterConfig
    card_summary = (
        "The learned eyes for expression edits: a class-conditional inpainting U-Net that redraws the eyes, their lids "
        "and the skin up to the brows as a target expression and the target eye openings mark them, in the 40 x 56 "
        "grey brow frame. Trained without pairs on labelled real faces, as the learned brows are: each face's eyes are "
        "hidden and rebuilt for its own label (L1), and redrawn for a random other label, judged by a discriminator "
        "with a class head (softmax cross-entropy on real faces' labels) and a PatchGAN critic. The editor "
        "(`expr_models.pipeline`) adds its change to the photo's shading after the mesh warp."
    )


# The model for each region (``BrowInpainterConfig.region``).
INPAINTER_CLASSES: dict[str, tuple[type[BrowInpainterConfig], type[BrowInpainterModel]]] = {
    "upper_face": (BrowInpainterConfig, BrowInpainterModel),
    "lower_face": (LowerFaceInpainterConfig, LowerFaceInpainterModel),
    "eyes": (EyesInpainterConfig, EyesInpainterModel),
}
