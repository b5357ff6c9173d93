"""The mouth a mesh warp opens or closes: where its lips part onto a new gap, where they close over what lay between
them, and what of a real opening the mesh missed; with the polygon helpers the warp shares.

    gap = new_gap(shape, source_lips, target_lips, map_x, map_y, box)      # alpha of the newly opened mouth
    image = mouth_cavity(image, gap, cavity_colour(crop, source_lips), target_lips)
    opening = real_opening(crop, inner_lips, outer_lips)                   # the dark cavity, past the mesh's lips too
    points = drop_jaw_to_open_mouth(crop, points)      # a gasp's lower lip, read inside the dark mouth, on its floor

``expr_models.faces.mesh_warp`` calls these (the mesh methods call ``drop_jaw_to_open_mouth`` on a face's mesh
before they move it); a learned mouth (``mouth_redraw``) or the exemplars (``mouth_fill``) draw
what goes inside where they can.
"""

from __future__ import annotations

import cv2
import numpy as np

from .grain import grain, grain_spread
from .mesh import down_the_face, eye_distance, inner_lip_gap
from .mesh_topology import (CHIN, LIPS_INNER, LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER, LIPS_OUTER_LOWER,
                            LIPS_OUTER_UPPER, MOUTH_CORNERS, NOSE_BRIDGE)
from .mouth_fill import luminance, region_mean

# Sub-pixel precision of the rasterised polygons and triangles (cv2.fillPoly's ``shift``): 1/16 px.
SHIFT = 4
# A real mouth opening reaching past the mesh's outer lips by this much (area, in squared mouth widths) means the mesh
# missed it: a closing mouth then redraws what of it the warp left. 48-px gasps and grins reach 0.02-0.16; where the
# mesh fits (JAFFE's parted neutral mouths at 256 px, whose dark lips join the seam) it is under 0.01, and the hole
# around the target lips is enough.
MISSED_OPENING = 0.01
# Or it is this many times the mesh's opening (a grin's dark corners inside the lips: 48-px grins reach 1.8-3) in a
# mouth closing by this share of its area or more. JAFFE's parted neutral mouths reach 1.6-4 too (their dark lips),
# but the expressions that close them close them a little: redrawn, their own lips came out softer.
MISSED_RATIO, MISSED_CLOSING = 1.75, 0.5


# ---------------------------------------------------------------------------------------------------------------------
# Polygons (the warp's too)
# ---------------------------------------------------------------------------------------------------------------------

def area2(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle."""
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def fan(polygon: np.ndarray) -> np.ndarray:
    """A polygon's indices as a fan of triangles from its first corner (their signed areas sum to its area)."""
    polygon = np.asarray(polygon)
    return np.stack([np.full(len(polygon) - 2, polygon[0]), polygon[1:-1], polygon[2:]], 1)


def polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """An H x W uint8 mask of ``polygon`` (N x 2+ px), 1 inside, rasterised at 1/16 px."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(polygon)[:, :2] * (1 << SHIFT)).astype(np.int32)], 1,
                 lineType=cv2.LINE_8, shift=SHIFT)
    return mask


def between_lips(image: np.ndarray, inner_lips: np.ndarray) -> np.ndarray:
    """The pixels (N x C) inside the inner-lip polygon (N x 2+ px), a pixel in from it: the mesh's lip line lies on
    the lip."""
    opening = cv2.erode(polygon_mask(image.shape[:2], inner_lips), np.ones((3, 3), np.uint8))
    return np.asarray(image)[opening > 0]


def box_around(shape: tuple[int, int], *polygons: np.ndarray, margin: int = 4) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) around ``polygons`` plus ``margin`` pixels, inside ``shape``."""
    points = np.concatenate([np.asarray(p)[:, :2] for p in polygons])
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + margin + 1, [shape[1], shape[0]])
    return int(x0), int(y0), int(max(x1, x0 + 1)), int(max(y1, y0 + 1))


# ---------------------------------------------------------------------------------------------------------------------
# Lips that close, lips that part
# ---------------------------------------------------------------------------------------------------------------------

def closed_share(source_lips: np.ndarray, target_lips: np.ndarray) -> float:
    """How much of the source's inner-lip opening (a polygon, N x 2+) the target's closes: 1 - target area / source
    area (negative where the mouth opens)."""
    triangles = fan(np.arange(len(source_lips)))
    source_area = abs(float(area2(np.asarray(source_lips, np.float64)[:, :2], triangles).sum()))
    target_area = abs(float(area2(np.asarray(target_lips, np.float64)[:, :2], triangles).sum()))
    return 1.0 - target_area / max(source_area, 1e-6)


def into_the_lips(source: np.ndarray, target: np.ndarray, inner_lips: np.ndarray, depth: float = 1.5) -> np.ndarray:
    """Where the lips close, their inner edges are sampled ``depth`` px inside the lips (away from the mouth's
    centre, in proportion to how far it closes): the photo's soft lip-to-teeth edge would otherwise show as a pale
    line where the lips meet."""
    closing = closed_share(source[inner_lips], target[inner_lips])
    lips = source[inner_lips]
    outward = lips - lips.mean(0)
    outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-6)
    pulled = source.copy()
    pulled[inner_lips] = lips + outward * depth * float(np.clip(closing, 0.0, 1.0))
    return pulled


def is_open(points: np.ndarray, inner_lips: np.ndarray, fraction: float = 0.04) -> bool:
    """Whether the inner lips part by more than ``fraction`` of the mouth's width on average (closed: about 0.02)."""
    lips = points[inner_lips]
    width = float(np.linalg.norm(lips.max(0) - lips.min(0)))
    return abs(area2(points, fan(inner_lips)).sum()) / 2 > fraction * width ** 2


def own_teeth(crop: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The pixels (N x C) between the parted inner lips of the face at ``points`` (468 mesh points) where they show
    teeth, their median lighter than the lips' mean; None for lips together, or a dark open mouth (a gasp)."""
    inner, image = list(LIPS_INNER), crop[..., :3] if crop.ndim == 3 else crop[..., None]
    if not is_open(points, np.array(inner)):
        return None
    own = between_lips(image, points[inner])
    lips = region_mean(image, points[list(LIPS_OUTER)], points[inner])
    return own if len(own) and float(np.median(luminance(own))) > float(luminance(lips[None])[0]) else None


def shows_between_lips(crop: np.ndarray, inner_lips: np.ndarray, outer_lips: np.ndarray, teeth: float = 1.15,
                       dark: float = 0.47, least_width: float = 64.0) -> bool:
    """Whether the inside of the inner lips (polygons in ``crop``'s pixels) shows something other than lip: teeth
    (its 90th percentile luminance at least ``teeth`` times the lips' mean) or a dark gap (its 10th percentile at
    most ``dark`` times). Thick or glossy lips can hold the mesh's inner lips apart on a closed mouth: what lies between
    is lip, and closing it hides nothing. Of the London Set's photos whose mesh parts the lips (17 neutral, 43
    smiling), the neutral ones read 0.82-1.22 / 0.41-0.72 (062: 0.95 / 0.52; 12 of them count as lip), the smiles
    that show teeth at least 1.20, or 0.91-0.98 / 0.35-0.45 where a little of them shows in a dark gap, and two closed
    smiles 1.01-1.02 / 0.49-0.66 (lip). A mouth under ``least_width`` pixels wide counts as showing something, as
    the geometry says: on a 48-px face the mesh's lips lie partly on the teeth."""
    inner_lips = np.asarray(inner_lips, np.float64)[:, :2]
    if np.ptp(inner_lips[:, 0]) < least_width:
        return True
    x0, y0, x1, y1 = box_around(crop.shape[:2], outer_lips)  # the mouth's window, not the whole crop (5 ms)
    inside = polygon_mask((y1 - y0, x1 - x0), inner_lips - [x0, y0]).astype(bool)
    lips = polygon_mask((y1 - y0, x1 - x0), np.asarray(outer_lips, np.float64)[:, :2] - [x0, y0]).astype(bool) & ~inside
    if inside.sum() < 4 or lips.sum() < 4:
        return True  # too small to tell: as the geometry says
    window = np.asarray(crop[y0:y1, x0:x1])
    luma = luminance(window if window.ndim == 3 else window[..., None])
    lip_level = max(float(luma[lips].mean()), 1.0)
    low, high = np.percentile(luma[inside], [10, 90])
    return bool(high >= teeth * lip_level or low <= dark * lip_level)


def draw_seam(image: np.ndarray, target_lips: np.ndarray, colour: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """A thin dark line (in place) where closed lips meet (the seam the person's teeth were behind), anti-aliased."""
    x0, y0, x1, y1 = box_around(image.shape[:2], target_lips)
    contour = np.round((np.asarray(target_lips)[:, :2] - [x0, y0]) * (1 << SHIFT)).astype(np.int32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.polylines(mask, [contour], True, 255, thickness=1, lineType=cv2.LINE_AA, shift=SHIFT)
    ys, xs = np.nonzero(mask)
    a = (mask[ys, xs].astype(np.float32) / 255 * alpha)[:, None]
    ys, xs = ys + y0, xs + x0
    current = image[ys, xs].reshape(len(ys), -1).astype(np.float32)
    image[ys, xs] = np.clip(np.round(current * (1 - a) + colour[None, :] * a), 0, 255).astype(np.uint8).reshape(
        image[ys, xs].shape)
    return image


def new_gap(shape: tuple[int, int], source_lips: np.ndarray, target_lips: np.ndarray, map_x: np.ndarray,
            map_y: np.ndarray, box: tuple[int, int, int, int], feather: float = 1.5,
            stretch: float = 2.0) -> np.ndarray | None:
    """Alpha (H x W float32) of the target mouth's pixels that the warp would fill with stretched lip or seam: those
    whose backward map lands outside the source mouth, or that sample a patch of the source at least ``stretch``
    times smaller (a few pixels of a closed mouth's seam spread over a parted one). Rises from 0 at the gap's edge to
    1 over ``feather`` pixels inside it, so nothing outside the gap changes. ``None`` where there is no such pixel."""
    kernel = np.ones((3, 3), np.uint8)
    # Everything happens in windows around the two mouths: the rest of the crop is not looked at.
    wx0, wy0, wx1, wy1 = box_around(shape, target_lips)
    sx0, sy0, sx1, sy1 = box_around(shape, source_lips)
    # Eroded by a pixel: a closed mouth's polygon (its seam) is empty, so a mouth that stays shut gets no fill, and a
    # pixel that samples the seam of a closed source mouth counts as stretched.
    target_mask = cv2.erode(polygon_mask((wy1 - wy0, wx1 - wx0), np.asarray(target_lips)[:, :2] - [wx0, wy0]), kernel)
    if not target_mask.any():
        return None
    source_mask = cv2.erode(polygon_mask((sy1 - sy0, sx1 - sx0), np.asarray(source_lips)[:, :2] - [sx0, sy0]), kernel)
    x0, y0, x1, y1 = box
    # The maps over the target window (identity outside the moved box).
    mx = np.broadcast_to(np.arange(wx0, wx1, dtype=np.float32)[None, :], target_mask.shape).copy()
    my = np.broadcast_to(np.arange(wy0, wy1, dtype=np.float32)[:, None], target_mask.shape).copy()
    ix0, iy0, ix1, iy1 = max(wx0, x0), max(wy0, y0), min(wx1, x1), min(wy1, y1)
    if ix1 > ix0 and iy1 > iy0:
        mx[iy0 - wy0:iy1 - wy0, ix0 - wx0:ix1 - wx0] = map_x[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        my[iy0 - wy0:iy1 - wy0, ix0 - wx0:ix1 - wx0] = map_y[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
    # Source area per target pixel: the map's Jacobian determinant (central differences).
    gy_x, gx_x = np.gradient(mx)
    gy_y, gx_y = np.gradient(my)
    area = np.abs(gx_x * gy_y - gy_x * gx_y)
    col = np.round(mx).astype(int) - sx0
    row = np.round(my).astype(int) - sy0
    inside = (col >= 0) & (col < sx1 - sx0) & (row >= 0) & (row < sy1 - sy0)
    in_source = np.zeros_like(inside)
    in_source[inside] = source_mask[row[inside], col[inside]] > 0
    gap = (target_mask > 0) & (~in_source | (area < 1.0 / stretch))
    if not gap.any():
        return None
    gap = cv2.morphologyEx(gap.astype(np.uint8), cv2.MORPH_CLOSE, kernel) & target_mask  # no one-pixel holes
    return _feathered(gap, (wx0, wy0), shape, feather)


def whole_opening(shape: tuple[int, int], target_lips: np.ndarray, feather: float = 1.5) -> np.ndarray | None:
    """Alpha (H x W float32) of the whole opening between the target's inner lips, feathered inside its edge as
    :func:`new_gap`'s; ``None`` for lips that meet."""
    x0, y0, x1, y1 = box_around(shape, target_lips)
    opening = cv2.erode(polygon_mask((y1 - y0, x1 - x0), np.asarray(target_lips)[:, :2] - [x0, y0]),
                        np.ones((3, 3), np.uint8))
    return _feathered(opening, (x0, y0), shape, feather) if opening.any() else None


def _feathered(mask: np.ndarray, origin: tuple[int, int], shape: tuple[int, int], feather: float) -> np.ndarray:
    """A window's 0/1 ``mask`` (at ``origin`` x, y of a crop of ``shape``) as a crop-sized alpha rising from 0 at
    its edge to 1 over ``feather`` pixels inside it."""
    # Distance to the nearest pixel outside the mask: 1 at the edge pixel, so alpha = distance / (feather + 1); then
    # softened a little so the pixel staircase of the mask does not show, and cut to the mask again.
    distance = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    alpha = np.clip(distance / (feather + 1.0), 0.0, 1.0).astype(np.float32)
    full = np.zeros(shape, np.float32)
    x0, y0 = origin
    full[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = cv2.GaussianBlur(alpha, (0, 0), 0.7) * mask
    return full


def real_opening(crop: np.ndarray, inner_lips: np.ndarray, outer_lips: np.ndarray, drop: float = 0.3,
                 depth: float = 0.35, contrast: float = 40.0) -> np.ndarray:
    """The mouth's real opening in ``crop`` (H x W uint8 mask, 1 inside): the mesh's inner-lip polygon and the dark
    cavity connected to it, inside the outer lips or below them by up to ``drop`` mouth widths (a jaw dropped further
    than the mesh follows; the nostrils above stay out). Dark: below ``depth`` of the way from the cavity's own level
    (the darkest twentieth inside the lips) to the skin's (the upper quartile around the mouth). Where the two differ
    by less than ``contrast`` grey levels the lips are closed, or the opening is teeth: the polygon alone."""
    inner = np.asarray(inner_lips, np.float64)[:, :2]
    outer = np.asarray(outer_lips, np.float64)[:, :2]
    width = float(np.linalg.norm(outer.max(0) - outer.min(0)))
    # "Down" is away from the nose: the lower lip's side of the line through the mouth corners, whichever way the
    # face is turned in the crop.
    corner_a, corner_b = outer[np.argmin(outer[:, 0])], outer[np.argmax(outer[:, 0])]
    along = (corner_b - corner_a) / max(np.linalg.norm(corner_b - corner_a), 1e-6)
    down = np.array([-along[1], along[0]])
    lower = outer[(outer - corner_a) @ down > 0]
    reach = np.concatenate([outer, lower + down * drop * width])
    x0, y0, x1, y1 = box_around(crop.shape[:2], reach, margin=1)
    window = np.asarray(crop[y0:y1, x0:x1], np.float32)
    luma = window if window.ndim == 2 else window[..., :3].mean(2)
    opening = polygon_mask(luma.shape, inner - [x0, y0])
    contour = np.round((inner - [x0, y0]) * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(opening, [contour], True, 1, thickness=1, lineType=cv2.LINE_8, shift=SHIFT)
    mask = np.zeros(crop.shape[:2], np.uint8)
    if not opening.any():  # lips outside the crop: nothing of them to find
        return mask
    cavity, skin = np.quantile(luma[opening > 0], 0.05), np.quantile(luma, 0.75)
    if skin - cavity >= contrast:
        allowed = polygon_mask(luma.shape, cv2.convexHull(reach.astype(np.float32))[:, 0] - [x0, y0])
        dark = ((luma < cavity + depth * (skin - cavity)) & (allowed > 0)).astype(np.uint8)
        _, labels = cv2.connectedComponents(dark, connectivity=8)
        touching = np.unique(labels[(dark > 0) & (cv2.dilate(opening, np.ones((3, 3), np.uint8)) > 0)])
        opening = opening | np.isin(labels, touching[touching > 0]).astype(np.uint8)
    mask[y0:y1, x0:x1] = opening
    return mask


def mesh_missed(opening: np.ndarray, source_inner: np.ndarray, source_outer: np.ndarray,
                target_inner: np.ndarray) -> bool:
    """Whether the mesh missed part of a mouth's real ``opening`` (a crop mask, :func:`real_opening`) that a warp
    from ``source_*`` lips to ``target_inner`` closes: the opening reaches past the outer lips (``MISSED_OPENING``),
    or the mouth closes by ``MISSED_CLOSING`` or more of its area and the opening is ``MISSED_RATIO`` times the
    mesh's polygon (a grin's dark corners, which the closing lips would carry to their ends as blots)."""
    if past_the_lips(opening, source_outer) >= MISSED_OPENING:
        return True
    inner = np.asarray(source_inner, np.float64)[:, :2]
    return (closed_share(inner, target_inner) >= MISSED_CLOSING
            and opening.sum() >= MISSED_RATIO * polygon_mask(opening.shape, inner).sum())


def past_the_lips(opening: np.ndarray, outer_lips: np.ndarray) -> float:
    """The area of ``opening`` (a crop mask) outside the outer lips grown by a pixel, in squared mouth widths."""
    lips = np.asarray(outer_lips, np.float64)[:, :2]
    inside = cv2.dilate(polygon_mask(opening.shape, lips), np.ones((3, 3), np.uint8))
    return float((opening & (inside == 0)).sum()) / max(float(np.ptp(lips[:, 0])) ** 2, 1.0)


def cavity_colour(crop: np.ndarray, source_lips: np.ndarray) -> np.ndarray:
    """The person's own darkest lip-seam colour: the median of the darkest tenth of pixels within 2 px of the
    source's inner-lip contour (the seam, or the mouth already open), darkened to 60%."""
    x0, y0, x1, y1 = box_around(crop.shape[:2], source_lips)
    window = crop[y0:y1, x0:x1]
    lips = np.asarray(source_lips)[:, :2] - [x0, y0]
    seam = polygon_mask(window.shape[:2], lips)
    contour = np.round(lips * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(seam, [contour], True, 1, thickness=1, lineType=cv2.LINE_8, shift=SHIFT)
    seam = cv2.dilate(seam, np.ones((5, 5), np.uint8))
    pixels = window[seam > 0].reshape(-1, 1 if crop.ndim == 2 else crop.shape[2]).astype(np.float32)
    if not len(pixels):
        return np.full(1 if crop.ndim == 2 else crop.shape[2], 30.0, np.float32)
    luminance = pixels.mean(1)
    darkest = pixels[luminance <= np.quantile(luminance, 0.1)]
    return np.median(darkest, axis=0) * 0.6


def mouth_cavity(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray, target_lips: np.ndarray) -> np.ndarray:
    """Blend a cavity of ``colour`` into ``image`` (in place) with ``alpha``, drawn as a mouth's inside is lit rather
    than as a flat hole (a flat one looked cut out of a 1024-px face):
    - a vertical shading: darkest under the upper lip (its shadow), lighter towards the lower lip, where the lower
      third takes on the tongue's tint (the person's own lip colour around the mouth, darkened);
    - depth: darker towards the middle, lighter within 15% of the mouth's width of the lips;
    - a rim: the opening's edge keeps some of what the warp put there (the inside of the lips) over 4% of the mouth's
      width, not a 1.5-px cut;
    - the photo's grain: the high-frequency spread of the lips around it, scaled to the cavity's darkness (a fixed
      seed: the same photo gets the same edit)."""
    x0, y0, x1, y1 = box_around(image.shape[:2], target_lips, margin=8)
    window_alpha = alpha[y0:y1, x0:x1]
    inside = window_alpha > 0
    if not inside.any():
        return image
    lips = np.asarray(target_lips, np.float64)[:, :2]
    width = float(np.ptp(lips[:, 0]))
    window = np.asarray(image[y0:y1, x0:x1], np.float32).reshape(y1 - y0, x1 - x0, -1)
    # The lips: a band just outside the opening.
    band = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(2, round(0.04 * width)))
    band = (band > 0) & ~inside
    lip_colour = np.median(window[band], axis=0) if band.sum() >= 8 else colour * 2.0
    luma_lips = max(float(lip_colour.mean()), 1.0)
    spread = grain_spread(window, band) * float(np.clip(colour.mean() / luma_lips, 0.2, 1.0))
    top, bottom = lips[:, 1].min() - y0, lips[:, 1].max() - y0
    rows = np.arange(y1 - y0, dtype=np.float32)[:, None, None]
    t = np.clip((rows - top) / max(bottom - top, 1.0), 0.0, 1.0)
    shade = colour[None, None, :] * (0.75 + 0.4 * t)  # 0.75x under the upper lip .. 1.15x at the lower lip
    tongue = np.clip((t - 0.55) / 0.45, 0.0, 1.0) ** 2 * 0.45
    shade = shade * (1 - tongue) + lip_colour[None, None, :] * 0.5 * tongue
    depth = cv2.distanceTransform(np.pad(inside.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    rim = np.clip(depth / max(0.04 * width, 1.5), 0.0, 1.0)
    # Deeper is darker: the light that gets in falls on the inside of the lips and the teeth's edges first.
    shade = shade * (0.8 + 0.5 * (1.0 - np.clip(depth / max(0.15 * width, 1.5), 0.0, 1.0)))[..., None]
    if spread > 0:
        shade = shade + grain(shade.shape[:2], spread)[..., None]
    a = (window_alpha * (0.4 + 0.6 * rim))[..., None]
    blended = window * (1 - a) + shade * a
    out = np.clip(np.round(blended), 0, 255).astype(np.uint8).reshape(image[y0:y1, x0:x1].shape)
    np.copyto(image[y0:y1, x0:x1], out, where=inside.reshape(inside.shape + (1,) * (image.ndim - 2)))
    return image


# A mesh's lower lip that sits inside a dark open mouth (the gasps of enlarged 48-px faces: MediaPipe reads the jaw
# dropped about half as far as it is) is moved down to the floor of the mouth's real opening (``real_opening``). The
# mouth's inside must be this dark against the skin above the lip (teeth are not), and the mesh already read open by
# this much (eye distances). The opening is found a little paler than the editor's own (``real_opening``'s depth
# 0.35), so that a gasp's lit tongue is part of it: at 0.35 three validation gasps kept their lower lip on the
# tongue's middle (moved 0-1 px, the floor 6-7 px down at 4x); at 0.55 it reaches the floor.
OPEN_MOUTH_DARKNESS = 0.45
OPEN_MOUTH_MIN_GAP = 0.05
OPEN_MOUTH_DEPTH = 0.55


def drop_jaw_to_open_mouth(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (468 x 2+, pixels of ``image``: grey, RGB or RGBA) with the lower lip moved down to the floor of a
    dark open mouth the mesh under-read: on enlarged 48-px gasps the mesh puts the lower lip in the middle of the dark
    cavity, and a warp that closes that mouth leaves the cavity's lower half on the chin as a dark blot. The floor is
    where the mouth's real opening (:func:`real_opening`) ends, down each column of the central half of the mouth
    from the inner lower lip (the median of those runs); the lower lip and the skin under it follow, tapering to
    nothing at the mouth's corners and at the chin. A mouth read closed, an inside not dark against the skin (teeth,
    a smile) or a lower lip already on the floor: unchanged."""
    points = np.asarray(points, np.float64)
    if not inner_lip_gap(points) >= OPEN_MOUTH_MIN_GAP:  # read closed (or no eye distance: NaN)
        return points
    # Only now the grey image: most faces are read closed, and a large crop's grey copy costs 7 ms.
    image = np.asarray(image)
    grey = image if image.ndim == 2 else luminance(image)
    inner = points[list(LIPS_INNER), :2]
    inside = polygon_mask(grey.shape[:2], inner)
    above_lip = _skin_above_lip(grey, points)
    if inside.sum() < 4 or above_lip is None or np.median(grey[inside > 0]) > OPEN_MOUTH_DARKNESS * above_lip:
        return points
    opening = real_opening(grey, inner, points[list(LIPS_OUTER), :2], depth=OPEN_MOUTH_DEPTH)
    lower = points[list(LIPS_INNER_LOWER), :2]
    lower = lower[np.argsort(lower[:, 0])]  # left to right, for np.interp
    left, right = lower[0, 0], lower[-1, 0]
    runs = []
    for x in np.arange(np.ceil(left + 0.25 * (right - left)), np.floor(right - 0.25 * (right - left)) + 1):
        column = int(x)
        if not 0 <= column < grey.shape[1]:
            continue
        y = int(round(np.interp(x, lower[:, 0], lower[:, 1])))
        run = 0
        while 0 <= y + run + 1 < grey.shape[0] and opening[y + run + 1, column]:
            run += 1
        runs.append(run)
    if not runs:
        return points
    drop = float(np.median(runs))
    down = down_the_face(points)
    chin_depth = float((points[CHIN, :2] - points[list(LIPS_OUTER_LOWER), :2].mean(0)) @ down)
    drop = min(drop, 0.5 * max(chin_depth, 0.0))  # the lip stays above the chin, half its way there at most
    if drop < 1.0:
        return points
    moved = points.copy()
    moved[:, :2] += (drop * _lower_lip_weights(points, down))[:, None] * down
    return moved


def _skin_above_lip(grey: np.ndarray, points: np.ndarray) -> float | None:
    """The median grey level between the nose and the upper lip (the philtrum), or None off the image."""
    top, bottom = points[NOSE_BRIDGE[-1], :2], points[LIPS_OUTER_UPPER[5], :2]
    half = 0.1 * eye_distance(points)
    x0, x1 = int(round(min(top[0], bottom[0]) - half)), int(round(max(top[0], bottom[0]) + half)) + 1
    y0, y1 = int(round(top[1])), int(round(bottom[1]))
    patch = grey[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    return float(np.median(patch)) if patch.size else None


def _lower_lip_weights(points: np.ndarray, down: np.ndarray) -> np.ndarray:
    """How far each point follows a lower lip moved down: 1 at the lower lip's middle, tapering to 0 at the mouth's
    corners (across) and at the chin (below); the upper lip and everything above the mouth's centre line stay."""
    mouth = points[list(LIPS_INNER), :2].mean(0)
    across = np.array([down[1], -down[0]])
    corners = points[list(MOUTH_CORNERS), :2]
    half_width = 0.5 * abs(float((corners[1] - corners[0]) @ across))
    sideways = np.abs((points[:, :2] - mouth) @ across) / max(half_width, 1e-6)
    lip_level = float((points[list(LIPS_INNER_LOWER), :2].mean(0) - mouth) @ down)
    chin_level = float((points[CHIN, :2] - mouth) @ down)
    below = (points[:, :2] - mouth) @ down
    towards_chin = np.clip((below - lip_level) / max(chin_level - lip_level, 1e-6), 0.0, 1.0)
    weights = np.clip(1.0 - sideways ** 2, 0.0, 1.0) * (1.0 - towards_chin)
    weights[below <= 0.0] = 0.0
    weights[list(LIPS_INNER_UPPER) + list(LIPS_OUTER_UPPER)] = 0.0
    return weights
