"""The brow frame of the learned brows (``models.brow_inpainter``): a similarity-aligned window on the upper face, the
maps the model is conditioned on, and the region it redraws.

    frame = BrowFrame.from_points(points)              # points: a 468-point face mesh in photo pixels
    window = frame.crop(grey_photo)                    # FRAME_HEIGHT x FRAME_WIDTH, the eyes level
    maps = brow_maps(frame.to_frame(points))           # 2 x H x W float32: the brows, the eye openings
    hole = brow_hole(frame.to_frame(points), margin)   # H x W float32: what the model redraws

The frame puts the eye centres on a level line ``EYE_DISTANCE`` pixels apart, their midpoint at (``FRAME_WIDTH`` / 2,
``EYE_Y``): from 1.3 eye distances above the eyes (the forehead's lines) to 0.7 below (the lower lids). The scale is
FER2013's: its 48 px faces have eyes 13-21 px apart, so the 28,000 faces that carry most of the expressions are seen
near their own size.

The hole is where an expression marks the upper face beyond what a warp moves: the brows, the skin between them (the
vertical furrows of a frown), and a band of forehead above them (the horizontal lines of surprise), down to the top
of the nose bridge. The eyes are left out: the warp has put them where the target wants them, and they are sharp.
"""

from __future__ import annotations

import cv2
import numpy as np

from .aligned_frame import EyeLevelFrame, grown
from .mesh_topology import (LEFT_BROW, LEFT_BROW_LOWER, LEFT_BROW_UPPER, LEFT_EYE, RIGHT_BROW, RIGHT_BROW_LOWER,
                            RIGHT_BROW_UPPER, RIGHT_EYE)

FRAME_HEIGHT = 40
FRAME_WIDTH = 56
EYE_DISTANCE = 20.0  # eye centre to eye centre, frame pixels
EYE_Y = 26.0         # the eyes' line: 1.3 eye distances of forehead above it, 0.7 below
NOSE_BRIDGE_TOP = 168  # the mesh point between the eyes, where a frown's furrows end
FOREHEAD_REACH = 0.3   # how far above the brows the hole reaches, in eye distances


class BrowFrame(EyeLevelFrame):
    """The similarity from photo pixels into the brow frame."""

    height = FRAME_HEIGHT
    width = FRAME_WIDTH
    eye_distance = EYE_DISTANCE
    eye_y = EYE_Y


def brow_maps(frame_points: np.ndarray) -> np.ndarray:
    """2 x H x W float32 in [0, 1] from a mesh in frame pixels: the two brows, the two eye openings."""
    points = np.asarray(frame_points)[:, :2]
    brows = BrowFrame.draw([points[list(RIGHT_BROW)], points[list(LEFT_BROW)]])
    eyes = BrowFrame.draw([points[list(RIGHT_EYE)], points[list(LEFT_EYE)]])
    return np.stack([brows, eyes])


def brow_hole(frame_points: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: the brows, the glabella down to the nose bridge's top and a band of forehead above the brows,
    grown by ``margin`` frame pixels and feathered, less the eye openings (grown by a pixel)."""
    points = np.asarray(frame_points, np.float64)[:, :2]
    right, left = points[list(RIGHT_EYE)].mean(0), points[list(LEFT_EYE)].mean(0)
    along = (left - right) / max(float(np.linalg.norm(left - right)), 1e-6)
    up = np.array([along[1], -along[0]]) * FOREHEAD_REACH * float(np.linalg.norm(left - right))
    brow_upper = points[list(RIGHT_BROW_UPPER) + list(LEFT_BROW_UPPER)]
    region = np.concatenate([points[list(RIGHT_BROW) + list(LEFT_BROW) + [NOSE_BRIDGE_TOP]], brow_upper + up])
    hull = cv2.convexHull(region.astype(np.float32))[:, 0]
    eyes = BrowFrame.draw([points[list(RIGHT_EYE)], points[list(LEFT_EYE)]]) > 0.25
    return grown(BrowFrame.draw([hull]) > 0.5, margin, feather) * (1.0 - grown(eyes, 1.0, 1.0))


def eye_hole(frame_points: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: each eye, its lids and the skin between it and its brow's lower edge, grown by ``margin`` frame
    pixels and feathered. Where a warp opens a squinting eye, it stretches the dark slit and lashes into a dark blot
    (there is no white or iris to move); where it lifts a lowered brow, the brow's shadow is drawn down over the lid.
    The learned eyes draw this region anew."""
    points = np.asarray(frame_points, np.float64)[:, :2]
    hulls = [cv2.convexHull(points[list(eye) + list(brow_lower)].astype(np.float32))[:, 0]
             for eye, brow_lower in ((RIGHT_EYE, RIGHT_BROW_LOWER), (LEFT_EYE, LEFT_BROW_LOWER))]
    return grown(BrowFrame.draw(hulls) > 0.5, margin, feather)
