"""The eyes under a mesh warp: the iris keeps its shape, and the lids move over it.

    eyes = steady_irises(crop, source, target, EYES, box, map_x, map_y, moved)   # changes the maps in place
    draw_irises(warped, eyes)                                                     # what the lids uncovered

A piecewise-affine map stretches whatever lies between the lids with them: eyes opened wider (surprise, the ``eyes``
control) got tall oval irises and catchlights drawn out into streaks, and narrowed eyes (a smile) squashed ones. The
white of the eye and the lids may stretch (nobody sees a stretched white), the iris may not. So:
- inside the target opening, the iris's disc samples the input at the same place relative to the eye's corners (a
  translation by their motion, about nothing: the corners sit on the skull), so it keeps its shape and the lids
  slide over it; where a lid rises past what the input showed of the iris, the iris is continued by mirroring its
  visible part about its centre's row;
- around the disc, the stretched white of the eye would carry a second, stretched copy of the iris (the map reaches
  into the input's iris): there the white is the input's own white just beside the iris on the same row, or,
  where a lid covers that, continued from the white that shows, in the person's own colours and grain.
An eye the input shows nearly shut has no iris to go on, and keeps the plain map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .grain import with_grain
from .mouth_fill import luminance as pixel_luminance
from .mouth_opening import box_around, polygon_mask

# The iris's radius over the eye's width (corner to corner), within which the measured one is kept: an iris is about
# 11.7 mm across, an eye's opening about 28 mm; a blurred one (a small face) spreads its dark edge further.
IRIS_RADIUS_RANGE = (0.15, 0.34)
# The iris's edge: where the rings around its centre have climbed this share of the way from its core's luminance to
# the white's. Half-way cut blurred 48-px irises inside their soft dark edge: the edge then stayed outside the held
# disc, with a ring of white drawn between them (a target on a dartboard).
IRIS_EDGE = 0.75
# A shown pixel of the disc counts as iris where its luminance is less than this share of the way to the white's.
IRIS_SHARE_OF_WHITE = 0.35
# An input eye open less than this (height over width) shows too little of the iris to keep.
MIN_OPENING = 0.12
# The lash line: pixels within this many of the opening's edge belong to the lids.
LASH_LINE = 1.5
# The iris's soft dark edge (the limbus) reaches this far out, relative to its radius: the stretched white must not
# carry it either.
LIMBUS = 1.15
# An iris kept under a redrawing of the eye shows the white of the eye at least this many grey levels lighter than its
# dark quarter (validation crops: 49-180 where an iris shows; 10-34 on a downcast girl's lashes, a dark-lit man's).
KEPT_IRIS_CONTRAST = 40.0


@dataclass
class SteadyIris:
    """One eye's iris held still, and what the warp uncovered around it; masks are bool, of ``window``'s size."""

    window: tuple[int, int, int, int]  # (x0, y0, x1, y1) in crop pixels, around the eye in both layouts
    uncovered_iris: np.ndarray  # disc pixels whose input position lay under a lid: mirrored iris
    ghost: np.ndarray           # white-of-the-eye pixels the stretched map filled from the input's iris
    ghost_from: np.ndarray      # H x W x 2: where the stretched map sampled each pixel (x, y crop pixels)
    opening: np.ndarray         # the target opening less its lash line
    shown: np.ndarray           # the input's opening less its lash line
    centre: np.ndarray          # (x, y) crop pixels, the iris's centre in the output
    radius: float
    shift: np.ndarray           # (dx, dy): output pixel - shift = its place in the input
    iris_colour: np.ndarray     # C
    crop: np.ndarray            # the input crop


def _inside(mask: np.ndarray, margin: float) -> np.ndarray:
    """The pixels of ``mask`` (H x W, nonzero inside) more than ``margin`` pixels from its edge."""
    return cv2.distanceTransform(np.pad(np.asarray(mask, np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1] > margin


def _spread(image: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (H x W x C float) filled everywhere from its ``known`` pixels (H x W bool), each pixel the
    Gaussian-weighted mean of the known ones near it (normalised convolution; the known ones are blurred a little
    too): the white of an eye continued across what is to draw, a hundred times cheaper than inpainting it."""
    weight = known.astype(np.float32)
    sigma = max(float(sigma), 1.0)
    total = cv2.GaussianBlur(image * weight[..., None], (0, 0), sigma).reshape(image.shape)
    norm = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    # Far from every known pixel the weights vanish: fall back to their mean there.
    fallback = image[known].mean(0) if known.any() else image.reshape(-1, image.shape[-1]).mean(0)
    return np.where(norm > 1e-3, total / np.maximum(norm, 1e-6), fallback)


def find_iris(crop: np.ndarray, opening: np.ndarray, width: float) -> tuple[np.ndarray, float] | None:
    """The iris's centre (x, y) and radius in an eye's ``opening`` (H x W bool) of ``crop``: the centre is the median
    position of the darkest 40% of the opening's pixels; the radius is where the median luminance of one-pixel rings
    around it first climbs ``IRIS_EDGE`` of the way from the iris's core to the brightest ring (the white beside it),
    kept within ``IRIS_RADIUS_RANGE`` of the eye's ``width``. None where the opening is too small to tell."""
    ys, xs = np.nonzero(opening)
    if len(ys) < 20:
        return None
    luminance = pixel_luminance(crop[ys, xs].reshape(len(ys), -1))
    dark = luminance <= np.quantile(luminance, 0.4)
    centre = np.array([np.median(xs[dark]), np.median(ys[dark])], np.float64)
    from_centre = np.hypot(xs - centre[0], ys - centre[1])
    low, high = np.array(IRIS_RADIUS_RANGE) * width
    radii = np.arange(1.0, high + 2.0, 0.5)
    # Medians, not means: a catchlight in the iris is no edge.
    profile = np.array([np.median(luminance[ring]) if (ring := (from_centre >= r) & (from_centre < r + 1.0)).sum()
                        >= 2 else np.nan for r in radii])
    if np.isnan(profile).all():
        return centre, float(np.clip((low + high) / 2, low, high))
    core = profile[radii < max(0.6 * low, 1.5)]
    iris_level = float(np.nanmedian(core)) if np.isfinite(core).any() else float(np.nanmin(profile))
    edge_level = iris_level + IRIS_EDGE * (float(np.nanmax(profile)) - iris_level)
    climbed = np.nonzero(profile >= edge_level)[0]
    return centre, float(np.clip(radii[climbed[0]] if len(climbed) else high, low, high))


def steady_irises(crop: np.ndarray, source: np.ndarray, target: np.ndarray,
                  eyes: Sequence[tuple[Sequence[int], tuple[int, int]]], box: tuple[int, int, int, int],
                  map_x: np.ndarray, map_y: np.ndarray, moved: np.ndarray, still: float = 0.1) -> list[SteadyIris]:
    """Inside each target eye opening, the maps (``box``-sized, in place) of the iris's disc become the eye corners'
    translation, and those pixels count as ``moved``. ``eyes``: per eye, its contour's point indices in order around
    the opening and its two corners' indices; an eye none of whose points moves more than ``still`` pixels, or that
    the input shows nearly shut, is left alone. Returns what :func:`draw_irises` needs, per eye held."""
    x0, y0, x1, y1 = box
    held = []
    for contour, corners in eyes:
        contour, corners = list(contour), list(corners)
        if np.abs(target[contour, :2] - source[contour, :2]).max() <= still:
            continue
        # Everything happens in a window around the eye in both layouts, within the warp's box.
        wx0, wy0, wx1, wy1 = box_around(crop.shape[:2], source[contour], target[contour], margin=3)
        wx0, wy0, wx1, wy1 = max(wx0, x0), max(wy0, y0), min(wx1, x1), min(wy1, y1)
        width = float(np.linalg.norm(source[corners[0], :2] - source[corners[1], :2]))
        if wx1 - wx0 < 8 or wy1 - wy0 < 4 or width < 8:
            continue
        size, offset = (wy1 - wy0, wx1 - wx0), np.array([wx0, wy0], np.float64)
        source_opening = polygon_mask(size, source[contour, :2] - offset)
        if source_opening.sum(0).max() < MIN_OPENING * width:
            continue
        shown = _inside(source_opening, LASH_LINE)
        iris = find_iris(crop[wy0:wy1, wx0:wx1], shown, width)
        if iris is None:
            continue
        centre, radius = iris[0] + offset, iris[1]
        shift = (target[corners, :2] - source[corners, :2]).mean(0)
        opening = _inside(polygon_mask(size, target[contour, :2] - offset), LASH_LINE)
        ys, xs = np.mgrid[wy0:wy1, wx0:wx1]
        local = (slice(wy0 - y0, wy1 - y0), slice(wx0 - x0, wx1 - x0))
        window_x, window_y, window_moved = map_x[local], map_y[local], moved[local]  # views
        disc = opening & (np.hypot(xs - centre[0] - shift[0], ys - centre[1] - shift[1]) < radius + 0.5)
        # The stretched white around the disc that reaches into the input's iris: a second, stretched iris. (On the
        # lash line the same reach leaves dark flecks over the iris, which read as lashes.)
        reaches = np.hypot(window_x - centre[0], window_y - centre[1]) < LIMBUS * radius + 1.0
        ghost = opening & ~disc & window_moved & reaches
        ghost_from = np.stack([window_x, window_y], axis=-1).astype(np.float32)  # before the disc overwrites it
        window_x[disc] = xs[disc] - shift[0]
        window_y[disc] = ys[disc] - shift[1]
        window_moved |= disc
        # Disc pixels whose place in the input lay under a lid or its lash line: the iris the input did not show.
        shown_here = cv2.warpAffine(shown.astype(np.uint8), np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]),
                                    (size[1], size[0]), flags=cv2.INTER_NEAREST, borderValue=0) > 0
        pixels = crop[wy0:wy1, wx0:wx1][shown].reshape(int(shown.sum()), -1).astype(np.float32)
        sy, sx = np.nonzero(shown)
        in_iris = np.hypot(sx + wx0 - centre[0], sy + wy0 - centre[1]) < radius
        iris_colour = np.median(pixels[in_iris], axis=0) if in_iris.any() else np.quantile(pixels, 0.1, axis=0)
        held.append(SteadyIris((wx0, wy0, wx1, wy1), disc & ~shown_here, ghost, ghost_from, opening, shown,
                               centre + shift, radius, shift, iris_colour, crop))
    return held


def _white_beside_the_iris(eye: SteadyIris, white: np.ndarray, from_centre: np.ndarray) -> np.ndarray:
    """``white`` (the window's spread white) with each ghost pixel taken from the input's own white beside the iris
    instead: where the stretched map sampled it, pushed sideways along the input's row to just past the limbus (as
    far past as the pixel lies outside the held disc), where the input shows the white there. The spread white is
    the mean of the white that shows, which a lid's shade and the corners' pink pull to a flat grey: on opened eyes
    (surprise) it drew grey crescents beside the iris."""
    x0, y0, x1, y1 = eye.window
    centre = eye.centre - eye.shift  # the iris's centre in the input
    from_x, from_y = eye.ghost_from[..., 0], eye.ghost_from[..., 1]
    across = from_y - centre[1]
    reach = LIMBUS * eye.radius + 1.0
    beside = np.sqrt(np.maximum(reach ** 2 - across ** 2, 0.0)) + 1.0 + np.maximum(from_centre - eye.radius, 0.0)
    push_x = (centre[0] + np.where(from_x >= centre[0], 1.0, -1.0) * beside).astype(np.float32)
    column, row = np.rint(push_x).astype(int) - x0, np.rint(from_y).astype(int) - y0
    inside = (column >= 0) & (column < x1 - x0) & (row >= 0) & (row < y1 - y0)
    usable = eye.ghost & inside
    usable[usable] = eye.shown[row[usable], column[usable]]
    if not usable.any():
        return white
    sampled = cv2.remap(eye.crop, push_x, from_y.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).reshape(white.shape).astype(np.float32)
    return np.where(usable[..., None], sampled, white)


def _in_the_shade_beside(mirrored: np.ndarray, drawn: np.ndarray, kept: np.ndarray, iris_pixels: np.ndarray,
                         radius: float) -> np.ndarray:
    """``mirrored`` (the iris mirrored about its centre's row) with its ``drawn`` pixels scaled to the luminance of
    the ``iris_pixels`` of ``kept`` around them: an iris is lit from below and shaded by the upper lid, so its lower
    half mirrored over the uncovered top drew a pale band above the dark iris next to it (London 006 opened to
    surprise)."""
    if not drawn.any() or iris_pixels.sum() < 5:
        return mirrored
    sigma = 0.25 * radius
    level_here = pixel_luminance(_spread(kept, iris_pixels, sigma))
    level_drawn = pixel_luminance(_spread(mirrored, drawn, sigma))
    gain = np.clip(level_here / np.maximum(level_drawn, 1.0), 0.25, 4.0)[..., None]
    return np.where(drawn[..., None], mirrored * gain, mirrored)


def draw_irises(image: np.ndarray, eyes: list[SteadyIris]) -> np.ndarray:
    """Draw into ``image`` (the warped crop, in place) around each held iris: the iris the lids uncovered (its visible
    part mirrored about its centre's row, or its median colour where that is hidden too) and the white of the eye
    where the stretched map had put iris (spread from the white that shows, the lashes' dark left out); the
    iris's edge anti-aliased over a pixel."""
    for eye in eyes:
        if not (eye.uncovered_iris | eye.ghost).any():
            continue
        x0, y0, x1, y1 = eye.window
        channels = 1 if image.ndim == 2 else image.shape[2]
        window = image[y0:y1, x0:x1] if image.ndim == 3 else image[y0:y1, x0:x1, None]  # a view either way
        grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        from_centre = np.hypot(grid_x - eye.centre[0], grid_y - eye.centre[1])
        opening, iris_new, ghost = eye.opening, eye.uncovered_iris, eye.ghost
        # The white: spread from the opening's pixels outside the disc that are neither to draw nor lashes.
        luminance = pixel_luminance(window)
        white_pixels = opening & (from_centre > eye.radius + 1.0) & ~ghost
        if white_pixels.sum() < 10:
            continue
        bright = luminance >= np.quantile(luminance[white_pixels], 0.3)
        known = white_pixels & bright
        kept = window.astype(np.float32)
        white = _spread(kept, known, 0.5 * eye.radius)
        white = _white_beside_the_iris(eye, white, from_centre)
        # The iris: mirrored about its centre's row, read from the input.
        source_x = (grid_x - eye.shift[0]).astype(np.float32)
        mirrored_y = (2 * (eye.centre[1] - eye.shift[1]) - (grid_y - eye.shift[1])).astype(np.float32)
        iris = cv2.remap(eye.crop, source_x, mirrored_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        iris = iris.reshape(y1 - y0, x1 - x0, channels).astype(np.float32)
        mirror_shown = cv2.remap(eye.shown.astype(np.float32), source_x - x0, mirrored_y - y0, cv2.INTER_NEAREST,
                                 borderValue=0.0) > 0.5
        shown_iris = opening & (from_centre < eye.radius) & ~iris_new
        # The mirrored iris in the shade of the iris beside it: the shown iris less what is nearer the white than the
        # iris (a catchlight, the lids' pale margins the warp left inside the disc).
        iris_level = float(pixel_luminance(eye.iris_colour[None])[0])
        white_level = float(np.median(luminance[known]))
        iris_like = shown_iris & (luminance < iris_level + IRIS_SHARE_OF_WHITE * (white_level - iris_level))
        # The uncovered iris is drawn only where it joins the iris that shows: on a narrow eye whose mesh contour lies
        # on the lid, the input's lid skin sits inside the held disc, and the iris drawn above it floated there as a
        # dark bar over the eye (London 005 opened to surprise). Left undrawn, those pixels keep the warped lid.
        _, parts = cv2.connectedComponents((iris_new | iris_like).astype(np.uint8), connectivity=8)
        joined = np.unique(parts[iris_like])
        iris_new = iris_new & np.isin(parts, joined[joined > 0])
        iris = _in_the_shade_beside(iris, iris_new & mirror_shown, kept, iris_like, eye.radius)
        # Where the mirror is hidden too (a narrow eye opened wide), the iris that shows is continued. (Continued from
        # the iris-like pixels alone, it drew dark bars over the lid skin of narrow eyes, whose mesh contour lies
        # outside the visible opening: London 005.)
        if (iris_new & ~mirror_shown).any() and shown_iris.sum() >= 5:
            continued = _spread(kept, shown_iris, 0.25 * eye.radius)
        else:
            continued = np.broadcast_to(eye.iris_colour.reshape(1, 1, -1), iris.shape)
        iris = np.where(mirror_shown[..., None], iris, continued)
        drawn = np.where(iris_new[..., None], iris, np.where(ghost[..., None], white, kept))
        # The limbus, softened across a pixel where a drawn part meets it: each edge pixel mixes what lies a pixel
        # inside the disc with what lies a pixel outside, along its radius. Mixed with the spread white everywhere,
        # the edge drew a thin pale ring where the lid's shade or the input's own iris lies just outside the disc.
        to_draw = iris_new | ghost
        near_drawn = cv2.dilate(to_draw.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        edge = opening & (np.abs(from_centre - eye.radius) < 1.0) & near_drawn
        if edge.any():
            along_x = (grid_x - eye.centre[0]) / np.maximum(from_centre, 1e-6)
            along_y = (grid_y - eye.centre[1]) / np.maximum(from_centre, 1e-6)

            def at_radius(radius: float) -> np.ndarray:
                return cv2.remap(drawn.astype(np.float32), (eye.centre[0] + along_x * radius - x0).astype(np.float32),
                                 (eye.centre[1] + along_y * radius - y0).astype(np.float32), cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE).reshape(drawn.shape)

            in_iris = np.clip(eye.radius + 0.5 - from_centre, 0, 1)[..., None]
            softened = at_radius(eye.radius - 1.0) * in_iris + at_radius(eye.radius + 1.0) * (1 - in_iris)
            drawn = np.where(edge[..., None], softened, drawn)
        changed = to_draw | edge
        drawn = with_grain(drawn, kept, changed, opening & ~changed)
        out = np.clip(np.round(drawn), 0, 255).astype(np.uint8)
        np.copyto(window, out, where=changed[..., None])
    return image


def keep_irises(drawn: np.ndarray, before: np.ndarray, source: np.ndarray, target: np.ndarray,
                eyes: Sequence[tuple[Sequence[int], tuple[int, int]]]) -> None:
    """``drawn`` (a redrawing of the eyes over ``before``, in place) no lighter than ``before`` on each iris: the disc
    :func:`find_iris` finds in ``before`` inside the ``target`` eye opening, its edge soft over a pixel. The learned
    eyes draw the opening from the mesh alone, and their fear drew white over the iris on some faces: two glowing
    blobs for eyes. An eye the input (``source``) shows nearly shut, or whose opening shows no white
    ``KEPT_IRIS_CONTRAST`` grey levels above the iris, is left to the drawing: what the warp stretched there is a dark
    slit, lashes or a shadow, and a disc of it kept was a black hole."""
    for contour, corners in eyes:
        contour, corners = list(contour), list(corners)
        width = float(np.linalg.norm(target[corners[0], :2] - target[corners[1], :2]))
        x0, y0, x1, y1 = box_around(before.shape[:2], source[contour], target[contour], margin=3)
        if width < 8 or x1 - x0 < 8 or y1 - y0 < 4:
            continue
        offset = np.array([x0, y0], np.float64)
        shown = polygon_mask((y1 - y0, x1 - x0), source[contour, :2] - offset)
        opening = polygon_mask((y1 - y0, x1 - x0), target[contour, :2] - offset)
        if shown.sum(0).max() < MIN_OPENING * width or opening.sum(0).max() < MIN_OPENING * width:
            continue
        window, inner = before[y0:y1, x0:x1], _inside(opening, LASH_LINE)
        iris = find_iris(window, inner, width)
        if iris is None:
            continue
        (cx, cy), radius = iris
        ys, xs = np.mgrid[0:y1 - y0, 0:x1 - x0]
        from_centre = np.hypot(xs - cx, ys - cy)
        luminance = pixel_luminance(window if window.ndim == 3 else window[..., None])
        disc = inner & (from_centre < radius)
        if not disc.any() or np.quantile(luminance[inner], 0.9) - np.quantile(luminance[disc], 0.25) \
                < KEPT_IRIS_CONTRAST:
            continue
        weight = np.clip(radius + 0.5 - from_centre, 0.0, 1.0) * opening
        if drawn.ndim == 3:
            weight = weight[..., None]
        old = window.astype(np.float32)
        new = drawn[y0:y1, x0:x1].astype(np.float32)
        kept = new - weight * np.maximum(new - old, 0.0)
        drawn[y0:y1, x0:x1] = np.clip(np.round(kept), 0, 255).astype(drawn.dtype)
