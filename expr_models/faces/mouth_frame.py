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

from dataclasses import dataclass

import cv2
import numpy as np

from .grain import with_grain
from .mesh_topology import LIPS_INNER, LIPS_OUTER, MOUTH_CORNERS

FRAME_HEIGHT = 96
FRAME_WIDTH = 128
MOUTH_WIDTH = 56.0  # outer corner to corner, frame pixels (GENKI-4K's mouths are 35-45 px, FEI's 70-90, London's ~180)
MOUTH_Y = 44.0      # the lips' centre: 0.8 mouth widths of face above it (the nostrils), 0.9 below (the chin)
_SHIFT = 4          # sub-pixel precision of rasterised polygons (1/16 px)
_SUPERSAMPLE = 4    # the maps are drawn at 4x and area-averaged: soft, anti-aliased edges


@dataclass
class MouthFrame:
    """The similarity ``frame = matrix @ [x, y, 1]`` from photo pixels into the mouth frame."""

    matrix: np.ndarray  # 2 x 3 float64

    @classmethod
    def from_points(cls, points: np.ndarray) -> "MouthFrame":
        points = np.asarray(points, np.float64)[:, :2]
        right, left = points[MOUTH_CORNERS[0]], points[MOUTH_CORNERS[1]]
        along = left - right
        width = float(np.linalg.norm(along))
        if width < 1e-3:
            raise ValueError("the mouth corners coincide: not a face mesh")
        cos, sin = along / width
        scale = MOUTH_WIDTH / width
        rotation = scale * np.array([[cos, sin], [-sin, cos]])
        centre = points[list(LIPS_OUTER)].mean(0)
        offset = np.array([FRAME_WIDTH / 2.0, MOUTH_Y]) - rotation @ centre
        return cls(np.concatenate([rotation, offset[:, None]], 1))

    @property
    def scale(self) -> float:
        """Frame pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)[:, :2]
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def crop(self, photo: np.ndarray) -> np.ndarray:
        """The photo's mouth window (``FRAME_HEIGHT x FRAME_WIDTH``), area-averaged where the frame shrinks the photo
        (a London mouth is three times the frame's), so teeth do not alias."""
        matrix, photo = self.matrix.copy(), np.asarray(photo)
        shrink = int(np.floor(1.0 / self.scale)) if self.scale < 0.75 else 1
        if shrink > 1:
            # Area-resize the part of the photo the frame sees, then map from the small copy.
            corners = cv2.invertAffineTransform(matrix) @ np.array(
                [[0, 0, 1], [FRAME_WIDTH, 0, 1], [0, FRAME_HEIGHT, 1], [FRAME_WIDTH, FRAME_HEIGHT, 1]], np.float64).T
            x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int) - shrink, 0)
            x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int) + shrink, [photo.shape[1], photo.shape[0]])
            if x1 - x0 >= shrink and y1 - y0 >= shrink:
                small = cv2.resize(photo[y0:y1, x0:x1], ((x1 - x0) // shrink, (y1 - y0) // shrink),
                                   interpolation=cv2.INTER_AREA)
                # Small pixel i is the mean of photo pixels i * shrink .. i * shrink + shrink - 1: fold that in.
                origin = np.array([x0, y0], np.float64) + (shrink - 1) / 2.0
                matrix = np.concatenate([matrix[:, :2] * shrink, (matrix[:, :2] @ origin + matrix[:, 2])[:, None]], 1)
                photo = small
        return cv2.warpAffine(photo, matrix, (FRAME_WIDTH, FRAME_HEIGHT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)

    def paste(self, photo: np.ndarray, frame_image: np.ndarray, frame_alpha: np.ndarray,
              match_grain: bool = False) -> tuple[int, int, int, int] | None:
        """``frame_image`` (H x W x C uint8 or float) blended into ``photo`` (in place) with ``frame_alpha``, both
        mapped back to photo pixels (cubic and linear); pixels the alpha does not reach keep their bytes. Returns the
        box (x0, y0, x1, y1) the alpha reaches, or None. ``match_grain``: the pasted image gets the grain it lacks
        against the photo's around it (a drawn frame, enlarged to a large mouth, is smoother than the photo)."""
        inverse = cv2.invertAffineTransform(self.matrix)
        corners = inverse @ np.array([[0, 0, 1], [FRAME_WIDTH, 0, 1], [0, FRAME_HEIGHT, 1],
                                      [FRAME_WIDTH, FRAME_HEIGHT, 1]], np.float64).T
        x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int) + 1, [photo.shape[1], photo.shape[0]])
        if x1 <= x0 or y1 <= y0:
            return None
        local = inverse.copy()
        local[:, 2] -= [x0, y0]
        size = (int(x1 - x0), int(y1 - y0))
        image = cv2.warpAffine(np.asarray(frame_image, np.float32), local, size, flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(np.asarray(frame_alpha, np.float32), local, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        alpha = np.clip(alpha, 0.0, 1.0)
        region = photo[y0:y1, x0:x1]
        if match_grain:
            image = with_grain(image.reshape(region.shape), region, alpha > 0.5, alpha < 1e-3)
        if region.ndim == 3:
            image = image.reshape(region.shape)
            alpha = alpha[..., None]
        blended = np.clip(np.round(region * (1.0 - alpha) + image * alpha), 0, 255).astype(photo.dtype)
        reached = alpha > 1e-3
        np.copyto(region, blended, where=reached)
        ys, xs = np.nonzero(reached.reshape(reached.shape[:2]))
        if not len(ys):
            return None
        return int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max() + 1), int(y0 + ys.max() + 1)


def _draw(polygons: list[np.ndarray], fill: bool, thickness: int = 1) -> np.ndarray:
    """Polygons (frame pixels) drawn at ``_SUPERSAMPLE`` x and area-averaged to the frame: float32 in [0, 1]."""
    s = _SUPERSAMPLE
    canvas = np.zeros((FRAME_HEIGHT * s, FRAME_WIDTH * s), np.uint8)
    contours = [np.round((np.asarray(p, np.float64) * s + (s - 1) / 2) * (1 << _SHIFT)).astype(np.int32)
                for p in polygons]
    if fill:
        cv2.fillPoly(canvas, contours, 255, lineType=cv2.LINE_8, shift=_SHIFT)
    else:
        cv2.polylines(canvas, contours, True, 255, thickness=thickness * s, lineType=cv2.LINE_8, shift=_SHIFT)
    return cv2.resize(canvas, (FRAME_WIDTH, FRAME_HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def lip_maps(frame_points: np.ndarray) -> np.ndarray:
    """3 x H x W float32 in [0, 1] from a mesh in frame pixels: the mouth opening (inner polygon), the lips (outer
    polygon less the inner) and the inner-lip line."""
    inner = np.asarray(frame_points)[list(LIPS_INNER), :2]
    outer = np.asarray(frame_points)[list(LIPS_OUTER), :2]
    opening = _draw([inner], fill=True)
    lips = np.clip(_draw([outer], fill=True) - opening, 0.0, 1.0)
    line = _draw([inner], fill=False)
    return np.stack([opening, lips, line])


def hole_mask(frame_points: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: the inner-lip polygon and its line grown by ``margin`` frame pixels (a closed mouth's hole is the
    band around its seam), 1 inside, falling to 0 over ``feather`` pixels outside."""
    inner = np.asarray(frame_points)[list(LIPS_INNER), :2]
    return grown(np.maximum(_draw([inner], fill=True), _draw([inner], fill=False)) > 0.25, margin, feather)


def grown(mask: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: a boolean ``mask`` grown by ``margin`` pixels, 1 inside, falling to 0 over ``feather`` pixels
    outside."""
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(1.0 - (distance - margin) / max(feather, 1e-3), 0.0, 1.0).astype(np.float32)
