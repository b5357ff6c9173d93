"""From a photo to a model tensor and back, one way for training and inference: :class:`FaceImageProcessor`.

    processor = FaceImageProcessor()
    crop, transform = processor.crop(photo, box)                   # full-resolution square at the training framing
    pixels = processor.to_tensor(crop, resolution=64, channels=1)  # 1 x 1 x 64 x 64 float32 in [-1, 1]
    edited = processor.edit_luminance(crop, model_fn, 64)          # the model's change at the crop's resolution
    photo = processor.paste(photo, edited, transform, processor.blend_mask(transform, box, photo))

Training data goes through the same calls: a prepared dataset's face image (PIL or array) becomes a model input with
``processor.to_tensor(image, resolution, channels)``, and a training crop is ``processor.crop(photo, box, size)``.
The conventions (CONTRIBUTING.md): tensors ``N x C x H x W`` float32 in [-1, 1]; ``C`` is 1 (luminance Y of YCbCr,
ITU-R BT.601, full range: what PIL's ``convert("L")`` computes, unrounded) or 3 (RGB). Every resize is
:func:`expr_models.faces.geometry.resize_square` (area when shrinking, bicubic when enlarging; it says why).
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from .geometry import CROP_SCALE, CropTransform, FaceBox, crop_face, crop_square, face_mask, paste_back, resize_square

# How a face's square is placed in the photo. "box": CROP_SCALE times the detector's (Haar-framed) box around its
# centre, axis-aligned; the luminance GANs were trained on it. Models that work in the frame aligned on the five
# landmarks (expr_models.faces.alignment) go one step further inside that square:
# :meth:`FaceImageProcessor.edit_aligned`.
FRAMINGS = ("box",)

# Where RetinaFace's five landmarks fall, on average, in the box-framed square (fractions of its side; measured on 61
# RetinaFace detections of London Set, FEI and scikit-image faces, standard deviation 0.005-0.02): the landmarks of a
# face whose detector gives none (Haar, the segmenter), so that aligned models still work there, a little less well.
BOX_FRAME_LANDMARKS = np.array([[0.352, 0.420], [0.652, 0.419], [0.500, 0.588], [0.380, 0.749], [0.620, 0.749]])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 YCbCr (ITU-R BT.601, full range), the same transform as PIL's ``convert('YCbCr')``."""
    rgb = rgb.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128.0 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 128.0 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    return np.stack([y, cb, cr], axis=-1)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Y of an RGB array (uint8 or float in 0..255) as float32; a 2-D array is already luminance."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return rgb_to_ycbcr(rgb)[..., 0]


class FaceImageProcessor:
    """Crops, resamples and normalises faces for every model, in training and in the editor.

    ``scale``: the crop is this many times the detector's box (``CROP_SCALE``, the training framing).
    ``framing``: how the square is placed (``FRAMINGS``; today only ``"box"``).
    The processor holds no state besides these settings: the same input always gives the same tensor.
    """

    def __init__(self, scale: float = CROP_SCALE, framing: str = "box"):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        self.scale = float(scale)
        self.framing = framing

    def __repr__(self) -> str:
        return f"FaceImageProcessor(scale={self.scale}, framing={self.framing!r})"

    # --- where the face is -------------------------------------------------------------------------------------------
    def frame(self, box: FaceBox, photo_width: int, photo_height: int) -> CropTransform:
        """Where ``box``'s crop lies in a photo of that size, at the photo's own resolution (no pixels read)."""
        x0, y0, side = crop_square(box, self.scale)
        return CropTransform(x0, y0, side, side, photo_width, photo_height)

    def crop(self, photo: np.ndarray | Image.Image, box: FaceBox, size: int | None = None,
             scale: float | None = None) -> tuple[np.ndarray, CropTransform]:
        """The face's square, resized to ``size x size`` (``None``: the photo's own resolution), and the transform
        that maps it back. Where the square leaves the photo it is filled by reflection. ``scale``: the square's side
        over the box's (``None``: the processor's, the training framing)."""
        return crop_face(photo, box, size, self.scale if scale is None else scale)

    def blend_mask(self, transform: CropTransform, box: FaceBox | None = None,
                   photo: np.ndarray | None = None) -> np.ndarray:
        """The feathered face mask of a crop, ``side x side`` float32 in [0, 1]. A segmenting detector's mask on
        ``box`` (``H x W`` over ``photo``) is cut like the crop and multiplied in."""
        segmentation = None
        if box is not None and photo is not None and box.mask is not None and box.mask.shape == photo.shape[:2]:
            segmentation, _ = crop_face(np.asarray(box.mask, np.float32), box, None, self.scale)
        return face_mask(transform.side, self.scale, segmentation=segmentation)

    def paste(self, photo: np.ndarray, edited: np.ndarray, transform: CropTransform, mask: np.ndarray,
              out: np.ndarray | None = None) -> np.ndarray:
        """Blend an edited crop back into the photo (``out``: in place); pixels where the mask is 0 stay as they
        were."""
        return paste_back(photo, edited, transform, mask, out=out)

    def crop_landmarks(self, box: FaceBox, transform: CropTransform) -> np.ndarray:
        """The face's five landmarks (``5 x 2``) in the coordinates of its crop; estimated from the box without
        landmarks."""
        if box.landmarks is None:
            return BOX_FRAME_LANDMARKS * transform.size
        points = np.asarray(box.landmarks, np.float64).reshape(5, 2)
        return (points - [transform.x0, transform.y0]) * transform.scale

    @staticmethod
    def edit_aligned(crop: np.ndarray, points: np.ndarray, edit: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Run ``edit`` on the crop's face in the aligned frame (at the crop's own resolution) and put only the change
        back: a model that warps the face then moves the photo's own full-resolution pixels."""
        from .alignment import align_face, native_size, paste_from_frame, warp_to_frame

        face = align_face(points, native_size(points))
        aligned = warp_to_frame(crop, face)
        return paste_from_frame(crop, edit(aligned), face, original=aligned)

    # --- pixels <-> tensors ------------------------------------------------------------------------------------------
    @staticmethod
    def resize(image: np.ndarray, size: int) -> np.ndarray:
        """A square image at ``size x size`` (the project's one resampling rule)."""
        return resize_square(image, size)

    def to_tensor(self, images: np.ndarray | Image.Image | Sequence[np.ndarray | Image.Image], resolution: int,
                  channels: int = 1) -> torch.Tensor:
        """One face image or a list of them -> an ``N x channels x resolution x resolution`` float32 tensor in [-1, 1].

        Each image is a face crop (square; another shape is stretched to one): a uint8 array (``H x W`` gray or
        ``H x W x 3`` RGB) or a PIL image. It is resized first, in RGB (where the editor and the training crops
        resize), then reduced to its luminance (``channels=1``) or kept in RGB (``channels=3``; gray is repeated).
        """
        if channels not in (1, 3):
            raise ValueError(f"Models take 1 or 3 channels, not {channels}")
        if isinstance(images, (np.ndarray, Image.Image)):
            images = [images]
        planes = []
        for image in images:
            small = self.resize(_as_array(image), resolution)
            if channels == 1:
                planes.append(torch.from_numpy(luminance(small) / 127.5 - 1.0)[None])
            else:
                rgb = small if small.ndim == 3 else np.repeat(small[..., None], 3, axis=-1)
                planes.append(torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1))
        return torch.stack(planes).float().contiguous()

    @staticmethod
    def from_tensor(tensor: torch.Tensor) -> np.ndarray:
        """A model's output (``N x C x H x W`` or ``C x H x W`` in [-1, 1]) -> float32 ``(N x) H x W x C`` in
        [0, 255], unrounded (round and cast to show it)."""
        tensor = tensor.detach().float().cpu().clamp(-1, 1)
        array = ((tensor + 1.0) * 127.5).movedim(-3, -1).numpy()
        return array

    # --- editing -----------------------------------------------------------------------------------------------------
    def edit_luminance(self, crop: np.ndarray, model_fn: Callable[[torch.Tensor], torch.Tensor], resolution: int,
                       channels: int = 1, intensity: float = 1.0) -> np.ndarray:
        """Edit an RGB uint8 crop (any size) with a model that works on ``resolution``-sized tensors in [-1, 1].

        The model sees the crop's luminance Y (``channels=1``) or its RGB (``channels=3``) at ``resolution``. Its
        change to Y, ``edited - original`` at the model's resolution, is upsampled to the crop's size, scaled by
        ``intensity`` and added to the crop's own Y; the crop keeps its CbCr. So the full-resolution detail survives
        wherever the model changed nothing, and colours never shift.
        """
        side = crop.shape[0]
        small = self.resize(crop, resolution)
        pixels = self.to_tensor(small, resolution, channels)
        output = model_fn(pixels).detach().float().cpu()
        if output.shape != pixels.shape:
            raise RuntimeError(f"The model returned {tuple(output.shape)} for an input of {tuple(pixels.shape)}")
        output = self.from_tensor(output[0])
        edited_y = output[..., 0] if channels == 1 else luminance(output)
        small_y = luminance(small)

        residual = (edited_y - small_y).astype(np.float32)
        if side != resolution:
            # The change, not a face: bicubic both ways (as every published number was made), so it stays smooth.
            residual = cv2.resize(residual, (side, side), interpolation=cv2.INTER_CUBIC)
        # With Cb and Cr held fixed, YCbCr -> RGB adds a change of Y to R, G and B alike, so adding the residual to
        # each channel is exactly "new Y, own CbCr", without a round trip's rounding (gray stays gray, untouched
        # stays put).
        edited = crop.astype(np.float32)
        edited += float(intensity) * residual[..., None]
        np.rint(edited, out=edited)
        np.clip(edited, 0, 255, out=edited)
        return edited.astype(np.uint8)


def _as_array(image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = image if image.mode in ("L", "RGB") else image.convert("RGB")
        return np.asarray(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(f"Expected a uint8 gray or RGB image, got {array.dtype} {array.shape}")
    return array


def to_model_tensor(image: Image.Image | np.ndarray, resolution: int | None = None, channels: int = 1) -> torch.Tensor:
    """One face image -> a ``1 x channels x R x R`` tensor in [-1, 1], as :meth:`FaceImageProcessor.to_tensor` makes
    it (``resolution=None``: the image's own size). The training loader's entry point."""
    array = _as_array(image)
    return FaceImageProcessor().to_tensor(array, resolution or array.shape[0], channels)
