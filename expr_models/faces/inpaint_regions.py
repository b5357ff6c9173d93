"""The face regions a class-conditional inpainter redraws (``models.brow_inpainter``): each region's aligned frame,
the maps its model is conditioned on, and its hole.

    region = REGIONS["lower_face"]
    frame = region.frame.from_points(points)                 # a 468-point mesh in photo pixels
    maps, hole = region.maps(frame.to_frame(points)), region.hole(frame.to_frame(points), margin)

``upper_face``: the brows, the glabella and a band of forehead (``brow_frame``); ``eyes``: the eyes, their lids and
the skin up to the brows, in the same frame; ``lower_face``: the cheeks, the nasolabial folds, the lips and the chin
(``lower_face_frame``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import brow_frame, lower_face_frame
from .aligned_frame import AlignedFrame


@dataclass(frozen=True)
class InpaintRegion:
    frame: type[AlignedFrame]
    maps: Callable[[np.ndarray], np.ndarray]           # frame points -> C x H x W float32
    hole: Callable[[np.ndarray, float], np.ndarray]    # frame points, margin -> H x W float32
    map_channels: int
    eye_distance: float                                # the eye centres' distance in the frame
    fits: Callable[[np.ndarray], bool] = lambda frame_points: True  # whether the model redraws this face

    @property
    def size(self) -> tuple[int, int]:
        return self.frame.height, self.frame.width


REGIONS = {
    "upper_face": InpaintRegion(brow_frame.BrowFrame, brow_frame.brow_maps, brow_frame.brow_hole, 2,
                                brow_frame.EYE_DISTANCE),
    "eyes": InpaintRegion(brow_frame.BrowFrame, brow_frame.brow_maps, brow_frame.eye_hole, 2, brow_frame.EYE_DISTANCE),
    "lower_face": InpaintRegion(lower_face_frame.LowerFaceFrame, lower_face_frame.lower_face_maps,
                                lower_face_frame.lower_face_hole, 3, lower_face_frame.EYE_DISTANCE,
                                lower_face_frame.fits),
}
