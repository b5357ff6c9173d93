"""The learned mouth at editing time: after the mesh warp, redraw the inside of the target lips.

    redraw = learned_redraw(model)                       # model: a MouthInpainterModel
    box = redraw(warped_crop, crop, source, target)      # in place; pixels outside the hole keep their bytes

The warp has moved the lips; what lies between them is wrong wherever the mouth opened (stretched lip, no teeth) or
closed (teeth squeezed between the lips). The model sees the mouth window of the warped crop (``mouth_frame``) with
the target inner lips plus a margin hidden, and the target's lip maps, and draws that region: teeth and the dark cavity
where the target lips part, lips meeting where they close. Its frame is pasted back inside the hole only, feathered.
Where the mesh missed part of the opening (a small face's gasp), the warp passes what of it is left as ``leftover``,
and the hole takes that in too.

The editor uses it where lips close over teeth (a broad smile taken to neutral), on grey photos and small faces. On a
colour face whose mouth the frame shrinks (a London mouth is three times the frame's), its drawing came back as a
blurred band; there the lips close with the person's own lips, mirrored across the hole's edges at the photo's
resolution, and a seam (``lips_meeting_in_place``). Lips that close only part of the way over teeth, on any face,
slide over the person's own teeth (``teeth_behind_the_lips``): the model drew that half-open mouth as a pale smear.
It can also open a mouth, but there it measured worse than the alternatives: at 1024 px its teeth are softer than a
stored real mouth's, and its round surprised mouths read less as surprise than a dark cavity; ``mesh_warp.warp_face``
explains the choice.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np
import torch

from .aligned_frame import grown
from .mesh_topology import (LIPS_INNER, LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER, LIPS_OUTER_LOWER,
                            LIPS_OUTER_UPPER)
from .mouth_fill import region_mean
from .mouth_frame import MouthFrame, hole_mask, lip_maps
from .mouth_opening import is_open, own_teeth, whole_opening
from .tone import is_grey

# (warped crop, input crop, source points, target points, leftover) -> the box (x0, y0, x1, y1) it redrew in place, or
# None. ``leftover``: a crop-sized mask of more to redraw (the source's opening where the warp left it), or None.
MouthRedraw = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"],
                       "tuple[int, int, int, int] | None"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# BT.601 chroma (Cb, Cr) from RGB, and back: RGB = Y + Cb * _FROM_CB + Cr * _FROM_CR
_CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_FROM_CB = np.array([0.0, -0.344136, 1.772], np.float32)
_FROM_CR = np.array([1.402, -0.714136, 0.0], np.float32)
# Closed lips drawn from the person's own (``lips_meeting_in_place``): on a colour face whose mouth the frame shrinks
# this much or more (frame pixels per photo pixel), the seam's strength, light (of the lips' colour) and width (px).
MIRROR_BELOW_SCALE = 0.75
SEAM_ALPHA = 0.45
SEAM_LIGHT = 0.45
SEAM_SIGMA = 1.2
MIRROR_MARGIN = 1.5  # frame pixels: the mirrored hole reaches this far past the seam's band, and feathers as far
# Only lips that close, or nearly (their mean gap at most this share of the mouth's width; a neutral target's is about
# 0.05): a mouth left half open (``mouth_open`` -0.5 on a broad smile) mirrored lip into its opening, in streaks.
MIRROR_MOST_OPEN = 0.06


def within_surrounding_colours(drawn: np.ndarray, window: np.ndarray, hole: np.ndarray, ring: float = 6.0
                               ) -> np.ndarray:
    """``drawn`` (H x W x 3 float, 0-255) with its chroma held to the colours around the hole: the 2nd-98th
    percentiles of the window's Cb and Cr within ``ring`` frame pixels outside ``hole`` (the lips and skin that
    stay), widened to take in grey (teeth); the luminance is kept. The model's colour is its weakest part (trained
    on few colour mouths, at a third of a London mouth's size): a closing seam came out green and yellow at a
    corner, which no lip around it is."""
    outside = hole < 0.05
    distance = cv2.distanceTransform(outside.astype(np.uint8), cv2.DIST_L2, 5)
    near = outside & (distance <= ring)
    if near.sum() < 20:
        return drawn
    around = np.asarray(window, np.float32)[near] @ _CHROMA.T
    low, high = np.percentile(around, [2, 98], axis=0)
    low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)
    luma = drawn @ _LUMA
    chroma = np.clip(drawn @ _CHROMA.T, low, high)
    return luma[..., None] + chroma[..., :1] * _FROM_CB + chroma[..., 1:] * _FROM_CR


def in_the_lips_own_tone(drawn: np.ndarray, hole: np.ndarray, drawn_lips: np.ndarray, own_tone: float,
                         most: float = 60.0) -> np.ndarray:
    """``drawn`` (H x W x 3 float, 0-255) with the lips it draws (``drawn_lips``, bool, within the ``hole``) as light
    as the person's own (``own_tone``: the luminance of the input's lips): their median luminance shifted to it, by
    at most ``most`` grey levels, the shift feathered over a pixel. The model draws lips of a typical tone: a JAFFE
    poser's dark lipstick came out pale where her lips closed."""
    drawn_lips = drawn_lips & (hole > 0.5)
    if drawn_lips.sum() < 10:
        return drawn
    shift = float(np.clip(own_tone - np.median(drawn[drawn_lips] @ _LUMA), -most, most))
    weight = cv2.GaussianBlur(drawn_lips.astype(np.float32), (0, 0), 1.0) * hole
    return drawn + (shift * weight)[..., None]


def lips_meeting_in_place(image: np.ndarray, frame: MouthFrame, hole: np.ndarray, frame_points: np.ndarray,
                          lips_colour: np.ndarray) -> tuple[int, int, int, int] | None:
    """Close the lips in ``image`` (H x W x 3 uint8, in place) with the person's own lips, at the photo's resolution:
    each pixel of the ``hole`` (frame pixels; the band around the target's seam) takes the pixel mirrored across
    the hole's edge on its side of the seam (the upper lip continued down, the lower lip up), and a soft seam of the
    lips' own colour, darkened, is drawn where they meet. Returns the box it changed, or None.

    For a large face: the learned mouth draws at the frame's size, a third of a London mouth's, so its lips came back
    three times enlarged, as a blurred band with grey and magenta stripes where the person's lips have texture."""
    columns = np.flatnonzero((hole > 0.5).any(0))
    if len(columns) < 2:
        return None
    inside = hole > 0.5
    rows = np.arange(hole.shape[0], dtype=np.float64)[:, None]
    top = np.where(inside, rows, np.inf).min(0) - 0.5      # the hole's upper and lower edges, per frame column
    bottom = np.where(inside, rows, -np.inf).max(0) + 0.5
    upper = frame_points[list(LIPS_INNER[:11]), :2]
    lower = frame_points[[LIPS_INNER[0]] + list(LIPS_INNER[:10:-1]) + [LIPS_INNER[10]], :2]
    xs = np.arange(hole.shape[1], dtype=np.float64)
    order_u, order_l = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
    seam = (np.interp(xs, upper[order_u, 0], upper[order_u, 1])
            + np.interp(xs, lower[order_l, 0], lower[order_l, 1])) / 2
    top, bottom = np.where(np.isfinite(top), top, seam), np.where(np.isfinite(bottom), bottom, seam)

    mapped = frame.to_photo(hole, hole, image.shape)
    if mapped is None:
        return None
    (x0, y0, x1, y1), _, alpha = mapped
    if not (alpha > 0).any():
        return None
    # Each photo pixel of the box in frame coordinates, mirrored across the hole's edge on its side of the seam.
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    fx = frame.matrix[0, 0] * gx + frame.matrix[0, 1] * gy + frame.matrix[0, 2]
    fy = frame.matrix[1, 0] * gx + frame.matrix[1, 1] * gy + frame.matrix[1, 2]
    column = np.clip(fx, 0, hole.shape[1] - 1)
    at_seam, at_top, at_bottom = (np.interp(column, xs, values) for values in (seam, top, bottom))
    mirrored = np.where(fy < at_seam, 2 * at_top - fy, 2 * at_bottom - fy)
    # Kept on the lips: where a lip is thinner than the hole's reach past it (towards the corners), the mirror would
    # fetch the skin beyond it (pale wedges at the corners); there it stops half a frame pixel inside the lip.
    outer_upper = frame_points[list(LIPS_OUTER_UPPER), :2]
    outer_lower = frame_points[list(LIPS_OUTER_LOWER), :2]
    lip_top = np.interp(column, *outer_upper[np.argsort(outer_upper[:, 0])].T) + 0.5
    lip_bottom = np.interp(column, *outer_lower[np.argsort(outer_lower[:, 0])].T) - 0.5
    on_lips = (fx > outer_upper[:, 0].min()) & (fx < outer_upper[:, 0].max())
    mirrored = np.where(on_lips & (fy < at_seam), np.maximum(mirrored, np.minimum(lip_top, at_top)), mirrored)
    mirrored = np.where(on_lips & (fy >= at_seam), np.minimum(mirrored, np.maximum(lip_bottom, at_bottom)), mirrored)
    inverse = cv2.invertAffineTransform(frame.matrix)
    map_x = (inverse[0, 0] * fx + inverse[0, 1] * mirrored + inverse[0, 2]).astype(np.float32)
    map_y = (inverse[1, 0] * fx + inverse[1, 1] * mirrored + inverse[1, 2]).astype(np.float32)
    drawn = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    # The seam: a line about a photo pixel wide (Gaussian across it), in the lips' own colour at under half its light,
    # fading out over the last tenth of the mouth towards each inner corner.
    across = (fy - at_seam) / frame.scale  # photo pixels from the seam
    left, right = upper[:, 0].min(), upper[:, 0].max()
    along = np.clip(np.minimum(fx - left, right - fx) / max(0.1 * (right - left), 1e-6), 0.0, 1.0)
    weight = (SEAM_ALPHA * np.exp(-0.5 * (across / SEAM_SIGMA) ** 2) * along)[..., None]
    drawn = drawn * (1.0 - weight) + np.asarray(lips_colour[:3], np.float32) * SEAM_LIGHT * weight
    region = image[y0:y1, x0:x1]
    blended = region * (1.0 - alpha[..., None]) + drawn * alpha[..., None]
    region[...] = np.clip(np.round(blended), 0, 255).astype(image.dtype)
    ys, xs_changed = np.nonzero(alpha > 0)
    return int(x0 + xs_changed.min()), int(y0 + ys.min()), int(x0 + xs_changed.max() + 1), int(y0 + ys.max() + 1)


def _lip_line(points: np.ndarray, indices, xs: np.ndarray) -> np.ndarray:
    """The height of the lip line through ``points[indices]`` (corner to corner) at each of ``xs``."""
    line = points[list(indices), :2]
    order = np.argsort(line[:, 0])
    return np.interp(xs, line[order, 0], line[order, 1])


def teeth_behind_the_lips(image: np.ndarray, crop: np.ndarray, source: np.ndarray, target: np.ndarray
                          ) -> tuple[int, int, int, int] | None:
    """Fill the opening between the ``target`` inner lips of ``image`` (the warped crop, in place) with the input
    ``crop``'s own mouth, slid rather than squeezed: each column of the opening (the same share of the way between
    the inner corners in both) shows the input's interior around its own middle line, as far above and below it as
    the target opens, pressed only where the target opens further than the input did there. Lips that close part of
    the way over the teeth then cover their roots and show their edges, sharp and the person's own, as a mouth does.
    Returns the box it changed, or None."""
    target_lips = target[list(LIPS_INNER), :2]
    alpha = whole_opening(image.shape[:2], target_lips, feather=1.0)
    if alpha is None:
        return None
    ys, xs = np.nonzero(alpha > 0)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    grid_x, grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    corners = [LIPS_INNER_UPPER[0], LIPS_INNER_UPPER[-1]]
    (t_left, t_right), (s_left, s_right) = target[corners, 0], source[corners, 0]
    share = (grid_x[0] - t_left) / max(t_right - t_left, 1e-6)
    source_x = s_left + share * (s_right - s_left)
    t_top, t_bottom = _lip_line(target, LIPS_INNER_UPPER, grid_x[0]), _lip_line(target, LIPS_INNER_LOWER, grid_x[0])
    s_top, s_bottom = _lip_line(source, LIPS_INNER_UPPER, source_x), _lip_line(source, LIPS_INNER_LOWER, source_x)
    t_half, s_half = np.maximum((t_bottom - t_top) / 2, 1e-6), np.maximum((s_bottom - s_top) / 2, 0.0)
    press = np.minimum(1.0, s_half / t_half)
    map_y = (s_top + s_bottom) / 2 + (grid_y - (t_top + t_bottom) / 2) * press
    map_x = np.broadcast_to(source_x, grid_x.shape)
    colour = crop[..., :3] if crop.ndim == 3 else crop  # an alpha channel keeps its bytes
    slid = cv2.remap(np.ascontiguousarray(colour), map_x.astype(np.float32), map_y.astype(np.float32),
                     cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    a = alpha[y0:y1, x0:x1]
    region = image[y0:y1, x0:x1, :3] if image.ndim == 3 else image[y0:y1, x0:x1]
    if region.ndim == 3:
        a = a[..., None]
    region[...] = np.clip(np.round(region * (1.0 - a) + slid.reshape(region.shape) * a), 0, 255).astype(image.dtype)
    return int(x0), int(y0), int(x1), int(y1)


def learned_redraw(model: Any, margin: float | None = None) -> MouthRedraw:
    """The redraw of ``model`` (anything with ``inpaint(frames, holes, maps)`` and ``config.hole_margin``, i.e. a
    ``MouthInpainterModel``); ``margin``: the hole's reach past the target inner lips in frame pixels (default the
    model's ``hole_margin``)."""
    reach = model.config.hole_margin if margin is None else margin

    def redraw(image: np.ndarray, crop: np.ndarray, source: np.ndarray, target: np.ndarray,
               leftover: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        inner = list(LIPS_INNER)
        # Lips that close only part of the way over teeth slide over the person's own: the model drew a half-open
        # mouth as a pale smear with no tooth in it (the astronaut's smile taken to fear, anger or disgust).
        if leftover is None and is_open(target, inner, MIRROR_MOST_OPEN) and own_teeth(crop, source) is not None:
            return teeth_behind_the_lips(image, crop, source, target)
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])
        frame = MouthFrame.from_points(target)
        points = frame.to_frame(target)
        window = frame.crop(rgb)
        # A grey photo gets a grey mouth (judged on the mouth's window: the whole crop costs more than the network).
        grey = image.ndim == 2 or is_grey(window)
        hole = hole_mask(points, reach)
        lips_colour = region_mean(crop, source[list(LIPS_OUTER)], source[list(LIPS_INNER)])  # the person's own
        if not grey and leftover is None and frame.scale <= MIRROR_BELOW_SCALE and image.shape[2] == 3 and \
                not is_open(target, list(LIPS_INNER), MIRROR_MOST_OPEN):
            return lips_meeting_in_place(image, frame, hole_mask(points, MIRROR_MARGIN, MIRROR_MARGIN), points,
                                         lips_colour)
        if leftover is not None:
            hole = np.maximum(hole, grown(frame.crop(leftover.astype(np.float32)) > 0.25, reach))
        frames = torch.from_numpy(window).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        maps = lip_maps(points)  # the opening, the lips, the inner-lip line
        drawn = model.inpaint(frames, torch.from_numpy(hole)[None, None], torch.from_numpy(maps)[None])
        drawn = ((drawn[0].float().permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).clip(0, 255)
        own_tone = float(lips_colour[:3] @ _LUMA) if len(lips_colour) >= 3 else float(lips_colour[0])
        drawn = in_the_lips_own_tone(drawn, hole, maps[1] > 0.5, own_tone).clip(0, 255)
        if grey:
            drawn = drawn @ _LUMA
            if image.ndim == 2:
                return frame.paste(image, drawn, hole, match_grain=True)
            drawn = np.repeat(drawn[..., None], 3, axis=2)
        else:
            drawn = within_surrounding_colours(drawn, window, hole).clip(0, 255)
        return frame.paste(image[..., :3], drawn, hole, match_grain=True)  # a view: an alpha channel keeps its bytes

    return redraw

