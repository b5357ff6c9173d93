"""OpenCV's frontal-face Haar cascade: shipped inside opencv-python, no other dependency. It framed every training
crop, so its boxes define the framing the other detectors map theirs to."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..geometry import FaceBox
from .common import as_rgb_array, min_size_pixels


@lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"Could not load OpenCV's {name} from {cv2.data.haarcascades}")
    return cascade


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, tuned for few false positives.

    ``alt2`` with ``min_neighbors=5`` finds one face per photo on the JAFFE and FEI photos and none on scikit-image's
    photos without faces (raw grayscale, no equalisation). Big photos are searched on a downscaled copy (longest side
    ``max_side``) for speed; boxes are scaled back to the photo. ``score`` grows with the number of overlapping raw
    detections the cascade merged into the box.

    The cascade's cost grows with the pixels searched, hence ``max_side=640``. Its smallest window is 20 pixels, so on
    a photo whose longer side is ``L`` the smallest face found is about ``20 * L / max_side`` pixels. Pass a larger
    ``max_side`` (or ``None``: never downscale) for group photos of small faces.
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_alt2.xml", min_neighbors: int = 5,
                 scale_factor: float = 1.1, max_side: int | None = 640):
        self.cascade_name = cascade
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.max_side = max_side

    def detect(self, image: np.ndarray, min_size: float = 24) -> list[FaceBox]:
        gray = cv2.cvtColor(as_rgb_array(image), cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        shrink = 1.0 if not self.max_side else min(1.0, self.max_side / max(height, width))
        if shrink < 1.0:
            # At least one pixel: a 1 x 30000 strip would otherwise shrink to 0 wide and OpenCV would raise.
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        # No histogram equalisation: the cascade normalises each window's contrast itself, and a global
        # equalisation of a photo with a large flat background washes the faces out.

        min_px = min_size_pixels(min_size, height, width) * shrink
        min_px = max(20, int(round(min_px)))  # the cascade's own window is 20x20
        if min_px > min(gray.shape):
            return []
        rects, neighbours = _cascade(self.cascade_name).detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        boxes = []
        for (x, y, w, h), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
            score = float(n) / (float(n) + self.min_neighbors)
            boxes.append(FaceBox(float(x), float(y), float(x + w), float(y + h), score).scaled(1.0 / shrink))
        return boxes
