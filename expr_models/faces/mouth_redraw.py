"""The learned mouth at editing time: after the mesh warp, redraw the inside of the target lips.

    redraw = learned_redraw(model)                       # model: a MouthInpainterModel
    box = redraw(warped_crop, crop, source, target)      # in place; pixels outside the hole keep their bytes

The warp has moved the lips; what lies between them is wrong wherever the mouth opened (stretched lip, no teeth) or
closed (teeth squeezed between the lips). The model sees the mouth window of the warped crop (``mouth_frame``) with
the target inner lips plus a margin hidden, and the target's lip maps, and draws that region: teeth and the dark cavity
where the target lips part, lips meeting where they close. Its frame is pasted back inside the hole only, feathered.
Where the mesh missed part of the opening (a small face's gasp), the warp passes what of it is left as ``leftover``,
and the hole takes that in too.

The editor uses it where lips close over teeth (a broad smile taken to neutral). It can also open a mouth, but there
it measured worse than the alternatives: at 1024 px its teeth are softer than a stored real mouth's, and its round
surprised mouths read less as surprise than a dark cavity; ``mesh_warp.warp_face`` explains the choice.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np
import torch

from .aligned_frame import grown
from .mesh_topology import LIPS_INNER, LIPS_OUTER
from .mouth_fill import region_mean
from .mouth_frame import MouthFrame, hole_mask, lip_maps
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


def learned_redraw(model: Any, margin: float | None = None) -> MouthRedraw:
    """The redraw of ``model`` (anything with ``inpaint(frames, holes, maps)`` and ``config.hole_margin``, i.e. a
    ``MouthInpainterModel``); ``margin``: the hole's reach past the target inner lips in frame pixels (default the
    model's ``hole_margin``)."""
    reach = model.config.hole_margin if margin is None else margin

    def redraw(image: np.ndarray, crop: np.ndarray, source: np.ndarray, target: np.ndarray,
               leftover: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])
        frame = MouthFrame.from_points(target)
        points = frame.to_frame(target)
        window = frame.crop(rgb)
        # A grey photo gets a grey mouth (judged on the mouth's window: the whole crop costs more than the network).
        grey = image.ndim == 2 or is_grey(window)
        hole = hole_mask(points, reach)
        if leftover is not None:
            hole = np.maximum(hole, grown(frame.crop(leftover.astype(np.float32)) > 0.25, reach))
        frames = torch.from_numpy(window).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        maps = lip_maps(points)  # the opening, the lips, the inner-lip line
        drawn = model.inpaint(frames, torch.from_numpy(hole)[None, None], torch.from_numpy(maps)[None])
        drawn = ((drawn[0].float().permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).clip(0, 255)
        lips_colour = region_mean(crop, source[list(LIPS_OUTER)], source[list(LIPS_INNER)])  # the person's own
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

