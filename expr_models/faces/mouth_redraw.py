"""The learned mouth at editing time: after the mesh warp, redraw the inside of the target lips.

    redraw = learned_redraw(model)                       # model: a MouthInpainterModel
    redraw = learned_redraw(model, teeth=bank)           # ... with real teeth detail from the mouth exemplars
    box = redraw(warped_crop, crop, source, target)      # in place; pixels outside the hole keep their bytes

The warp has moved the lips; what lies between them is wrong wherever the mouth opened (stretched lip, no teeth) or
closed (teeth squeezed between the lips). The model sees the mouth window of the warped crop (``mouth_frame``) with
the target inner lips plus a margin hidden, and the target's lip maps, and draws that region: teeth and the dark cavity
where the target lips part, lips meeting where they close. Its frame is pasted back inside the hole only, feathered.

The model draws at the frame's scale (the mouth 56 px wide) and, trained with an L1 loss on CPU, draws the teeth as a
soft band: the right brightness, shading and colour for this face, but no single tooth. ``teeth``: where the target
lips part and a stored open mouth of a similar shape exists (``MouthExemplarsModel.closest``), that mouth's detail
(its luminance less a blur of ``DETAIL_SCALE`` of the mouth's width) is added to the model's drawing at the
photo's resolution: the teeth's edges and gaps are a real mouth's, their light and colour the model's.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np
import torch

from .mesh_topology import LIPS_INNER
from .mouth_fill import TEMPLATE, piecewise_affine
from .mouth_frame import MouthFrame, hole_mask, lip_maps

# (warped crop, input crop, source points, target points) -> the box (x0, y0, x1, y1) it redrew in place, or None
MouthRedraw = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], "tuple[int, int, int, int] | None"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
DETAIL_SCALE = 0.03  # the detail blur's sigma, in mouth widths: about a third of a front tooth


def learned_redraw(model: Any, margin: float | None = None, teeth: Any = None) -> MouthRedraw:
    """The redraw of ``model`` (anything with ``inpaint(frames, holes, maps)`` and ``config.hole_margin``, i.e. a
    ``MouthInpainterModel``); ``margin``: the hole's reach past the target inner lips in frame pixels (default the
    model's ``hole_margin``); ``teeth``: a bank of open mouths (``closest(inner_lips)``) whose detail is added where
    the lips part (see the module docstring)."""
    reach = model.config.hole_margin if margin is None else margin

    def redraw(image: np.ndarray, crop: np.ndarray, source: np.ndarray, target: np.ndarray
               ) -> tuple[int, int, int, int] | None:
        grey = image.ndim == 2 or not np.abs(np.diff(image[..., :3].astype(np.int16), axis=2)).any()
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])
        frame = MouthFrame.from_points(target)
        points = frame.to_frame(target)
        window = frame.crop(rgb)
        hole = hole_mask(points, reach)
        frames = torch.from_numpy(window).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        drawn = model.inpaint(frames, torch.from_numpy(hole)[None, None], torch.from_numpy(lip_maps(points))[None])
        drawn = ((drawn[0].float().permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).clip(0, 255)
        if grey:  # a grey photo gets a grey mouth
            drawn = drawn @ _LUMA
            if image.ndim == 2:
                return frame.paste(image, drawn, hole)
            drawn = np.repeat(drawn[..., None], 3, axis=2)
        box = frame.paste(image[..., :3], drawn, hole)  # a view: an alpha channel keeps its bytes
        if teeth is not None and box is not None:
            add_teeth_detail(image, target, teeth, box)
        return box

    return redraw


def add_teeth_detail(image: np.ndarray, target: np.ndarray, bank: Any, box: tuple[int, int, int, int]) -> None:
    """Add (in place, inside the target's inner lips and ``box``) the luminance detail of the bank's closest open
    mouth, warped into the target inner lips at the photo's resolution; nothing where the bank has no mouth of this
    shape (a round, surprised one) or the lips do not part."""
    lips = np.asarray(target, np.float64)[list(LIPS_INNER), :2]
    exemplar = bank.closest(lips)
    if exemplar is None:
        return
    x0, y0, x1, y1 = box
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(inside, [np.round((lips - [x0, y0]) * 16).astype(np.int32)], 1, shift=4)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8))  # not on the lips' own edge
    if not inside.any():
        return
    warped, _ = piecewise_affine(exemplar.interior, TEMPLATE, lips, inside.shape, (x0, y0), cv2.INTER_CUBIC)
    luminance = warped.astype(np.float32) @ _LUMA
    width = float(np.ptp(lips[:, 0]))  # the inner lips' width, photo pixels
    sigma = max(DETAIL_SCALE * width, 0.8)
    low = cv2.GaussianBlur(luminance, (0, 0), sigma)
    # The detail in proportion to the drawn mouth's own brightness: a dim mouth gets dim edges.
    region = image[y0:y1, x0:x1, :3].astype(np.float32)
    drawn_low = cv2.GaussianBlur(region @ _LUMA, (0, 0), sigma)
    detail = (luminance - low) * np.clip(drawn_low / np.maximum(low, 1.0), 0.5, 1.5)
    alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.7) * inside
    region += (detail * alpha)[..., None]
    image[y0:y1, x0:x1, :3] = np.clip(np.round(region), 0, 255).astype(image.dtype)
