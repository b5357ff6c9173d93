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
(:func:`skin_contrast`). Undoing a smile fades the person's own folds rather than lifting the median ones, which lie
a little beside them (:func:`lift_creases`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .mesh_motion import canonical_displacement
from .mesh_topology import (EYE_TRIANGLES, FACE_OVAL, LEFT_BROW, LEFT_CHEEK, LEFT_EYE, LIPS_OUTER,
                            LIPS_OUTER_UPPER, MOUTH_CORNERS, MOUTH_TRIANGLES, NOSE, RIGHT_BROW, RIGHT_CHEEK, RIGHT_EYE,
                            TRIANGLES)
from .mesh_warp import backward_map
from .mouth_fill import luminance as pixel_luminance
from .tone import channel_mean, shaded

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


def log_texture(texture: np.ndarray, face: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """A shape-free texture's log brightness, lightly smoothed, less its median over ``face`` (a photo's exposure is
    no expression), 0 outside ``face``: what the furrow maps take the median of, over thousands of faces."""
    log = np.log(cv2.GaussianBlur(texture, (0, 0), sigma) + _DARK)
    return ((log - np.median(log[face > 0])) * face).astype(np.float32)


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


SKIN_FEATURES = (LIPS_OUTER, RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW)
# The skin between the nose's base and the upper lip: the shadow under the nose there is no smile fold.
_PHILTRUM = (98, 97, 2, 326, 327) + LIPS_OUTER_UPPER

# Undoing a smile (all in eye distances). A smile's fold is a broad valley beside a raised cheek: measured against
# the skin within 0.12 of it, FEI's broad smiles kept half their fold and still read as smiles (7 of 12 validation
# people read neutral); against the skin within 0.35, and over a zone that follows the median folds further down
# past the mouth corners, 11 of 12 did, and the paired realism ratio fell from 0.76 to 0.71.
_SURROUND = 0.35  # how far around a fold the skin sets the level it fades to
# A second, thin fade for the creases a broad one leaves: a smile's fold is also a sharp line, which the warp carries
# round the mouth corners as they come in, and against the skin within 0.35 it hardly counts as a valley where the
# chin's shadow is near (scikit-image's astronaut kept two dark brackets round her mouth). Against the skin within 0.1,
# on the paper validation people: FEI's paired realism ratio → neutral 0.70 → 0.68 (CycleGAN) and 0.73 → 0.71
# (SA-GAN), London's whole photos read as neutral 6 → 7 and 7 → 8 of 10; London's realism ratio 0.84 → 0.83 and
# 0.82 → 0.83.
_FINE_SURROUND = 0.1
_HALF_MAP_EYES = 80.0  # eye distance (px) from which the shading's map is made at half resolution
_FOLD_ZONE_BLUR = 0.2  # how far the zone reaches past the median folds
_FOLD_ZONE_FULL = 0.3  # the share of the broadened folds' peak at which the lift is full
# Undoing a smile fades no shadow this near the eyes (eye distances): the lids' and the sockets' own shading is not
# the smile's. The median smile darkens the lower lids, so the fade's zone reached them, and on 48-px faces it lifted
# the sockets into pale rings around the eyes.
_EYE_BAND = 0.25


def skin_mask(points: np.ndarray, shape: tuple[int, int], erode: int, features: tuple = SKIN_FEATURES) -> np.ndarray:
    """The face oval less the eyes, brows and lips (or ``features``: their convex hulls, grown by ``erode`` px), and
    eroded by ``erode`` px from the oval's edge: the skin whose shading an expression changes."""
    points = np.asarray(points, np.float64)[:, :2]
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)
    face = cv2.erode(polygon_mask(points[list(FACE_OVAL)], shape), kernel)
    hulls = np.zeros(shape, np.float32)
    for part in features:
        cv2.fillPoly(hulls, [cv2.convexHull(np.round(points[list(part)]).astype(np.int32))], 1.0)
    return face * (1 - cv2.dilate(hulls, kernel))


def skin_contrast(image: np.ndarray, points: np.ndarray, scale: float = 80.0) -> float:
    """How strongly the light models this face: the spread of its skin's smoothed log-luminance, at ``scale`` px per
    eye distance, as a robust standard deviation (1.4826 times the median absolute deviation). Studio flash on FEI
    gives about 0.2, the London Set's soft light about 0.13. Robust because a beard or a fringe inside the face's oval
    is a large dark patch, not light: with the plain standard deviation a held-out London man's stubble read as 0.38,
    the shading's most, and his smile got grey smudges over both cheeks."""
    image, points = at_texture_scale(image, points, scale)
    eyes = eye_distance_px(points)  # ``scale``, or less for a small face: the smoothing follows the face's size
    mask = skin_mask(points, image.shape, erode=max(1, round(0.05 * eyes))) > 0.5
    if mask.sum() < 50:
        return float("nan")
    shade = np.log(cv2.GaussianBlur(image, (0, 0), 0.05 * eyes) + _DARK)[mask]
    return float(1.4826 * np.median(np.abs(shade - np.median(shade))))


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


def smooth_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` px; a wide one is taken at a coarser scale (shrunk so that sigma is 4 px, blurred,
    enlarged back), which gives the same smooth field for a fraction of the cost (a 0.35 eye-distance blur of a 1 MP
    face took 19 ms at full size)."""
    if sigma <= 8.0:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    height, width = image.shape[:2]
    factor = sigma / 4.0
    small = cv2.resize(image, (max(1, round(width / factor)), max(1, round(height / factor))),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 4.0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def lift_creases(region: np.ndarray, weight: np.ndarray, skin: np.ndarray, eye_distance: float,
                 surround: float = _SURROUND) -> np.ndarray:
    """``region`` (H x W (x C) float) with its folds faded, ``weight`` (H x W, 0-1) of the way: where the skin,
    smoothed over a fiftieth of an eye distance, is darker than the skin around it (over ``surround`` eye distances;
    ``skin``, H x W 0/1, says which pixels count as skin), that smooth shadow is replaced by its surroundings' level
    and colour, and the finer grain (pores, freckles) is kept. The person's own fold fades wherever it runs, and no
    pixel is lifted above its surroundings, so no pale line appears beside it."""
    colour = region if region.ndim == 3 else region[..., None]
    skin = skin.astype(np.float32)

    def skin_blur(sigma: float) -> np.ndarray:  # a blur of the skin alone: lips and nostrils lend it no colour
        total = smooth_blur(colour * skin[..., None], sigma)
        total = total if total.ndim == 3 else total[..., None]
        return total / np.maximum(smooth_blur(skin, sigma), 1e-3)[..., None]

    smooth, around = skin_blur(max(0.02 * eye_distance, 0.5)), skin_blur(surround * eye_distance)
    level, around_level = channel_mean(smooth), channel_mean(around)
    valley = np.clip((around_level - level) / (0.04 * around_level + 1.0), 0.0, 1.0)  # fully one 4% darker
    lifted = colour + (weight * skin * valley)[..., None] * (around - smooth)
    return lifted if region.ndim == 3 else lifted[..., 0]


def away_from_the_eyes(points: np.ndarray, shape: tuple[int, int], eye_distance: float,
                       band: float = _EYE_BAND) -> np.ndarray:
    """H x W float32: 0 within ``band`` eye distances of either eye's opening (``points``: the mesh, 468 x 2 px),
    rising to 1 over a tenth of an eye distance beyond."""
    eyes = np.maximum(polygon_mask(points[list(RIGHT_EYE)], shape), polygon_mask(points[list(LEFT_EYE)], shape))
    distance = cv2.distanceTransform((1 - eyes).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip((distance - band * eye_distance) / (0.1 * eye_distance), 0.0, 1.0).astype(np.float32)


def apply_log_shading(image: np.ndarray, target: np.ndarray, texture: np.ndarray, log_shading: np.ndarray,
                      lift: float = 0.0) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """``image`` (H x W (x C) uint8, a face whose mesh lies at ``target``, 468 x 2 px) multiplied by
    ``exp(log_shading)``, the texture-space map warped from ``texture`` points onto ``target``; ``lift`` > 0
    (taking a smile away, that far): the map's brightening only says where folds lie; this face's own folds in that
    zone fade instead (:func:`lift_creases`), since a median fold lifted where this face has none is a pale streak
    beside a dark line, and a hard-lit photo's lifted cheeks turn sallow; none within ``_EYE_BAND`` of the eyes.
    Returns the new image and the box it changed (None: nothing)."""
    image, target = np.asarray(image), np.asarray(target, np.float64)[:, :2]
    # The map at the face's own scale first: the warp counts a triangle shrunk to under a quarter as folded.
    factor = eye_distance_px(target) / max(eye_distance_px(texture), 1e-6)
    log_shading = cv2.resize(np.ascontiguousarray(log_shading, np.float32), None, fx=factor, fy=factor,
                             interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    # Only the face's oval is shaded, so the map is made in its box alone (with room for the fold fade's blurs): a
    # crop wide enough for a dropped jaw would otherwise cost the warp's outer ring of triangles, all zeroed below.
    room = 2 + int(_SURROUND * eye_distance_px(target))
    oval_low = np.maximum(np.floor(target[list(FACE_OVAL)].min(0)).astype(int) - room, 0)
    oval_high = np.minimum(np.ceil(target[list(FACE_OVAL)].max(0)).astype(int) + room + 1, image.shape[1::-1])
    # On a large face the map is made at half its resolution and the field enlarged: the field is as smooth as the
    # texture (a whole face in 256 px), and the map's triangles cost 4-8 ms a 1 MP face at full resolution.
    step = 2 if eye_distance_px(target) >= _HALF_MAP_EYES else 1
    size = oval_high - oval_low
    coarse = -(-size // step)
    coarse_map = cv2.resize(log_shading, None, fx=1.0 / step, fy=1.0 / step, interpolation=cv2.INTER_AREA) \
        if step > 1 else log_shading
    mapped = backward_map(tuple(coarse[::-1]), texture * factor / step, (target - oval_low + 0.5) / step - 0.5,
                          triangles=_TRIANGLES, boundary=np.array(FACE_OVAL))
    if mapped is None:
        return image.copy(), None
    map_x, map_y, inside, (x0, y0, x1, y1) = mapped
    field = cv2.remap(coarse_map, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    field = np.where(inside, field, 0.0).astype(np.float32)
    if step > 1:
        field = cv2.resize(field, ((x1 - x0) * step, (y1 - y0) * step), interpolation=cv2.INTER_LINEAR)
    x0, y0 = x0 * step + oval_low[0], y0 * step + oval_low[1]
    x1, y1 = min(x1 * step + oval_low[0], oval_high[0]), min(y1 * step + oval_low[1], oval_high[1])
    field = field[:y1 - y0, :x1 - x0]
    # Only inside the face's oval: the warp's outer ring of triangles maps anchors that mean nothing in the texture.
    oval = polygon_mask(target[list(FACE_OVAL)] - [x0, y0], field.shape) > 0
    field = np.where(oval, field, 0.0)
    eyes = eye_distance_px(target)
    if lift > 0:
        # Where the median folds lie, broadened; the lifting itself is left to this face's own creases.
        broad = smooth_blur(np.maximum(field, 0.0).astype(np.float32), _FOLD_ZONE_BLUR * eyes)
        fold_zone = np.clip(broad / max(_FOLD_ZONE_FULL * float(broad.max()), 1e-6), 0.0, 1.0)
        fold_zone = fold_zone * away_from_the_eyes(target - [x0, y0], field.shape, eyes)
        field = np.minimum(field, 0.0)
    gain = np.exp(field)
    out = image.copy()
    region = shaded(out[y0:y1, x0:x1].astype(np.float32), gain[..., None] if image.ndim == 3 else gain)
    if lift > 0:
        # The nose's own creases and the lips stay: only the cheeks' folds belong to the smile.
        skin = skin_mask(target - [x0, y0], field.shape, erode=max(1, round(0.03 * eyes)),
                         features=SKIN_FEATURES + (NOSE,))
        # Feathered at the skin's edges and off the philtrum: a hard edge there would draw a box under the nose.
        philtrum = np.zeros(field.shape, np.float32)
        cv2.fillPoly(philtrum, [cv2.convexHull(np.round(target[list(_PHILTRUM)] - [x0, y0]).astype(np.int32))], 1.0)
        philtrum = np.clip(2.0 * cv2.GaussianBlur(philtrum, (0, 0), 0.04 * eyes), 0.0, 1.0)
        feathered = cv2.GaussianBlur(skin, (0, 0), 0.015 * eyes) * skin
        weight = min(lift, 1.0) * fold_zone * (1.0 - philtrum) * feathered
        # The broad valley first, then the thin creases the warp carried with the mouth corners.
        region = lift_creases(region, weight, skin, eyes)
        region = lift_creases(region, weight, skin, eyes, surround=_FINE_SURROUND)
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out, (x0, y0, x1, y1)
