"""Conversions between photos and model tensors (``N x C x H x W`` in [-1, 1])."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_model_tensor(image: Image.Image | np.ndarray, resolution: int | None = None, channels: int = 1) -> torch.Tensor:
    """A PIL image or uint8 array (H x W or H x W x C) -> a ``1 x channels x R x R`` tensor in [-1, 1]."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("L" if channels == 1 else "RGB")
    if resolution is not None and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array)
    tensor = tensor[None] if channels == 1 else tensor.permute(2, 0, 1)
    return tensor[None].contiguous()


def from_model_tensor(tensor: torch.Tensor) -> np.ndarray:
    """A ``C x H x W`` or ``1 x C x H x W`` tensor in [-1, 1] -> uint8 array (H x W for one channel, else H x W x C)."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"Expected a single image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    array = ((tensor.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    array = array.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 YCbCr (ITU-R BT.601, full range), the same transform as PIL's ``convert('YCbCr')``."""
    rgb = rgb.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128.0 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 128.0 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """float YCbCr -> uint8 RGB (inverse of :func:`rgb_to_ycbcr`)."""
    y, cb, cr = ycbcr[..., 0], ycbcr[..., 1] - 128.0, ycbcr[..., 2] - 128.0
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return np.clip(np.stack([r, g, b], axis=-1).round(), 0, 255).astype(np.uint8)
