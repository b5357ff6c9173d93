"""A similarity-aligned window on a face, the working space of the learned inpainters (the mouth, the brows).

    frame = MouthFrame.from_points(points)      # a subclass places itself from a 468-point mesh
    window = frame.crop(photo)                  # frame.height x frame.width (x C)
    frame.paste(photo, drawn, alpha)            # back into the photo, in place, only where alpha reaches

Every training face and every edited face is seen at one scale, so a model learns features of one size. The polygon
rasteriser and the grown, feathered masks that the frames' maps and holes are made of live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from .grain import with_grain
from .mesh_topology import LEFT_EYE, RIGHT_EYE
from .tone import is_grey, with_grey_change

_SHIFT = 4          # sub-pixel precision of rasterised polygons (1/16 px)
_SUPERSAMPLE = 4    # polygons are drawn at 4x and area-averaged: soft, anti-aliased edges


@dataclass
class AlignedFrame:
    """The similarity ``frame = matrix @ [x, y, 1]`` from photo pixels into a ``height x width`` window."""

    matrix: np.ndarray  # 2 x 3 float64
    height: ClassVar[int] = 0
    width: ClassVar[int] = 0

    @classmethod
    def from_axis(cls, start: np.ndarray, end: np.ndarray, length: float, centre: np.ndarray,
                  position: tuple[float, float], anchors: str = "anchor points") -> "AlignedFrame":
        """The frame that lays ``start -> end`` level and ``length`` pixels long, and puts ``centre`` (photo
        pixels) at ``position`` (frame pixels); ``anchors`` names start and end in the error where they coincide."""
        along = np.asarray(end, np.float64) - np.asarray(start, np.float64)
        distance = float(np.linalg.norm(along))
        if distance < 1e-3:
            raise ValueError(f"the {anchors} coincide: not a face mesh")
        cos, sin = along / distance
        rotation = length / distance * np.array([[cos, sin], [-sin, cos]])
        offset = np.asarray(position, np.float64) - rotation @ np.asarray(centre, np.float64)
        return cls(np.concatenate([rotation, offset[:, None]], 1))

    @classmethod
    def draw(cls, polygons: list[np.ndarray], fill: bool = True) -> np.ndarray:
        """Polygons in frame pixels rasterised at the frame's size (:func:`draw_polygons`): float32 in [0, 1]."""
        return draw_polygons(polygons, fill, (cls.height, cls.width))

    @property
    def scale(self) -> float:
        """Frame pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)[:, :2]
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def _corners(self, matrix: np.ndarray) -> np.ndarray:
        return matrix @ np.array([[0, 0, 1], [self.width, 0, 1], [0, self.height, 1],
                                  [self.width, self.height, 1]], np.float64).T

    def crop(self, photo: np.ndarray) -> np.ndarray:
        """The photo's window, area-averaged where the frame shrinks the photo (a London mouth is three times the
        mouth frame's), so fine detail does not alias."""
        matrix, photo = self.matrix.copy(), np.asarray(photo)
        shrink = int(np.floor(1.0 / self.scale)) if self.scale < 0.75 else 1
        if shrink > 1:
            # Area-resize the part of the photo the frame sees, then map from the small copy.
            corners = self._corners(cv2.invertAffineTransform(matrix))
            x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int) - shrink, 0)
            x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int) + shrink, [photo.shape[1], photo.shape[0]])
            if x1 - x0 >= shrink and y1 - y0 >= shrink:
                small = cv2.resize(photo[y0:y1, x0:x1], ((x1 - x0) // shrink, (y1 - y0) // shrink),
                                   interpolation=cv2.INTER_AREA)
                # Small pixel i is the mean of photo pixels i * shrink .. i * shrink + shrink - 1: fold that in.
                origin = np.array([x0, y0], np.float64) + (shrink - 1) / 2.0
                matrix = np.concatenate([matrix[:, :2] * shrink, (matrix[:, :2] @ origin + matrix[:, 2])[:, None]], 1)
                photo = small
        return cv2.warpAffine(photo, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)

    def lost_detail(self, grey: np.ndarray) -> float:
        """How much finer detail the photo holds under the frame than the frame can: the mean absolute difference (grey
        levels) between the grey photo over the frame's box and its round trip through the frame's resolution (area
        down, cubic up). 0 where the frame is as fine as the photo; an enlarged 48-px face holds about 2, a sharp face
        with its eyes 40 px apart 3-5."""
        if self.scale >= 1.0:
            return 0.0
        corners = self._corners(cv2.invertAffineTransform(self.matrix))
        x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int), [grey.shape[1], grey.shape[0]])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return 0.0
        region = np.asarray(grey[y0:y1, x0:x1], np.float32)
        size = (max(1, round(region.shape[1] * self.scale)), max(1, round(region.shape[0] * self.scale)))
        small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        back = cv2.resize(small, (region.shape[1], region.shape[0]), interpolation=cv2.INTER_CUBIC)
        return float(np.abs(region - back).mean())

    def to_photo(self, frame_image: np.ndarray, frame_alpha: np.ndarray, shape: tuple[int, ...]
                 ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """``frame_image`` and ``frame_alpha`` mapped back to the photo (cubic and linear) over the box the frame
        covers: ``((x0, y0, x1, y1), image, alpha)``, or None where the frame falls outside a photo of ``shape``."""
        inverse = cv2.invertAffineTransform(self.matrix)
        corners = self._corners(inverse)
        x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int) + 1, [shape[1], shape[0]])
        if x1 <= x0 or y1 <= y0:
            return None
        local = inverse.copy()
        local[:, 2] -= [x0, y0]
        size = (int(x1 - x0), int(y1 - y0))
        image = cv2.warpAffine(np.asarray(frame_image, np.float32), local, size, flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(np.asarray(frame_alpha, np.float32), local, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return (int(x0), int(y0), int(x1), int(y1)), image, np.clip(alpha, 0.0, 1.0)

    def paste(self, photo: np.ndarray, frame_image: np.ndarray, frame_alpha: np.ndarray,
              match_grain: bool = False) -> tuple[int, int, int, int] | None:
        """``frame_image`` (H x W x C uint8 or float) blended into ``photo`` (in place) with ``frame_alpha``, both
        mapped back to photo pixels; pixels the alpha does not reach keep their bytes. Returns the box
        (x0, y0, x1, y1) the alpha reaches, or None. ``match_grain``: the pasted image gets the grain it lacks
        against the photo's around it (a drawn frame, enlarged to a large face, is smoother than the photo)."""
        mapped = self.to_photo(frame_image, frame_alpha, photo.shape)
        if mapped is None:
            return None
        (x0, y0, x1, y1), image, alpha = mapped
        region = photo[y0:y1, x0:x1]
        if match_grain:
            image = with_grain(image.reshape(region.shape), region, alpha > 0.5, alpha < 1e-3)
        if region.ndim == 3:
            image = image.reshape(region.shape)
            alpha = alpha[..., None]
        blended = np.clip(np.round(region * (1.0 - alpha) + image * alpha), 0, 255).astype(photo.dtype)
        return _write_where_reached(photo, region, blended, alpha, x0, y0)

    def add(self, photo: np.ndarray, frame_change: np.ndarray, frame_alpha: np.ndarray
            ) -> tuple[int, int, int, int] | None:
        """``frame_change`` (H x W, grey levels) times ``frame_alpha`` added to every channel of a grey ``photo`` (in
        place), both mapped back to photo pixels: a change drawn at the frame's scale moves a larger face's shading
        and keeps its own fine detail. A colour photo's luminance moves by it with its colour kept
        (:func:`.tone.with_grey_change`); an alpha channel keeps its bytes. Returns the box the alpha reaches, or
        None."""
        mapped = self.to_photo(frame_change, frame_alpha, photo.shape)
        if mapped is None:
            return None
        (x0, y0, x1, y1), change, alpha = mapped
        region = photo[y0:y1, x0:x1]
        shift = change * alpha
        pixels = region.astype(np.float32)
        if not is_grey(region):
            pixels[..., :3] = with_grey_change(pixels[..., :3], shift)
        else:
            pixels += shift[..., None] if region.ndim == 3 else shift
        changed = np.clip(np.round(pixels), 0, 255).astype(photo.dtype)
        return _write_where_reached(photo, region, changed, alpha if region.ndim == 2 else alpha[..., None], x0, y0)


class EyeLevelFrame(AlignedFrame):
    """A frame levelled on the eye centres of a 468-point mesh, ``eye_distance`` frame pixels apart, their midpoint at
    (``width`` / 2, ``eye_y``): the learned brows' and lower face's frames."""

    eye_distance: ClassVar[float] = 0.0
    eye_y: ClassVar[float] = 0.0

    @classmethod
    def from_points(cls, points: np.ndarray) -> "EyeLevelFrame":
        points = np.asarray(points, np.float64)[:, :2]
        right, left = points[list(RIGHT_EYE)].mean(0), points[list(LEFT_EYE)].mean(0)
        return cls.from_axis(right, left, cls.eye_distance, (right + left) / 2.0, (cls.width / 2.0, cls.eye_y),
                             "eye centres")


def _write_where_reached(photo: np.ndarray, region: np.ndarray, new: np.ndarray, alpha: np.ndarray, x0: int, y0: int
                         ) -> tuple[int, int, int, int] | None:
    reached = alpha > 1e-3
    np.copyto(region, new, where=reached)
    ys, xs = np.nonzero(reached.reshape(reached.shape[:2]))
    if not len(ys):
        return None
    return int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max() + 1), int(y0 + ys.max() + 1)


def draw_polygons(polygons: list[np.ndarray], fill: bool, size: tuple[int, int], thickness: int = 1) -> np.ndarray:
    """Polygons (frame pixels) drawn at ``_SUPERSAMPLE`` x and area-averaged to ``size`` (height, width): float32
    in [0, 1]."""
    s, (height, width) = _SUPERSAMPLE, size
    canvas = np.zeros((height * s, width * s), np.uint8)
    contours = [np.round((np.asarray(p, np.float64) * s + (s - 1) / 2) * (1 << _SHIFT)).astype(np.int32)
                for p in polygons]
    if fill:
        cv2.fillPoly(canvas, contours, 255, lineType=cv2.LINE_8, shift=_SHIFT)
    else:
        cv2.polylines(canvas, contours, True, 255, thickness=thickness * s, lineType=cv2.LINE_8, shift=_SHIFT)
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def grown(mask: np.ndarray, margin: float, feather: float = 1.5) -> np.ndarray:
    """H x W float32: a boolean ``mask`` grown by ``margin`` pixels, 1 inside, falling to 0 over ``feather`` pixels
    outside."""
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(1.0 - (distance - margin) / max(feather, 1e-3), 0.0, 1.0).astype(np.float32)
