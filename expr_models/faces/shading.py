"""Expression shading: the creases and highlights an expression adds to the skin, moved as an expression ratio image.

A warp moves the photo's pixels but keeps their shading: a smile taken to neutral keeps its nasolabial folds and
lifted-cheek highlights, and a neutral face warped into a smile has none. Liu, Shan & Zhang ("Expressive expression
mapping with ratio images", SIGGRAPH 2001) carry that shading from one person to another as the ratio of an expression
photo to the same person's neutral photo, both warped to a common shape. Here the ratio is the median over many real
pairs, in a *shape-free texture*: every face warped so that its 468 mesh points lie on the mean mesh
(:func:`to_texture`). An edit multiplies the warped photo by that ratio, warped onto the edit's target mesh
(:func:`apply_log_shading`), so the folds land where the moved mouth corners and cheeks now are.

How much: the ratio is per unit of *smile*, the edit's mesh motion projected on the median smile motion over the
mouth corners and cheeks (:func:`smile_coefficient`), so a smile adds folds, its undoing removes them, and a motion
with no smile in it leaves the shading alone. And per photo: harsh light carves deeper folds than soft light
(:func:`skin_contrast`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .mesh_motion import canonical_displacement
from .mesh_topology import (EYE_TRIANGLES, FACE_OVAL, LEFT_BROW, LEFT_CHEEK, LEFT_EYE, LIPS_OUTER, MOUTH_CORNERS,
                            MOUTH_TRIANGLES, RIGHT_BROW, RIGHT_CHEEK, RIGHT_EYE, TRIANGLES)
from .mesh_warp import backward_map

_TRIANGLES = np.array(TRIANGLES + MOUTH_TRIANGLES + EYE_TRIANGLES)
# Outer eye corners and inner ones (MediaPipe): their distance is the eye distance used for scale.
_EYE_CORNERS = ((33, 133), (362, 263))
# Log-luminance offset: keeps the ratio of near-black pixels (hair, nostrils) from exploding.
_DARK = 8.0


def eye_distance_px(points: np.ndarray) -> float:
    (a, b), (c, d) = _EYE_CORNERS
    return float(np.linalg.norm((points[a, :2] + points[b, :2]) / 2 - (points[c, :2] + points[d, :2]) / 2))


def texture_points(mean_mesh: np.ndarray, size: int, scale: float) -> np.ndarray:
    """The mean mesh (canonical, eye distance 1) laid out in a ``size`` x ``size`` texture at ``scale`` px per eye
    distance, centred."""
    mean = np.asarray(mean_mesh, np.float64)[:, :2]
    return (mean - (mean.min(0) + mean.max(0)) / 2) * scale + size / 2


def grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return (image[..., 0] if image.ndim == 3 else image).astype(np.float32)


def at_texture_scale(image: np.ndarray, points: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The grey image and its points shrunk (area-averaged) so that the eye distance is about ``scale`` px; a smaller
    face is left as it is. Sampling a big photo straight into the texture would alias its skin grain."""
    image, points = grey(image), np.asarray(points, np.float64)[:, :2]
    factor = eye_distance_px(points) / scale
    if factor > 1:
        image = cv2.resize(image, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
        points = points / factor
    return image, points


def to_texture(image: np.ndarray, points: np.ndarray, texture: np.ndarray, size: int, scale: float) -> np.ndarray:
    """The face's grey shape-free texture (``size`` x ``size`` float32): the photo warped so that its mesh ``points``
    (468 x 2+, photo pixels) lie on ``texture`` (:func:`texture_points`); 0 outside the face."""
    image, points = at_texture_scale(image, points, scale)
    mapped = backward_map((size, size), points, texture, triangles=_TRIANGLES, boundary=np.array(FACE_OVAL))
    out = np.zeros((size, size), np.float32)
    if mapped is not None:
        map_x, map_y, _, (x0, y0, x1, y1) = mapped
        out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out * polygon_mask(texture[list(FACE_OVAL)], (size, size))


def log_ratio(expression: np.ndarray, neutral: np.ndarray, face: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """One person's log ratio image (expression over neutral textures), lightly smoothed, less its median over the
    face (a change of exposure between the two photos is no expression), 0 outside ``face``."""
    ratio = np.log(cv2.GaussianBlur(expression, (0, 0), sigma) + _DARK) - \
        np.log(cv2.GaussianBlur(neutral, (0, 0), sigma) + _DARK)
    return ((ratio - np.median(ratio[face > 0])) * face).astype(np.float32)


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(np.asarray(polygon)[:, :2]).astype(np.int32)], 1.0)
    return mask


def skin_mask(points: np.ndarray, shape: tuple[int, int], erode: int) -> np.ndarray:
    """The face oval less the eyes, brows and lips (their convex hulls, grown by ``erode`` px), and eroded by
    ``erode`` px from the oval's edge: the skin whose shading an expression changes."""
    points = np.asarray(points, np.float64)[:, :2]
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)
    face = cv2.erode(polygon_mask(points[list(FACE_OVAL)], shape), kernel)
    features = np.zeros(shape, np.float32)
    for part in (LIPS_OUTER, RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW):
        cv2.fillPoly(features, [cv2.convexHull(np.round(points[list(part)]).astype(np.int32))], 1.0)
    return face * (1 - cv2.dilate(features, kernel))


def skin_contrast(image: np.ndarray, points: np.ndarray, scale: float = 80.0) -> float:
    """How strongly the light models this face: the spread (std) of its skin's smoothed log-luminance, at ``scale`` px
    per eye distance. Studio flash on FEI gives about 0.2, the London Set's soft light about 0.13."""
    image, points = at_texture_scale(image, points, scale)
    eyes = eye_distance_px(points)  # ``scale``, or less for a small face: the smoothing follows the face's size
    mask = skin_mask(points, image.shape, erode=max(1, round(0.05 * eyes))) > 0.5
    if mask.sum() < 50:
        return float("nan")
    shade = np.log(cv2.GaussianBlur(image, (0, 0), 0.05 * eyes) + _DARK)
    return float(shade[mask].std())


# Where a smile shows in the mesh: the mouth corners and the cheeks it lifts.
SMILE_POINTS = tuple(sorted(set(MOUTH_CORNERS) | set(RIGHT_CHEEK) | set(LEFT_CHEEK)))


def smile_coefficient(source: np.ndarray, target: np.ndarray, direction: np.ndarray, reference: np.ndarray,
                      points: tuple[int, ...] = SMILE_POINTS) -> float:
    """How much smile an edit's mesh motion holds: its canonical motion (``source`` -> ``target`` points, photo pixels,
    in the frame of the mean mesh ``reference``) over ``points``, projected on ``direction`` (len(points) x 2, the
    median smile's motion there); 1 = the median smile, -1 = its undoing."""
    motion = canonical_displacement(np.asarray(source, np.float64)[:, :2], np.asarray(target, np.float64)[:, :2],
                                    np.asarray(reference, np.float64)[:, :2])[list(points)]
    direction = np.asarray(direction, np.float64)
    return float((motion * direction).sum() / max((direction ** 2).sum(), 1e-12))


def fill_valleys(field: np.ndarray, image: np.ndarray, eye_distance: float) -> np.ndarray:
    """``field`` (log gain) where it brightens, limited to how much darker each pixel is than the skin around it (a
    crease's depth, over about a tenth of an eye distance): a person's own fold is lifted, but the skin beside it,
    where the median fold lies on another face, is not (a pale streak beside a dark line). Where it darkens, as is."""
    shade = np.log(grey(image) + _DARK)
    around = cv2.GaussianBlur(shade, (0, 0), 0.12 * eye_distance)
    depth = cv2.GaussianBlur(np.maximum(around - shade, 0.0), (0, 0), max(0.015 * eye_distance, 0.5))
    return np.where(field > 0, np.minimum(field, depth), field)


def apply_log_shading(image: np.ndarray, target: np.ndarray, texture: np.ndarray, log_shading: np.ndarray,
                      valleys: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """``image`` (H x W (x C) uint8, a face whose mesh lies at ``target``, 468 x 2 px) multiplied by
    ``exp(log_shading)``, the texture-space map warped from ``texture`` points onto ``target``; ``valleys``: the
    brightening only as deep as the face's own creases (:func:`fill_valleys`, for taking folds away). Returns the new
    image and the box it changed (None: nothing)."""
    image, target = np.asarray(image), np.asarray(target, np.float64)[:, :2]
    # The map at the face's own scale first: the warp counts a triangle shrunk to under a quarter as folded.
    factor = eye_distance_px(target) / max(eye_distance_px(texture), 1e-6)
    log_shading = cv2.resize(np.ascontiguousarray(log_shading, np.float32), None, fx=factor, fy=factor,
                             interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    mapped = backward_map(image.shape[:2], texture * factor, target, triangles=_TRIANGLES,
                          boundary=np.array(FACE_OVAL))
    if mapped is None:
        return image.copy(), None
    map_x, map_y, inside, (x0, y0, x1, y1) = mapped
    field = cv2.remap(log_shading, map_x, map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    # Only inside the face's oval: the warp's outer ring of triangles maps anchors that mean nothing in the texture.
    oval = polygon_mask(target[list(FACE_OVAL)] - [x0, y0], field.shape) > 0
    field = np.where(inside & oval, field, 0.0)
    if valleys:
        field = fill_valleys(field, image[y0:y1, x0:x1], eye_distance_px(target))
    gain = np.exp(field)
    out = image.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    region *= gain[..., None] if image.ndim == 3 else gain
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out, (x0, y0, x1, y1)
