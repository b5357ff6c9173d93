"""One sharp warp of a face crop at full resolution, driven by mesh points.

    result = warp_crop(crop, source_points, target_points, inner_lips=INNER_LIPS)
    result.image        # the warped crop: pixels outside the moved triangles are the input's own bytes

How: a ring of fixed anchors around the points (so the motion falls to zero before the crop's edge), one Delaunay
triangulation of the target points and anchors (it covers the mouth interior between the inner lips), the backward
piecewise-affine map (each output pixel of a target triangle -> its barycentric coordinates -> the same place in the
source triangle), and one sample of the crop inside the moved region's bounding box (Lanczos around the mouth and
the eyes, cubic on the skin). No pixel is resampled twice and none leaves the crop's own resolution, so the mouth
stays sharp.

Where the target's inner lips part wider than the source's, the map would stretch lip texture across the new gap;
those pixels get a plain dark mouth cavity (``mouth_opening.mouth_cavity``), or what a mouth model draws there; where
the lips close over teeth, a learned mouth redraws them meeting (``mouth_redraw``). The mouth's own geometry (the new
gap, the real opening, the seam) is in :mod:`.mouth_opening`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
from scipy.spatial import Delaunay  # scipy ships with scikit-image, a dependency

from .region_redraw import draws, learned_region
from .eye_interior import draw_irises, keep_irises, steady_irises
from .mouth_opening import (SHIFT, area2, box_around, cavity_colour, closed_share, draw_seam, into_the_lips, is_open,
                            mesh_missed, mouth_cavity, new_gap, own_teeth, real_opening, shows_between_lips,
                            whole_opening)
from .mouth_fill import (LAUGH_TEETH_LIGHT, LAUGH_TEETH_TIPS, fill_mouth, gasp_teeth, inset, laugh_teeth_show,
                         opening_height, piecewise_affine, region_mean)
from .mouth_redraw import MouthRedraw, learned_redraw

# A point that moves less than this (px) counts as still: triangles whose corners are all still are left as they are
# (the seam to a moving neighbour is under a tenth of a pixel), so a smile does not resample the forehead and hair.
_STILL = 0.1
# Around the mouth and the eyes, Lanczos (8 x 8 taps) rather than cubic: a sub-pixel shift of a grainy photo keeps
# 0.6 of its Laplacian variance instead of 0.43 (JAFFE, half a pixel), 0.88 instead of 0.73 (London Set, 1024 px).
# On the skin between them, cubic: Lanczos over the whole moved region cost 6-10 ms a 1 MP edit.
SAMPLING = cv2.INTER_LANCZOS4
SKIN_SAMPLING = cv2.INTER_CUBIC
# How far the sharp kernel reaches past a feature, as a share of its width, and the ramp (px) between the kernels.
DETAIL_MARGIN = 0.35
DETAIL_RAMP = 6


@dataclass
class WarpResult:
    """The warped crop and where it changed."""

    image: np.ndarray          # H x W x C uint8, the input's bytes wherever the map is the identity
    box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) holding every changed pixel; None: nothing moved
    gap: np.ndarray | None     # H x W float32 alpha of the dark cavity painted into a newly opened mouth, or None


def anchor_ring(points: np.ndarray, shape: tuple[int, int], scale: float = 1.2, count: int = 32,
                margin: float = 2.0) -> np.ndarray:
    """``count`` fixed points on an ellipse ``scale`` times the one through the farthest point (around the points'
    box centre), pulled inside the crop ``shape`` (H, W) by ``margin`` pixels."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    low, high = points.min(0), points.max(0)
    centre, half = (low + high) / 2, np.maximum((high - low) / 2, 1.0)
    reach = np.sqrt((((points - centre) / half) ** 2).sum(1)).max()  # the farthest point, in half-extents
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    ring = centre + half * reach * scale * np.stack([np.cos(angles), np.sin(angles)], 1)
    height, width = shape
    return np.clip(ring, margin, [width - 1 - margin, height - 1 - margin])


def _affines(target: np.ndarray, source: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle, the 3 x 2 matrix ``M`` with ``[x, y, 1] @ M`` = the source position of target pixel (x, y);
    and which triangles are non-degenerate."""
    t = np.concatenate([target[triangles], np.ones(triangles.shape + (1,))], axis=2)  # K x 3 x 3
    area2 = np.linalg.det(t)
    valid = np.abs(area2) > 1e-6
    matrices = np.zeros((len(triangles), 3, 2))
    matrices[valid] = np.linalg.solve(t[valid], source[triangles[valid]])
    return matrices, valid


def _rasterise(target: np.ndarray, triangles: np.ndarray, box: tuple[int, int, int, int],
               folded: np.ndarray) -> np.ndarray:
    """An int32 image of ``box``'s size: the index of the target triangle covering each pixel, -1 where none.

    ``folded`` triangles are drawn first and only where no other triangle reaches; their pixels then take the index
    of a neighbouring unfolded triangle (its affine map extended by a pixel or two)."""
    x0, y0, x1, y1 = box
    index = np.full((y1 - y0, x1 - x0), -1, dtype=np.int32)
    corners = np.round((target[triangles] - [x0, y0]) * (1 << SHIFT)).astype(np.int32)  # K x 3 x 2
    for k in np.flatnonzero(folded):  # one call each: fillPoly's even-odd rule would leave overlaps empty
        cv2.fillPoly(index, [corners[k]], -2, lineType=cv2.LINE_8, shift=SHIFT)
    for k in np.flatnonzero(~folded):
        cv2.fillPoly(index, [corners[k]], int(k), lineType=cv2.LINE_8, shift=SHIFT)
    for _ in range(3):  # a collapsed mouth is a pixel or two high
        holes = index == -2
        if not holes.any():
            break
        # Triangle indices are below 2**24, exact in float32; the 3 x 3 maximum is a neighbouring triangle.
        grown = cv2.dilate(np.where(holes, -1, index).astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
        index[holes] = np.where(grown[holes] >= 0, grown[holes], -2)
    index[index == -2] = -1
    return index


def _ring_triangles(target: np.ndarray, boundary: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Delaunay triangles between the mesh's outer ``boundary`` and the anchor ``ring`` (indices into points + ring):
    those of the boundary points and anchors whose centre lies outside the boundary polygon."""
    points = np.concatenate([target[boundary], ring])
    simplices = Delaunay(points).simplices
    centres = points[simplices].mean(1)
    polygon = target[boundary].astype(np.float32).reshape(-1, 1, 2)
    outside = np.array([cv2.pointPolygonTest(polygon, (float(x), float(y)), False) < 0 for x, y in centres])
    index = np.concatenate([boundary, len(target) + np.arange(len(ring))])
    return index[simplices[outside]]


def backward_map(shape: tuple[int, int], source: np.ndarray, target: np.ndarray, ring_scale: float = 1.2,
                 triangulate_source: bool = False, triangles: np.ndarray | None = None,
                 boundary: np.ndarray | None = None, depth: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]] | None:
    """The backward piecewise-affine map of the points' motion inside a crop of ``shape`` (H, W).

    ``triangles`` (K x 3 point indices) with their outer ``boundary`` (point indices in order): the mesh's own
    triangles inside, Delaunay only between the boundary and the anchor ring. Without them, the Delaunay
    triangulation of all target points (``triangulate_source``: of the source points; triangulate the face whose
    mouth is open wider: its inner lips are far apart, so no triangle crosses from the upper lip to the lower one).
    A triangle that flips or collapses between the two layouts takes a neighbour's map (see ``_rasterise``). Where
    triangles overlap (a turned face's far side folds behind its cheek), the nearer wins: with ``depth`` (the points'
    depth, smaller is nearer) the triangles are drawn from the farthest, after the ring's, which only fill what the
    mesh leaves uncovered. Drawn in index order, the ring's triangles had cut straight lines through the far temple.

    Returns ``(map_x, map_y, moved, box)``: float32 source coordinates for every pixel of ``box`` (x0, y0, x1, y1),
    the bounding box of the triangles that move, and the mask of pixels inside a moving triangle (the others map to
    themselves); ``None`` when no point moves.
    """
    source = np.asarray(source, dtype=np.float64)[:, :2]
    target = np.asarray(target, dtype=np.float64)[:, :2]
    moving = np.abs(target - source).max(1) > _STILL
    if not moving.any():
        return None
    ring = anchor_ring(np.concatenate([source, target]), shape, ring_scale)
    all_source = np.concatenate([source, ring])
    all_target = np.concatenate([target, ring])
    if triangles is None:
        triangles = Delaunay(all_source if triangulate_source else all_target).simplices
    else:
        mesh_triangles = np.asarray(triangles, dtype=np.int64)
        if depth is not None:  # far to near
            mesh_triangles = mesh_triangles[np.argsort(-np.asarray(depth)[mesh_triangles].mean(1), kind="stable")]
        triangles = np.concatenate([_ring_triangles(target, np.asarray(boundary), ring), mesh_triangles])
    moving = np.concatenate([moving, np.zeros(len(ring), bool)])
    triangles = triangles[moving[triangles].any(1)]  # the triangles with a still corner only are the identity
    matrices, valid = _affines(all_target, all_source, triangles)
    triangles, matrices = triangles[valid], matrices[valid]
    # A triangle that flips, or collapses to under a quarter of its source area (a mouth closing over teeth), would
    # sample what the lips now cover; its pixels take a neighbouring triangle's map instead.
    area_target, area_source = area2(all_target, triangles), area2(all_source, triangles)
    folded = (np.sign(area_target) != np.sign(area_source)) | (np.abs(area_target) < 0.25 * np.abs(area_source))

    height, width = shape
    corners = all_target[triangles].reshape(-1, 2)
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, [width, height])
    box = (int(x0), int(y0), int(x1), int(y1))
    index = _rasterise(all_target, triangles, box, folded)

    # Index -1 (no moving triangle) picks the identity matrix appended last. One row gather of the flattened 3 x 2
    # matrices (x->sx, x->sy, y->sx, y->sy, 1->sx, 1->sy) per pixel.
    table = np.concatenate([matrices, [[[1, 0], [0, 1], [0, 0]]]]).reshape(-1, 6).astype(np.float32)
    rows = np.take(table, index, axis=0)  # h x w x 6
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    map_x = xs * rows[..., 0] + ys * rows[..., 2] + rows[..., 4]
    map_y = xs * rows[..., 1] + ys * rows[..., 3] + rows[..., 5]
    return map_x, map_y, index >= 0, box


def _ramp(start: int, stop: int, low: int, high: int) -> np.ndarray:
    """Per position in [start, stop): its distance in pixels from the nearer end, counting from 1, where that end is
    not the warp box's own (``low``, ``high``: nothing lies past those to ramp into)."""
    positions = np.arange(start, stop)
    rise = positions - start + 1 if start > low else np.full(len(positions), DETAIL_RAMP)
    fall = stop - positions if stop < high else np.full(len(positions), DETAIL_RAMP)
    return np.minimum(rise, fall)


def sample(crop: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, box: tuple[int, int, int, int],
           features: list[np.ndarray]) -> np.ndarray:
    """``crop`` sampled at the maps (``box``-sized): with ``SAMPLING`` around each feature (its points' box grown by
    ``DETAIL_MARGIN`` of its width), with ``SKIN_SAMPLING`` elsewhere, the two ramped into each other over
    ``DETAIL_RAMP`` pixels."""
    x0, y0, x1, y1 = box
    sampled = cv2.remap(crop, map_x, map_y, SKIN_SAMPLING, borderMode=cv2.BORDER_REFLECT)
    if SAMPLING == SKIN_SAMPLING:
        return sampled
    for points in features:
        low, high = points[:, :2].min(0), points[:, :2].max(0)
        reach = DETAIL_MARGIN * float(high[0] - low[0]) + DETAIL_RAMP
        fx0, fy0 = np.maximum(np.floor(low - reach).astype(int), [x0, y0])
        fx1, fy1 = np.minimum(np.ceil(high + reach).astype(int), [x1, y1])
        if fx1 - fx0 < 2 or fy1 - fy0 < 2:
            continue
        local = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
        sharp = cv2.remap(crop, map_x[local], map_y[local], SAMPLING, borderMode=cv2.BORDER_REFLECT)
        ramps = np.minimum(_ramp(fy0, fy1, y0, y1)[:, None], _ramp(fx0, fx1, x0, x1)[None, :])
        weight = np.clip(ramps / DETAIL_RAMP, 0.0, 1.0).astype(np.float32)
        sampled[local] = cv2.blendLinear(sharp, np.ascontiguousarray(sampled[local]), weight, 1.0 - weight)
    return sampled


# (image, gap alpha, input crop, source points, target points) -> the image with the new gap filled (in place), or
# None where the fill has nothing for this mouth (the image untouched)
MouthFill = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], "np.ndarray | None"]


def warp_crop(crop: np.ndarray, source: np.ndarray, target: np.ndarray, inner_lips: np.ndarray | None = None,
              outer_lips: np.ndarray | None = None, ring_scale: float = 1.2, feather: float = 1.5,
              triangles: np.ndarray | None = None, boundary: np.ndarray | None = None, fill: MouthFill | None = None,
              redraw: MouthRedraw | None = None, dark_mouth: bool = False, teeth: MouthFill | None = None,
              eyes: Sequence[tuple[Sequence[int], tuple[int, int]]] | None = None) -> WarpResult:
    """Move ``crop``'s ``source`` points (N x 2, or N x 3 with their depth, crop pixels) to ``target``, sampling the
    crop once.

    ``inner_lips``: the indices of the inner-lip contour in order around the mouth; with them, pixels inside the
    target's inner lips that would sample from outside the source's inner lips (lip stretched over a newly opened
    gap) get a dark mouth cavity, feathered over ``feather`` pixels inside the gap's edge. ``triangles`` and
    ``boundary``: the mesh's own triangles and outer contour (see :func:`backward_map`; :func:`warp_face` passes
    MediaPipe's); without them the points are Delaunay-triangulated. ``fill``: what goes into the new gap instead
    of the dark cavity (e.g. a real mouth's interior, :func:`exemplar_fill`). ``redraw``: a learned mouth
    (``mouth_redraw.learned_redraw``) that redraws the inside of the target lips where they close over what the
    source showed between them (instead of the seam); with ``outer_lips`` (their indices) it also redraws what of the
    source's real opening (:func:`real_opening`) the warp left outside the target lips. ``dark_mouth``: a mouth that
    opens gets the dark cavity over its whole opening, not only where it is new (a gasp's dropped jaw hides the
    teeth a smile or a snarl showed, which the map would otherwise stretch into a tall grid), and no ``fill``.
    ``teeth`` (e.g. :func:`exemplar_gasp_teeth`): drawn over any new dark cavity (a gasp's, or a mouth no ``fill``
    fits), the edges of the upper teeth under the upper lip, as an open mouth shows them.
    ``eyes``: per eye, its contour's indices in order around the opening and its two corners' indices; the iris then
    keeps its shape while the lids move over it, and what they uncover is drawn (:mod:`.eye_interior`).
    """
    crop = np.asarray(crop)
    if crop.dtype != np.uint8 or crop.ndim not in (2, 3):
        raise ValueError(f"warp_crop expects an H x W (x C) uint8 crop, got {crop.dtype} {crop.shape}")
    source = np.asarray(source, dtype=np.float64)
    depth = source[:, 2] if source.shape[1] > 2 else None  # orders overlapping triangles, nearest drawn last
    source = source[:, :2]
    target = np.asarray(target, dtype=np.float64)[:, :2]
    if source.shape != target.shape:
        raise ValueError(f"source and target points differ in shape: {source.shape} vs {target.shape}")
    # A closing mouth: the source's lips parted (teeth or a dark mouth between them) and the target's less so. Lips
    # that were already together get no seam and no inward sampling, whatever their area's small changes; so do lips
    # the mesh holds apart onto more lip (with ``outer_lips``: thick, glossy lips, where the learned mouth drew a
    # pale band with coloured fringes over a closed mouth).
    wider_source = inner_lips is not None and is_open(source, inner_lips) and \
        closed_share(source[inner_lips], target[inner_lips]) > 0 and \
        (outer_lips is None or shows_between_lips(crop, source[inner_lips], source[outer_lips]))
    sample_from = into_the_lips(source, target, inner_lips) if wider_source else source
    mapped = backward_map(crop.shape[:2], sample_from, target, ring_scale, triangulate_source=wider_source,
                          triangles=triangles, boundary=boundary, depth=depth)
    if mapped is None:
        return WarpResult(crop.copy(), None, None)
    map_x, map_y, changed, (x0, y0, x1, y1) = mapped
    irises = steady_irises(crop, source, target, eyes, (x0, y0, x1, y1), map_x, map_y, changed, _STILL) if eyes \
        else []
    lips = outer_lips if outer_lips is not None else inner_lips
    features = ([target[lips]] if lips is not None else []) + [target[list(contour)] for contour, _ in eyes or []]
    sampled = sample(crop, map_x, map_y, (x0, y0, x1, y1), features)
    out = crop.copy()
    region = out[y0:y1, x0:x1]
    np.copyto(region, sampled, where=changed if crop.ndim == 2 else changed[..., None])
    draw_irises(out, irises)

    gap, redrawn = None, None
    if wider_source:
        if redraw is not None:
            leftover = None
            if outer_lips is not None:
                # A mesh that under-tracks a wide-open mouth (a 48-px gasp) puts its lips inside the dark cavity, so
                # its closing lips were cavity too: what of the real opening the warp carried (or left where nothing
                # moved) is redrawn as well.
                opening = real_opening(crop, source[inner_lips], source[outer_lips])
                if mesh_missed(opening, source[inner_lips], source[outer_lips], target[inner_lips]):
                    leftover = opening.copy()
                    leftover[y0:y1, x0:x1] = cv2.remap(opening, map_x, map_y, cv2.INTER_NEAREST,
                                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            redrawn = redraw(out, crop, source, target, leftover if leftover is not None and leftover.any() else None)
        else:
            out = draw_seam(out, target[inner_lips], cavity_colour(crop, source[inner_lips]))
    elif inner_lips is not None:
        gap_box = new_gap(crop.shape[:2], source[inner_lips], target[inner_lips], map_x, map_y, (x0, y0, x1, y1),
                          feather)
        if gap_box is not None and dark_mouth:
            gap_box = whole_opening(crop.shape[:2], target[inner_lips], feather)
        if gap_box is not None:
            gap = gap_box
            filled = fill(out, gap, crop, source, target) if fill is not None and not dark_mouth else None
            if filled is not None:
                out = filled
            else:
                out = mouth_cavity(out, gap, cavity_colour(crop, source[inner_lips]), target[inner_lips])
                if teeth is not None:
                    out = teeth(out, gap, crop, source, target)
    box = (x0, y0, x1, y1)  # the moving triangles' bounds
    if gap is not None or redrawn is not None:
        reach = redrawn or box_around(crop.shape[:2], target[inner_lips], margin=1)
        box = (min(x0, reach[0]), min(y0, reach[1]), max(x1, reach[2]), max(y1, reach[3]))
    return WarpResult(out, box, gap)


def warp_face(crop: np.ndarray, source: np.ndarray, target: np.ndarray, mouth=None, exemplars=None, shading=None,
              expressions: dict[str, float] | None = None, brows=None, lower_face=None, eyes=None,
              expression: str | None = None, intensity: float = 1.0, **options) -> WarpResult:
    """:func:`warp_crop` for MediaPipe Face Mesh points (468 x 3, or x 2 without the depth that orders overlapping
    triangles): its triangles (with the mouth and eye strips), its face oval as the boundary to the anchor ring, its
    inner lips for the mouth.

    ``mouth``: the learned mouth (anything with ``inpaint``, i.e. ``MouthInpainterModel``), which redraws lips that
    close over teeth (:func:`~.mouth_redraw.learned_redraw`), or a bank of open mouths (anything with
    ``closest(inner_lips) -> mouth_fill.Exemplar | None``, e.g. ``MouthExemplarsModel``) whose nearest interior fills
    a newly opened mouth of a colour crop (:func:`exemplar_fill`). ``exemplars``: with the learned mouth, that bank
    for the lips that part. A parting mouth that no stored smile fits (a round, surprised one) gets the dark cavity;
    on a colour crop with a bank, the cavity shows the edges of a stored mouth's upper teeth under the upper lip.
    ``shading``: the skin's expression shading (anything with ``shade_with_box(image, source, target, expressions)``,
    i.e. ``ExpressionShadingModel``), applied after the warp: a smile's folds and lifted cheeks appear, or fade when a
    smile is undone; and the furrows of ``expressions`` (``{expression: weight}``, negative: taken away).
    ``brows``: the learned brows (anything with ``inpaint(windows, holes, maps, target)``, i.e. ``BrowInpainterModel``),
    which redraw the upper face for the target ``expression`` at ``intensity`` (:func:`~.region_redraw.learned_region`),
    last: a frown's furrows and lowered brows, which neither the warp nor the shading takes away, go. ``lower_face``:
    the learned lower face (``LowerFaceInpainterModel``), which redraws the cheeks, folds and lips the same way, before
    the brows: an undone smile's folds and lit cheeks go, where the shading would darken them into a blot. ``eyes``:
    the learned eyes (``EyesInpainterModel``), which redraw the eyes, their lids and the skin up to the brows, after the
    lower face and before the brows: a squint opened by the warp is its dark slit stretched into a blot. For the
    targets of ``CLEARED_TARGETS`` the regions that do not draw the target draw theirs neutral before the shading.

    Why the learned mouth does not open mouths here: at 1024 px its teeth are softer than an exemplar's real ones, and
    on round surprised mouths it drew lips and teeth where the dark cavity read as surprise (held-out success, SA-GAN
    → surprise on the paper set: 36% against the cavity's 56%)."""
    from .mesh_topology import (EYE_CONTOURS, EYE_TRIANGLES, FACE_OVAL, LIPS_INNER, LIPS_OUTER, MOUTH_TRIANGLES,
                                TRIANGLES)

    colour = np.asarray(crop).ndim == 3
    if mouth is not None and hasattr(mouth, "inpaint"):
        options["redraw"] = learned_redraw(mouth)
        bank = exemplars
    else:
        bank = mouth
    if bank is not None and colour:
        options["fill"] = exemplar_fill(bank)
        options["teeth"] = exemplar_gasp_teeth(bank, laugh=expression in LAUGHING_TARGETS)
    result = warp_crop(crop, source, target, inner_lips=np.array(LIPS_INNER), outer_lips=np.array(LIPS_OUTER),
                       triangles=np.array(TRIANGLES + MOUTH_TRIANGLES + EYE_TRIANGLES), boundary=np.array(FACE_OVAL),
                       eyes=EYE_CONTOURS, **options)
    redraws = [model for model in (lower_face, eyes, brows) if model is not None] if expression is not None else []
    if result.box is None and not redraws:
        return result
    image, changed = result.image, [result.box]  # a copy of the crop, even where nothing moved
    if expression in CLEARED_TARGETS:
        # The regions with no drawing of the target draw theirs neutral first: the source's folds and furrows go
        # there, so the shading only adds the target's (taking the source's away again would lighten the skin).
        cleared = [learned_region(model, max_lost_detail=CLEARING_MAX_LOST_DETAIL)(image, target, "neutral", intensity)
                   for model in redraws if not draws(model, expression)]
        if any(box is not None for box in cleared) and expressions:
            expressions = {name: weight for name, weight in expressions.items() if weight > 0}
        changed.extend(cleared)
    if shading is not None and result.box is not None:
        image, shaded = shading.shade_with_box(image, np.asarray(source)[:, :2], target, expressions)
        changed.append(shaded)
    for model in redraws:
        before = image.copy() if model is eyes and draws(model, expression) else None  # what keep_irises needs
        changed.append(learned_region(model)(image, target, expression, intensity))
        if before is not None and changed[-1] is not None:
            keep_irises(image, before, np.asarray(source), target, EYE_CONTOURS)
    boxes = [box for box in changed if box is not None]
    if not boxes:
        return result
    box = tuple(int(f(values)) for f, values in zip((min, min, max, max), zip(*boxes)))
    return WarpResult(image, box, result.gap)


# A mouth already open onto its own teeth and opened at most this many times taller keeps its own teeth, stretched:
# 1.64 times on the astronaut's broad smile taken to happy, where the stored teeth filling the new rows around hers
# drew a mosaic with a chipped tooth; at 2.3 times (a London smile) they became fangs, and a stored mouth is better.
OWN_TEETH_MAX_STRETCH = 1.8


def own_interior_fill(image: np.ndarray, gap: np.ndarray, crop: np.ndarray, source_lips: np.ndarray,
                      target_lips: np.ndarray) -> np.ndarray:
    """The whole opening between ``target_lips`` (and ``gap``) filled with the crop's own interior between
    ``source_lips`` (20 x 2 each), mapped polygon to polygon at the crop's resolution (cubic), into ``image`` in
    place."""
    alpha = whole_opening(crop.shape[:2], target_lips)
    alpha = gap if alpha is None else np.maximum(alpha, gap)
    ys, xs = np.nonzero(alpha > 0)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # Inset a little: the mesh's inner-lip line often lies on the lip, whose pink must not be stretched in.
    warped, _ = piecewise_affine(crop[..., :3], inset(source_lips, 0.05), inset(target_lips, 0.05),
                                 (y1 - y0, x1 - x0), (x0, y0), cv2.INTER_CUBIC)
    a = alpha[y0:y1, x0:x1][..., None]
    region = image[y0:y1, x0:x1]
    blended = np.clip(np.round(region * (1.0 - a) + warped.astype(np.float32) * a), 0, 255).astype(np.uint8)
    np.copyto(region, blended, where=a > 0)
    return image


def lips_and_greyness(crop: np.ndarray, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool]:
    """What a stored mouth is relit and coloured by: the mean colour of the source's lips (between the outer and inner
    contours), and whether the photo around the mouth is grey (a grey photo in RGB gets grey teeth)."""
    from .mesh_topology import LIPS_INNER, LIPS_OUTER

    inner, outer = list(LIPS_INNER), list(LIPS_OUTER)
    x0, y0, x1, y1 = box_around(crop.shape[:2], source[outer], target[outer])
    grey = not np.abs(np.diff(crop[y0:y1, x0:x1, :3].astype(np.int16), axis=2)).any()
    return region_mean(crop[..., :3], source[outer], source[inner]), grey


def exemplar_fill(mouth) -> MouthFill:
    """The fill that warps ``mouth.closest(target inner lips)`` into the new gap, relit to the source's lips (and, where
    the source's mouth was already open, coloured like its own teeth); None where the bank has no mouth close enough
    (the caller paints the dark cavity). A mouth already open onto its own teeth and opened at most
    ``OWN_TEETH_MAX_STRETCH`` times taller keeps its own interior instead (:func:`own_interior_fill`)."""
    from .mesh_topology import LIPS_INNER

    def fill(image, gap, crop, source, target):
        inner = list(LIPS_INNER)
        person_lips, grey = lips_and_greyness(crop, source, target)
        # The person's own teeth show: the stored ones take their colour. A dark open mouth (a gasp) has none to
        # give, and would darken them.
        own = own_teeth(crop, source)
        if own is not None and opening_height(target[inner]) <= OWN_TEETH_MAX_STRETCH * opening_height(source[inner]):
            return own_interior_fill(image, gap, crop, source[inner], target[inner])
        exemplar = mouth.closest(target[inner])
        if exemplar is None:  # no stored mouth has this shape
            return None
        return fill_mouth(image, gap, target[inner], exemplar, person_lips, grey=grey, own_interior=own)

    return fill


GASP_TEETH_MIN_CLARITY = 0.6  # 6 of the 28 committed exemplars' upper teeth end this cleanly (edge_clarity)
LAUGHING_TARGETS = ("happy",)  # a dark opening shows a laugh's whole upper teeth, not a gasp's edges
# Targets for which the learned regions that do not draw them (the lower face and the brows for anger) first redraw
# their region neutral, before the shading: a disgusted nose's wrinkles or a sad forehead's lines no longer show
# through a frown. SA-GAN → angry on 360 validation crops (classifier / second reader / both): 228 / 210 / 147 →
# 267 / 221 / 187. Not for disgust (of 72: 20 / 0 / 0 → 22 / 0 / 0, its misses then read as angry, and the neutral
# eyes blotched), sad (45 / 25 / 23 → 41 / 16 / 8) nor fear (33 / 9 / 6 → 27 / 9 / 4).
CLEARED_TARGETS = ("angry",)
# Only on faces no sharper than the regions' frame (``AlignedFrame.lost_detail``, grey levels): on JAFFE's sharp
# 256-px photos the brows' neutral drawing lightened the brows under a pale band and weakened the frown's knot (the
# second reader took 3 of the 36 validation photos for neutral).
CLEARING_MAX_LOST_DETAIL = 3.0


def exemplar_gasp_teeth(mouth, laugh: bool = False) -> MouthFill:
    """What a dark opening (a gasp's, or one no stored smile fits) gets on a colour photo: the edges of the upper
    teeth of the stored mouth nearest the target's inner lips (whatever the distance) among those whose teeth end
    cleanly (``mouth.edge_clarities()`` at least ``GASP_TEETH_MIN_CLARITY``), relit to the source's lips
    (:func:`~.mouth_fill.gasp_teeth`). ``laugh``: a smile opened wider than any stored one (happy with the mouth
    opened): the whole upper teeth, in the stored smile's proportions (:func:`~.mouth_fill.laugh_teeth_show`); with a
    gasp's edges alone it read as a yawn, a dark hole under a thin white line."""
    from .mesh_topology import LIPS_INNER

    def teeth(image, gap, crop, source, target):
        inner = list(LIPS_INNER)
        person_lips, grey = lips_and_greyness(crop, source, target)
        clarity = mouth.edge_clarities()
        clean = clarity >= min(GASP_TEETH_MIN_CLARITY, clarity.max())
        index = int(np.argmin(np.where(clean, mouth.distances(target[inner]), np.inf)))
        exemplar = mouth.exemplar(index)
        if not laugh:
            return gasp_teeth(image, gap, target[inner], exemplar, person_lips, grey=grey)
        show, rows_per_width = laugh_teeth_show(exemplar, opening_height(mouth.shape(index)))
        return gasp_teeth(image, gap, target[inner], exemplar, person_lips, grey=grey, show=show,
                          rows_per_width=rows_per_width, light=LAUGH_TEETH_LIGHT, tips=LAUGH_TEETH_TIPS)

    return teeth
