"""The mouth frame of the learned mouth (``models.mouth_inpainter``): a similarity-aligned window around the mouth, and
the lip-shape maps the model is conditioned on.

    frame = MouthFrame.from_points(points)             # points: a 468-point face mesh in photo pixels
    window = frame.crop(photo)                         # FRAME_HEIGHT x FRAME_WIDTH x C, the mouth level and centred
    maps = lip_maps(frame.to_frame(points))            # 3 x H x W float32: mouth opening, lips, inner-lip line
    hole = hole_mask(frame.to_frame(points), margin)   # H x W float32: what the model redraws

The frame puts the outer mouth corners (mesh points 61 and 291) on a level line ``MOUTH_WIDTH`` pixels apart, the
lips' centre at (``FRAME_WIDTH`` / 2, ``MOUTH_Y``): from under the nose to the chin. Every training face and every
edited face is seen at this one scale, so the model learns teeth and lips of one size.

The three maps say what the target mouth looks like, and nothing else: where the lips part (the inner-lip polygon,
filled), where the lips are (the outer polygon less the inner), and the inner-lip line itself (a closed mouth's
polygon is empty, but its seam still has a place).
"""

from __future__ import annotations

import numpy as np

from .aligned_frame import AlignedFrame, grown
from .mesh_topology import LIPS_INNER, LIPS_OUTER, MOUTH_CORNERS

FRAME_HEIGHT = 96
FRAME_WIDTH = 128
MOUTH_WIDTH = 56.0  # outer corner to corner, frame pixels (GENKI-4K's mouths are 35-45 px, FEI's 70-90, London's ~180)
MOUTH_Y = 44.0      # the lips' centre: 0.8 mouth widths of face above it (the nostrils), 0.9 below (the chin)


class MouthFrame(AlignedFrame):
    """The similarity from photo pixels into the mouth frame."""

    height = FRAME_HEIGHT
    width = FRAME_WIDTH

    @classmethod
    def from_points(cls, points: np.ndarray) -> "MouthFrame":
        points = np.asarray(points, np.float64)[:, :2]
        return cls.from_axis(points[MOUTH_CORNERS[0]], points[MOUTH_CORNERS[1]], MOUTH_WIDTH,
                             points[list(LIPS_OUTER)].mean(0), (FRAME_WIDTH / 2.0, MOUTH_Y), "mouth corners")


def lip_maps(frame_points: np.ndarray) -> np.ndarray:
    """3 x H x W float32 in [0, 1] from a mesh in frame pixels: the mouth opening (inner polygon), the lips (outer
    polygon less the inner) and the inner-lip line."""
    inner = np.asarray(frame_points)[list(LIPS_INNER), :2]
    outer = np.asarray(frame_points)[list(LIPS_OUTER), :2]
    opening = MouthFrame.draw([inner], fill=True)
    lips = np.clip(MouthFrame.draw([outer], fill=True) - opening, 0.0, 1.0)
    line = MouthFrame.draw([inner], fill=False)
    return np.stack([opening, lips, line])


def hole_mask(frame_points: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: the inner-lip polygon and its line grown by ``margin`` frame pixels (a closed mouth's hole is the
    band around its seam), 1 inside, falling to 0 over ``feather`` pixels outside."""
    inner = np.asarray(frame_points)[list(LIPS_INNER), :2]
    inside = np.maximum(MouthFrame.draw([inner], fill=True), MouthFrame.draw([inner], fill=False))
    return grown(inside > 0.25, margin, feather)
