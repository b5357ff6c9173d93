"""What every detector shares: reading the photo array and the smallest face to report."""

from __future__ import annotations

import numpy as np
from PIL import Image


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """A PIL image or a uint8 array (gray, RGB or RGBA) as an ``H x W x 3`` uint8 RGB array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image array, got {image.dtype}")
    return image


def min_size_pixels(min_size: float, height: int, width: int) -> float:
    """``min_size`` in pixels: a value below 1 is a fraction of the photo's shorter side, otherwise pixels."""
    return min_size * min(height, width) if 0 < min_size < 1 else float(min_size)
