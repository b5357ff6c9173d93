"""The photo's grain, for what is drawn into it: a region a model or a rule paints (a mouth's cavity, lips redrawn
meeting) is smoother than the sensor noise, scan grain and skin texture around it, and looks pasted on.

    spread = grain_spread(window, band)          # the high-frequency spread of ``window`` over the pixels ``band``
    noisy = window + grain(window.shape[:2], spread)[..., None]
    drawn = with_grain(drawn, photo_region, drawn_where, photo_where)   # the grain ``drawn`` lacks, added

The noise has a fixed seed, so the same photo gets the same edit.
"""

from __future__ import annotations

import cv2
import numpy as np

# Detail = the image less its Gaussian blur at this sigma (px): the pixel-scale grain, not the features.
DETAIL_SIGMA = 1.0
# The fewest pixels ``with_grain`` measures a spread over.
MIN_PIXELS = 30


def detail(image: np.ndarray) -> np.ndarray:
    """``image`` (H x W (x C), any dtype) less its blur: float32 of the same shape."""
    image = np.asarray(image, np.float32)
    return image - cv2.GaussianBlur(image, (0, 0), DETAIL_SIGMA).reshape(image.shape)


def grain_spread(image: np.ndarray, where: np.ndarray) -> float:
    """The spread of ``image``'s detail over the pixels ``where`` (boolean H x W) and its channels, as a standard
    deviation estimated from the median absolute detail (a lip's edge or a nostril among those pixels is a feature,
    not grain, and would inflate a plain standard deviation); 0 with fewer than 8 such pixels."""
    where = np.asarray(where, bool)
    if where.sum() < 8:
        return 0.0
    values = detail(image)[where]
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def grain(shape: tuple[int, int], spread: float, seed: int = 0) -> np.ndarray:
    """H x W float32 white noise of standard deviation ``spread`` (one value per pixel: luminance grain)."""
    return np.random.default_rng(seed).normal(0.0, spread, shape).astype(np.float32)


def with_grain(drawn: np.ndarray, photo: np.ndarray, drawn_where: np.ndarray, photo_where: np.ndarray) -> np.ndarray:
    """``drawn`` (H x W (x C) float) with the grain it lacks against ``photo`` (the same size) added: noise of the
    spread that makes its detail over ``drawn_where`` as strong as the photo's over ``photo_where`` (both boolean
    H x W); ``drawn`` itself where it is already as grainy, or where either region is too small to measure (under
    ``MIN_PIXELS``: a sliver of a gap has no grain to speak of, and a few pixels of lip edge are no measure of it)."""
    if np.count_nonzero(drawn_where) < MIN_PIXELS or np.count_nonzero(photo_where) < MIN_PIXELS:
        return drawn
    missing = grain_spread(photo, photo_where) ** 2 - grain_spread(drawn, drawn_where) ** 2
    if missing <= 0:
        return drawn
    noise = grain(np.asarray(drawn).shape[:2], 1.0)
    # Scaled by its own detail's spread, measured as the photo's was (the blur takes part of white noise's too).
    noise *= float(np.sqrt(missing)) / max(grain_spread(noise, drawn_where), 1e-6)
    return drawn + (noise[..., None] if np.asarray(drawn).ndim == 3 else noise)
