"""The lower-face frame of the learned lower face (``models.brow_inpainter.LowerFaceInpainterModel``): a
similarity-aligned window from the eyes to the chin, the maps the model is conditioned on, and the region it redraws.

    frame = LowerFaceFrame.from_points(points)             # points: a 468-point face mesh in photo pixels
    window = frame.crop(grey_photo)                        # FRAME_HEIGHT x FRAME_WIDTH, the eyes level
    maps = lower_face_maps(frame.to_frame(points))         # 3 x H x W float32: the lips, the mouth opening, the nose
    hole = lower_face_hole(frame.to_frame(points), margin) # H x W float32: what the model redraws

The frame has the brow frame's scale (FER2013's: eyes 20 px apart) and axis (the eye centres level), with the eyes'
line ``EYE_Y`` pixels from the top: from 0.3 eye distances above the eyes to 2.1 below (the chin).

The hole is where a smile, or its undoing, marks the lower face beyond what a warp moves: the cheeks it lifts and
lights, the nasolabial folds, the lips and the skin around them down to the chin. The eyes and the nose are left out:
the warp has put them where the target wants them, and they carry who the person is.
"""

from __future__ import annotations

import cv2
import numpy as np

from .aligned_frame import EyeLevelFrame, grown
from .mesh import head_turn
from .mesh_topology import LEFT_CHEEK, LEFT_EYE, LIPS_INNER, LIPS_OUTER, NOSE, RIGHT_CHEEK, RIGHT_EYE

FRAME_HEIGHT = 48
FRAME_WIDTH = 56
EYE_DISTANCE = 20.0  # eye centre to eye centre, frame pixels (the brow frame's)
EYE_Y = 6.0          # the eyes' line: 0.3 eye distances above it, 2.1 below
# The chin and the jaw beside it (MediaPipe's face oval below the mouth): how far down the hole reaches.
CHIN = (152, 148, 377, 176, 400, 149, 378)
# The most a face is turned (``mesh.head_turn``) for the model to redraw it: on the validation crops of FER2013, whose
# faces are often turned, 90% are within 0.77; a face at 1.07 got streaks along its far cheek.
MAX_TURN = 0.8


class LowerFaceFrame(EyeLevelFrame):
    """The similarity from photo pixels into the lower-face frame."""

    height = FRAME_HEIGHT
    width = FRAME_WIDTH
    eye_distance = EYE_DISTANCE
    eye_y = EYE_Y


def lower_face_maps(frame_points: np.ndarray) -> np.ndarray:
    """3 x H x W float32 in [0, 1] from a mesh in frame pixels: the lips (outer contour), the mouth opening (inner
    contour), the nose."""
    points = np.asarray(frame_points)[:, :2]
    nose = cv2.convexHull(points[list(NOSE)].astype(np.float32))[:, 0]
    return np.stack([LowerFaceFrame.draw([points[list(LIPS_OUTER)]]), LowerFaceFrame.draw([points[list(LIPS_INNER)]]),
                     LowerFaceFrame.draw([nose])])


def lower_face_hole(frame_points: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: the cheeks, the lips and the skin around them down to the chin, grown by ``margin`` frame
    pixels and feathered, less the nose and the eye openings (grown by a pixel)."""
    points = np.asarray(frame_points, np.float64)[:, :2]
    region = points[list(RIGHT_CHEEK) + list(LEFT_CHEEK) + list(LIPS_OUTER) + list(CHIN)]
    hull = cv2.convexHull(region.astype(np.float32))[:, 0]
    nose = cv2.convexHull(points[list(NOSE)].astype(np.float32))[:, 0]
    kept = LowerFaceFrame.draw([points[list(RIGHT_EYE)], points[list(LEFT_EYE)], nose]) > 0.25
    return grown(LowerFaceFrame.draw([hull]) > 0.5, margin, feather) * (1.0 - grown(kept, 1.0, 1.0))


def fits(frame_points: np.ndarray) -> bool:
    """Whether the model redraws this face: one turned past ``MAX_TURN`` has its far cheek and the background inside
    the hole, where the drawing left streaks."""
    return abs(head_turn(frame_points)) <= MAX_TURN
