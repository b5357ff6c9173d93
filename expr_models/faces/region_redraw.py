"""The learned brows, eyes and lower face at editing time: after the mesh warp and the shading, redraw a region of
the face for the target expression.

    redraw = learned_region(model)                            # a BrowInpainterModel or one of its subclasses
    box = redraw(warped_crop, target_points, "neutral", 1.0)  # in place; pixels outside the hole keep their bytes

The model sees its region's grey window (``inpaint_regions``: the upper face's brows, glabella and band of forehead,
or the lower face's cheeks, folds, lips and chin) of the warped crop with that region hidden, the target mesh's maps
there, and the target expression, and draws the region. What is added to the crop is the *change* it draws (the
drawing less the window), scaled by the strength, on every channel alike: on a face of FER2013's size that is the
drawing itself, and on a somewhat larger one the photo keeps its own fine detail and colours under it.

Only on faces up to ``MAX_ENLARGEMENT`` times the frame's size (eyes up to 60 px apart; the evaluation's 128-px crops
of 48-px faces have them 45-50 px apart): the models know 48-px faces, and their change enlarged further is a smudge.
On a held-out London Set portrait (eyes 300 px apart) the brows' → angry left a pale band over the brows and → fear
two dark bands where the brows were; the warp and the expression shading alone look right there.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np
import torch

from .inpaint_regions import REGIONS
from .tone import is_grey

# (crop, target points, target expression, strength) -> the box (x0, y0, x1, y1) it changed in place, or None.
RegionRedraw = Callable[[np.ndarray, np.ndarray, str, float], "tuple[int, int, int, int] | None"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
MAX_ENLARGEMENT = 3.0  # the most a region frame's change is enlarged into a photo (see above)
# A drawing is no darker than the window's darkest pixel this near (frame pixels), less this margin, away from the
# features its maps mark. On a face unlike its training ones (a CK+ validation man's broad smile taken to neutral)
# the lower face painted a near-black blob on a cheek, 167 grey levels below the darkest pixel around it.
DARK_SPOT_REACH = 1
DARK_SPOT_MARGIN = 30.0


def learned_region(model: Any, margin: float | None = None, max_lost_detail: float | None = None) -> RegionRedraw:
    """The region redraw of ``model`` (anything with ``inpaint(windows, holes, maps, target)`` and a config with
    ``region``, ``hole_margin``, ``class_names`` and ``edit_expressions``, i.e. a ``BrowInpainterModel``); ``margin``:
    the hole's reach in frame pixels (default the model's ``hole_margin``). Targets outside the model's
    ``edit_expressions`` (where its drawings do not look real), faces larger than ``MAX_ENLARGEMENT`` times the
    frame's, faces the region does not fit (``InpaintRegion.fits``: a lower face turned too far) and, as the model's
    config says, colour photos (``edit_colour_photos``) and faces sharper than its frame (``max_lost_detail``, or
    the argument where that is stricter) are left alone."""
    region = REGIONS[model.config.region]
    reach = model.config.hole_margin if margin is None else margin
    colour_photos = getattr(model.config, "edit_colour_photos", True)
    limits = [limit for limit in (getattr(model.config, "max_lost_detail", None), max_lost_detail) if limit is not None]
    max_lost_detail = min(limits) if limits else None

    def redraw(image: np.ndarray, target: np.ndarray, expression: str, strength: float = 1.0
               ) -> tuple[int, int, int, int] | None:
        if not draws(model, expression) or strength <= 0:
            return None
        colour = image[..., :3] if image.ndim == 3 else image
        if not colour_photos and not is_grey(colour):
            return None
        grey = colour.astype(np.float32) @ _LUMA if colour.ndim == 3 else colour.astype(np.float32)
        frame = region.frame.from_points(target)
        if frame.scale * MAX_ENLARGEMENT < 1.0:
            return None
        points = frame.to_frame(target)
        if not region.fits(points) or max_lost_detail is not None and frame.lost_detail(grey) > max_lost_detail:
            return None
        window = frame.crop(grey)
        hole = region.hole(points, reach)
        windows = torch.from_numpy(window)[None, None] / 127.5 - 1.0
        maps = region.maps(points)
        drawn = model.inpaint(windows, torch.from_numpy(hole)[None, None], torch.from_numpy(maps)[None], expression)
        drawn = without_new_dark_spots((drawn[0, 0].float().cpu().numpy() + 1.0) * 127.5, window, maps)
        change = (drawn - window) * min(float(strength), 1.0)
        return frame.add(colour, change, hole)  # a view: an alpha channel keeps its bytes

    return redraw


def draws(model: Any, expression: str) -> bool:
    """Whether the editor asks the region model ``model`` to draw ``expression`` (its ``edit_expressions``, or all of
    its ``class_names`` where none are set)."""
    return expression in set(model.config.edit_expressions or model.config.class_names)


def without_new_dark_spots(drawn: np.ndarray, window: np.ndarray, maps: np.ndarray, reach: int = DARK_SPOT_REACH,
                           margin: float = DARK_SPOT_MARGIN) -> np.ndarray:
    """``drawn`` (a region's drawing, grey levels) no darker than the darkest pixel of ``window`` within ``reach``
    frame pixels, less ``margin``, except on and beside the features its ``maps`` mark (lips, mouth, nose; brows),
    where an expression does darken the face."""
    size = 2 * reach + 1
    floor = cv2.erode(window.astype(np.float32), np.ones((size, size), np.uint8)) - margin
    features = cv2.dilate((maps.max(0) > 0.5).astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    return np.where(features, drawn, np.maximum(drawn, floor))
