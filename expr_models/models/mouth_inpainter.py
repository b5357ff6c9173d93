"""The learned mouth: an inpainting network that redraws the inside of the lips (teeth, the dark cavity, or closed
lips meeting) for a target lip shape, in the person's own colours.

    model = MouthInpainterModel.from_pretrained("checkpoints/mouth_inpainter")
    out = model.inpaint(frames, holes, maps)   # N x 3 x H x W in [-1, 1]: frames with the holes redrawn

It works in the mouth frame of ``expr_models.faces.mouth_frame`` (96 x 128, the mouth 56 px wide). Inputs:
``frames`` (the mouth window, [-1, 1]); ``holes`` (N x 1 x H x W in [0, 1]: what to redraw, the inner lips plus a
margin); ``maps`` (N x 3 x H x W: the *target* mouth opening, lips and inner-lip line, ``mouth_frame.lip_maps``).
The network sees the frame with the hole blanked, the hole and the maps, and returns a full frame; only the hole is
taken from it.

Trained without pairs (``train/mouth_inpainter.py``): every real face is an example. Its own inner lips are hidden and
the network rebuilds them from the rest of the face and its own lip shape, with an L1 loss and a PatchGAN that sees the
result with the maps (so it judges whether the teeth fit the opening). Asked for a different lip shape at editing time,
it draws a mouth that fits that shape: teeth where the lips part, lips where they close.

The generator is the small inpainting U-Net of ``layers`` (levels H .. H/8, residual blocks at the bottom, where a
3 x 3 kernel spans a quarter of the mouth).
"""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from ..faces.mouth_frame import FRAME_HEIGHT, FRAME_WIDTH, MOUTH_WIDTH
from .layers import InpaintingUNet, PatchDiscriminator, init_gan_weights
from .modeling_utils import ExprPreTrainedModel

MAP_CHANNELS = 3  # mouth opening, lips, inner-lip line


@strict
class MouthInpainterConfig(PreTrainedConfig):
    r"""
    Args:
        base_channels: channels of the U-Net's first level (x2 per level, three levels down).
        residual_blocks: residual blocks at the U-Net's bottom (H/8).
        norm: the generator's normalisation (``instance``, ``batch``, ``group``, ``none``).
        frame_height: the mouth frame's height (``expr_models.faces.mouth_frame``).
        frame_width: the mouth frame's width.
        mouth_width: the outer mouth corners' distance in the frame.
        hole_margin: how far (frame pixels) the hole reaches past the target inner lips at editing time (little:
            the lips keep the photo's own sharp pixels).
        with_discriminator: build the PatchGAN discriminator; False for inference checkpoints.
        discriminator_channels: the PatchGAN's first-layer channels.
    """

    model_type = "expr-mouth-inpainter"

    base_channels: int = 32
    residual_blocks: int = 4
    norm: str = "instance"
    frame_height: int = FRAME_HEIGHT
    frame_width: int = FRAME_WIDTH
    mouth_width: float = MOUTH_WIDTH
    hole_margin: float = 2.0
    with_discriminator: bool = True
    discriminator_channels: int = 32

    def validate_mouth_inpainter(self):
        if (self.frame_height, self.frame_width, self.mouth_width) != (FRAME_HEIGHT, FRAME_WIDTH, MOUTH_WIDTH):
            raise ValueError(f"the mouth frame is {FRAME_HEIGHT} x {FRAME_WIDTH} with a {MOUTH_WIDTH:g} px mouth "
                             "(expr_models.faces.mouth_frame), got "
                             f"{self.frame_height} x {self.frame_width} with {self.mouth_width:g}")
        if self.base_channels < 4 or self.residual_blocks < 0 or self.hole_margin < 0:
            raise ValueError("base_channels must be >= 4, residual_blocks and hole_margin >= 0")


class MouthInpaintingGenerator(InpaintingUNet):
    """The U-Net over (frame with the hole blanked, hole, target maps): 3 + 1 + 3 channels in, RGB out (tanh)."""

    def __init__(self, channels: int = 32, residual_blocks: int = 4, norm: str = "instance"):
        super().__init__(3 + 1 + MAP_CHANNELS, 3, channels, residual_blocks, norm)

    def forward(self, frames: torch.Tensor, holes: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([frames * (1 - holes), holes, maps], 1))


class MouthInpainterModel(ExprPreTrainedModel):
    config_class = MouthInpainterConfig
    main_input_name = "frames"
    card_summary = (
        "A learned mouth for expression edits: an inpainting U-Net that redraws the inside of the lips (teeth, the "
        "dark cavity, or closed lips) for a target lip shape, in the person's own colours, in a 96 x 128 mouth frame. "
        "Trained without pairs: each real face's own mouth is hidden and rebuilt from the rest of the face and its "
        "lip shape (L1 + PatchGAN). The editor (`expr_models.pipeline`) runs it after the mesh warp, where the target "
        "lips part or close."
    )

    def __init__(self, config: MouthInpainterConfig):
        super().__init__(config)
        self.generator = MouthInpaintingGenerator(config.base_channels, config.residual_blocks, config.norm)
        # The discriminator reads the result with the target maps: teeth must fit the opening they are drawn in.
        self.discriminator = (PatchDiscriminator(3 + MAP_CHANNELS, config.discriminator_channels, 3, "none",
                                                 spectral=True) if config.with_discriminator else None)
        self.post_init()

    def _init_weights(self, module):
        init_gan_weights(module)

    def forward(self, frames: torch.Tensor, holes: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The generator's full-frame prediction (``N x 3 x H x W`` in [-1, 1])."""
        return self.generator(frames, holes, maps)

    @torch.no_grad()
    def inpaint(self, frames: torch.Tensor, holes: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """``frames`` with their ``holes`` redrawn for the target ``maps``; the rest is the input."""
        parameter = next(self.generator.parameters())
        frames, holes, maps = (t.to(parameter.device, parameter.dtype) for t in (frames, holes, maps))
        predicted = self.run_network(frames, holes, maps)
        return frames * (1 - holes) + predicted * holes

    def onnx_network(self) -> nn.Module:
        return self.generator

    def onnx_example_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (2, 1, FRAME_HEIGHT, FRAME_WIDTH)
        holes = (torch.rand(shape) > 0.5).float()
        return torch.rand(2, 3, *shape[2:]) * 2 - 1, holes, torch.rand(2, MAP_CHANNELS, *shape[2:])

    def without_discriminator(self) -> "MouthInpainterModel":
        """A copy holding the generator alone, for small inference checkpoints."""
        return self.copy_with_config(with_discriminator=False)

    @classmethod
    def from_mouth(cls, mouth: "MouthInpainterModel") -> "MouthInpainterModel":
        """A mouth of this class that starts as ``mouth`` (its config and generator weights, in float32): a GAN's own
        mouth, to fine-tune by that GAN's losses."""
        fields = {name: getattr(mouth.config, name) for name in (
            "base_channels", "residual_blocks", "norm", "hole_margin", "with_discriminator", "discriminator_channels")}
        model = cls(cls.config_class(**fields))
        model.generator.load_state_dict(mouth.generator.float().state_dict())
        return model


@strict
class CycleGANMouthConfig(MouthInpainterConfig):
    r"""
    The CycleGAN's own mouth: :class:`MouthInpainterConfig` for the learned mouth fine-tuned by the CycleGAN's
    adversarial and cycle losses on its edits (``train/mouth_cycle.py``).
    """

    model_type = "expr-cyclegan-mouth"


class CycleGANMouthModel(MouthInpainterModel):
    """The learned mouth as the CycleGAN's appearance branch: the same network, fine-tuned on the CycleGAN's own edits
    (a neutral face's lips parted by its mesh generator, a smile's closed) by one PatchGAN per domain and, from
    neutral faces, the cycle back to their own lips. The editor uses it for the CycleGAN's edits in place of the
    learned mouth."""

    config_class = CycleGANMouthConfig
    card_summary = (
        "The CycleGAN's own mouth for expression edits: the learned mouth (an inpainting U-Net that redraws the inside "
        "of the lips for a target lip shape, in a 96 x 128 mouth frame) fine-tuned by the CycleGAN's losses on the "
        "edits it makes: each real window of a neutral or smiling face is warped by the committed CycleGAN's mesh "
        "generator towards the other expression and its new inner lips redrawn, judged by that expression's PatchGAN "
        "(hinge, with the lip maps); a neutral face's smile is then warped back and its lips redrawn again, L1 to the "
        "real window (cycle consistency), beside the self-supervised inpainting losses it was trained with. The "
        "editor (`expr_models.pipeline`) runs it after the CycleGAN's mesh warp, where the lips close over teeth."
    )


@strict
class SAGANMouthConfig(MouthInpainterConfig):
    r"""
    The SA-GAN's own mouth: :class:`MouthInpainterConfig` for the learned mouth fine-tuned by the SA-GAN's
    class-conditional adversarial loss on its edits (``train/mouth_sagan.py``).
    """

    model_type = "expr-sagan-mouth"


class SAGANMouthModel(MouthInpainterModel):
    """The learned mouth as the SA-GAN's appearance branch: the same network, fine-tuned on the SA-GAN's own edits
    (each real window's lips moved by its mesh generator towards another of the seven expressions and redrawn) by the
    study's loss: a PatchGAN class head of 7 + 1 logits that learns each real mouth's expression and calls edits
    generated, and the mouth is trained to make it read the edit as its target. The editor uses it for the SA-GAN's
    edits in place of the learned mouth."""

    config_class = SAGANMouthConfig
    card_summary = (
        "The SA-GAN's own mouth for expression edits: the learned mouth (an inpainting U-Net that redraws the inside "
        "of the lips for a target lip shape, in a 96 x 128 mouth frame) fine-tuned by the SA-GAN's loss on the edits "
        "it makes: each real mouth window is warped by the committed SA-GAN's mesh generator towards another of the "
        "seven expressions and its new inner lips redrawn; a PatchGAN with the study's softmax class head (7 "
        "expressions + generated, on grey windows with the lip maps) learns the real windows' expressions and calls "
        "the edits generated, and the mouth learns to make it read each edit as its target, beside the "
        "self-supervised inpainting losses it was trained with. The editor (`expr_models.pipeline`) runs it after the "
        "SA-GAN's mesh warp, where the lips part or close."
    )
