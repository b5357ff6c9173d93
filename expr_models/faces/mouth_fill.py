"""A newly opened mouth filled with a real open mouth's interior (teeth, gums, cavity), warped and relit.

    frame = to_mouth_frame(photo, inner_lips)                 # 48 x 128 interior in the fixed template polygon
    shape = lip_shape(inner_lips)                             # 20 x 2, normalised by the mouth's width
    image = fill_mouth(image, gap, target_lips, exemplar, person)   # blended where ``gap`` > 0
    image = gasp_teeth(image, gap, target_lips, exemplar, person)   # a dark opening: the upper teeth's edges only

The mouth frame: the 20 inner-lip points (``mesh_topology.LIPS_INNER``: 11 upper from corner to corner, then 9 lower
back) go to a fixed template polygon, and the quads between facing upper and lower points (two triangles each, as
MediaPipe's mouth strip) are mapped piecewise-affinely. The same strip maps a stored interior into any target
polygon, point for point, so an exemplar's teeth follow the target's corners and lip line.

Relighting (:func:`relight`): the exemplar's interior is scaled so that its teeth are as bright as real smiles' teeth
are under lips as bright as the person's (``TEETH_LIGHT``), a gain clipped to a moderate range, and its highlights are
compressed so that teeth never burn out to pure white. Its colour moves with the photo's cast as real teeth's do with
the lips' (``TEETH_CHROMA``); near the lips, and wherever no tooth is (gums, cavity), it is tinted toward the person's
lip colour (the lip's inner edge, in shadow).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .grain import with_grain

FRAME_WIDTH = 128  # about a London smile's inner-lip width (103-140 px in the 1024 px photos): teeth stay sharp
FRAME_HEIGHT = 48
UPPER = 11  # inner-lip points from corner to corner along the upper lip; the lower lip's 9 follow, back
GAIN_RANGE = (0.6, 1.5)   # how far the exemplar's brightness may be scaled toward the person's
# How bright a smile's teeth are (``teeth_level``) under lips of luminance L (the person's closed lips, as the editor
# sees them): about exp(a) * L ** b. Fitted on 1,660 GENKI-4K smiles (exposures of every kind) and 30 London Set
# training people's neutral lips and real smiles (studio light, every skin tone), each set weighing the same; residual
# 0.12 (GENKI-4K) and 0.16 (London) in log. ``benchmarks/teeth_brightness.py --fit`` refits it. Scaling by the lips
# alone (b = 1) blew a pale-lipped man's teeth out to flat white; GENKI-4K alone (b = 0.63) greyed dark-skinned
# people's.
TEETH_LIGHT = (2.738, 0.523)
# The teeth's colour under lips of a colour: their mean log(R/G) and log(B/G), each a + b * the lips' own. Fitted on
# the same smiles, the same way (``benchmarks/teeth_brightness.py --fit``); residual 0.075 and 0.050 (GENKI-4K) in log.
# GENKI-4K's casts vary (warm lamps, daylight, faded prints) and the teeth take about half of the lips'. Set unchanged
# into a warm photo (an orange-tinted print), the studio-lit London teeth came out a grey-blue band.
TEETH_CHROMA = ((-0.023, 0.455), (-0.041, 0.533))
MAX_CAST = 0.5            # the most a stored mouth's colour is shifted, in log(R/G) and log(B/G)
TEETH_ABOVE_LIPS = 1.1    # teeth: the opening's pixels brighter than the lips by this factor
HIGHLIGHT_KNEE = 200.0    # above it, values are compressed toward HIGHLIGHT_MAX (no pure-white teeth)
HIGHLIGHT_MAX = 235.0
SHADE = 0.3               # how much darker the fill is at the lip line than in the middle


def _strip() -> np.ndarray:
    """Triangles (indices into the 20-point polygon) between facing upper and lower points."""
    upper = list(range(UPPER))
    lower = [0] + list(range(2 * UPPER - 3, UPPER - 1, -1)) + [UPPER - 1]  # 0, 19, 18, ..., 11, 10
    triangles = []
    for k in range(UPPER - 1):
        a, b, c, d = upper[k], upper[k + 1], lower[k], lower[k + 1]
        for tri in ((a, b, d), (a, d, c)):
            if len(set(tri)) == 3:
                triangles.append(tri)
    return np.array(triangles)


STRIP = _strip()


def template_polygon(width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> np.ndarray:
    """The fixed polygon (20 x 2, frame pixels) the inner lips are mapped onto: corners at mid-height, the upper and
    lower points at the same ``x`` on a half-ellipse each."""
    t = np.linspace(0.0, 1.0, UPPER)
    x = 1.0 + (width - 3.0) * t
    bulge = (height / 2 - 1.0) * np.sin(np.pi * t)
    upper = np.stack([x, height / 2 - bulge], 1)
    lower = np.stack([x, height / 2 + bulge], 1)[1:-1][::-1]
    return np.concatenate([upper, lower])


TEMPLATE = template_polygon()


def piecewise_affine(image: np.ndarray, source: np.ndarray, target: np.ndarray, shape: tuple[int, int],
                     offset: tuple[float, float] = (0.0, 0.0), interpolation: int = cv2.INTER_LINEAR
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``image`` sampled so that its ``source`` polygon (20 x 2) lands on ``target`` (in an output of ``shape``,
    whose pixel (0, 0) is ``offset`` in the target's coordinates), strip triangle by strip triangle. Returns the
    output and the mask of pixels a triangle covers (the rest sample the nearest border)."""
    height, width = shape
    target = np.asarray(target, np.float64) - offset
    source = np.asarray(source, np.float64)
    index = np.full(shape, -1, np.int32)
    table = []
    for k, tri in enumerate(STRIP):
        t = np.concatenate([target[tri], np.ones((3, 1))], 1)
        if abs(np.linalg.det(t)) < 1e-6:
            table.append(np.zeros((3, 2)))
            continue
        table.append(np.linalg.solve(t, source[tri]))
        cv2.fillPoly(index, [np.round(target[tri] * 16).astype(np.int32)], k, lineType=cv2.LINE_8, shift=4)
    covered = index >= 0
    if covered.any() and not covered.all():
        # Pixels just outside the polygon take the nearest covered pixel's triangle (a pixel or two at the rim).
        _, labels = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        ys, xs = np.nonzero(covered)
        nearest = np.zeros(labels.max() + 1, np.int32)
        nearest[labels[ys, xs]] = index[ys, xs]
        index = nearest[labels]
    rows = np.asarray(table).reshape(-1, 6)[np.maximum(index, 0)]
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    map_x = (xs * rows[..., 0] + ys * rows[..., 2] + rows[..., 4]).astype(np.float32)
    map_y = (xs * rows[..., 1] + ys * rows[..., 3] + rows[..., 5]).astype(np.float32)
    out = cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out, covered


def inset(inner_lips: np.ndarray, amount: float) -> np.ndarray:
    """``inner_lips`` (20 x 2) with each upper point and its facing lower point moved toward each other by
    ``amount`` of their distance (the mesh's inner-lip line often lies a little on the lip)."""
    lips = np.asarray(inner_lips, np.float64)[:, :2].copy()
    upper = np.arange(1, UPPER - 1)
    lower = 2 * UPPER - 2 - upper  # upper k faces polygon point 20 - k
    step = (lips[lower] - lips[upper]) * amount
    lips[upper] += step
    lips[lower] -= step
    return lips


def opening_height(inner_lips: np.ndarray) -> float:
    """The mean distance between each upper inner-lip point and the lower one facing it (pixels of the points)."""
    lips = np.asarray(inner_lips, np.float64)[:, :2]
    upper = np.arange(1, UPPER - 1)
    return float(np.linalg.norm(lips[2 * UPPER - 2 - upper] - lips[upper], axis=1).mean())


def to_mouth_frame(photo: np.ndarray, inner_lips: np.ndarray, amount: float = 0.1) -> np.ndarray:
    """The open mouth's interior inside ``inner_lips`` (20 x 2, photo pixels; inset by ``amount``, see
    :func:`inset`) in the mouth frame (48 x 128 x 3)."""
    return piecewise_affine(photo, inset(inner_lips, amount), TEMPLATE, (FRAME_HEIGHT, FRAME_WIDTH))[0]


def teeth_contrast(interior: np.ndarray, lip_colour: np.ndarray) -> float:
    """The 75th percentile luminance of the frame's middle (half its width, a third of its height) over the lips':
    about 1.5 or more where teeth show, about 1 for lips or a dark cavity."""
    h, w = interior.shape[:2]
    middle = luminance(interior[h // 3:2 * h // 3, w // 4:3 * w // 4])
    return float(np.percentile(middle, 75) / max(float(luminance(lip_colour)), 1.0))


def lip_shape(inner_lips: np.ndarray) -> np.ndarray:
    """The inner-lip polygon (20 x 2) in the mouth's own frame: inner corners at (-0.5, 0) and (0.5, 0)."""
    lips = np.asarray(inner_lips, np.float64)[:, :2]
    left, right = lips[0], lips[UPPER - 1]
    along = right - left
    width = max(float(np.linalg.norm(along)), 1e-6)
    along /= width
    down = np.array([-along[1], along[0]])
    centred = lips - (left + right) / 2
    return np.stack([centred @ along, centred @ down], 1) / width


def region_mean(photo: np.ndarray, outer: np.ndarray, inner: np.ndarray | None = None) -> np.ndarray:
    """The mean colour (float32, C) inside polygon ``outer`` less polygon ``inner``."""
    points = np.concatenate([outer] + ([inner] if inner is not None else []))[:, :2]
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + 2, [photo.shape[1], photo.shape[0]])
    window = photo[y0:y1, x0:x1].reshape(y1 - y0, x1 - x0, -1)
    mask = np.zeros(window.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round((outer[:, :2] - [x0, y0]) * 16).astype(np.int32)], 1, shift=4)
    if inner is not None:
        cv2.fillPoly(mask, [np.round((inner[:, :2] - [x0, y0]) * 16).astype(np.int32)], 0, shift=4)
    pixels = window[mask > 0].astype(np.float32)
    return pixels.mean(0) if len(pixels) else window.reshape(-1, window.shape[2]).astype(np.float32).mean(0)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luminance over the last axis (float32); a grey last axis (one channel) is its own luminance."""
    rgb = np.asarray(rgb, np.float32)
    if rgb.shape[-1] < 3:
        return rgb[..., 0]
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


@dataclass
class Exemplar:
    """One stored open mouth: its interior in the mouth frame (48 x 128 x 3 uint8) and its lips' mean colour."""

    interior: np.ndarray
    lip_colour: np.ndarray  # RGB float32


def teeth_pixels(pixels: np.ndarray, lip_colour: np.ndarray) -> np.ndarray | None:
    """The teeth among ``pixels`` (RGB, any shape x 3): those brighter than the lips by ``TEETH_ABOVE_LIPS`` (N x 3
    float32); None where fewer than 20 are."""
    pixels = np.asarray(pixels, np.float32).reshape(-1, 3)
    teeth = pixels[luminance(pixels) > TEETH_ABOVE_LIPS * max(float(luminance(lip_colour)), 1.0)]
    return teeth if len(teeth) >= 20 else None


def teeth_level(pixels: np.ndarray, lip_colour: np.ndarray) -> float | None:
    """How bright the teeth among ``pixels`` (RGB, any shape x 3) are: the 75th percentile luminance of
    :func:`teeth_pixels`; None where there are none."""
    teeth = teeth_pixels(pixels, lip_colour)
    return float(np.percentile(luminance(teeth), 75)) if teeth is not None else None


def expected_teeth_level(lip_colour: np.ndarray) -> float:
    """How bright real smiles' teeth are under lips of this colour (``TEETH_LIGHT``)."""
    a, b = TEETH_LIGHT
    return float(np.exp(a) * max(float(luminance(lip_colour)), 1.0) ** b)


def log_chroma(rgb: np.ndarray) -> np.ndarray:
    """The mean log(R/G) and log(B/G) of RGB pixels (any shape x 3)."""
    rgb = np.maximum(np.asarray(rgb, np.float64).reshape(-1, 3), 1.0)
    return np.array([np.log(rgb[:, 0] / rgb[:, 1]).mean(), np.log(rgb[:, 2] / rgb[:, 1]).mean()])


def teeth_cast(exemplar: Exemplar, person_lips: np.ndarray) -> np.ndarray:
    """Per-channel gains (3,) that give the exemplar's teeth the colour real teeth have under the person's lips
    (``TEETH_CHROMA``), their luminance kept. A stored mouth with no teeth to measure moves by the law's slope times
    the difference between the two lips' colours instead."""
    teeth = teeth_pixels(exemplar.interior, exemplar.lip_colour)
    (a_red, b_red), (a_blue, b_blue) = TEETH_CHROMA
    lips = log_chroma(person_lips)
    if teeth is not None:
        shift = np.array([a_red + b_red * lips[0], a_blue + b_blue * lips[1]]) - log_chroma(teeth)
    else:
        shift = np.array([b_red, b_blue]) * (lips - log_chroma(exemplar.lip_colour))
    shift = np.clip(shift, -MAX_CAST, MAX_CAST)
    gains = np.array([np.exp(shift[0]), 1.0, np.exp(shift[1])], np.float32)
    reference = teeth.mean(0) if teeth is not None else np.asarray(exemplar.lip_colour, np.float32)
    return gains * float(luminance(reference)) / max(float(luminance(reference * gains)), 1e-6)


def relight(interior: np.ndarray, exemplar: Exemplar, person_lips: np.ndarray, cast: np.ndarray | None = None
            ) -> np.ndarray:
    """``interior`` (float32 RGB, ``exemplar``'s, warped) scaled so that the exemplar's teeth come out as bright as
    real teeth under the person's lips (:func:`expected_teeth_level`; clipped to ``GAIN_RANGE``) and in their colour
    (:func:`teeth_cast`), highlights above ``HIGHLIGHT_KNEE`` compressed toward ``HIGHLIGHT_MAX``. A stored mouth
    with no teeth to measure is scaled by the lips' luminance ratio instead. ``cast``: :func:`teeth_cast`, where the
    caller has it already."""
    stored = teeth_level(exemplar.interior, exemplar.lip_colour)
    gain = expected_teeth_level(person_lips) / stored if stored else \
        float(luminance(person_lips)) / max(float(luminance(exemplar.lip_colour)), 1.0)
    gain = float(np.clip(gain, *GAIN_RANGE))
    lit = interior * gain * (teeth_cast(exemplar, person_lips) if cast is None else cast)
    room = HIGHLIGHT_MAX - HIGHLIGHT_KNEE
    over = np.maximum(lit - HIGHLIGHT_KNEE, 0.0)
    return np.where(lit > HIGHLIGHT_KNEE, HIGHLIGHT_KNEE + room * (1.0 - np.exp(-over / room)), lit)


def fill_mouth(image: np.ndarray, gap: np.ndarray, target_lips: np.ndarray, exemplar: Exemplar,
               person_lips: np.ndarray, edge: float = 0.18, grey: bool = False,
               own_interior: np.ndarray | None = None) -> np.ndarray:
    """Blend the exemplar's relit interior, warped into ``target_lips`` (20 x 2, image pixels), into ``image`` (in
    place, H x W x 3 uint8) with alpha ``gap``; pixels where ``gap`` is 0 keep their bytes. Within ``edge`` of the
    mouth's height from the lips the fill takes the person's lip colour's hue (the exemplar's lips may differ) and
    darkens by up to ``SHADE``.
    ``grey``: the fill is made grey (its luminance in every channel), for a grey photo. ``own_interior`` (N x 3, the
    pixels between the person's own parted lips, where the mouth was already open): the fill takes their colour, each
    channel's mean and spread over the gap matched to theirs, so a stranger's teeth set among the person's own do not
    show as a grey-blue patch."""
    lips = np.asarray(target_lips, np.float64)[:, :2]
    ys, xs = np.nonzero(gap > 0)
    if not len(ys) or image.ndim != 3:
        return image
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # Cubic: the stored frame is usually enlarged a little, and the teeth's edges should stay crisp.
    keyed = np.dstack([exemplar.interior.astype(np.float32),
                       teeth_alpha(exemplar.interior, exemplar.lip_colour) * 255.0])
    warped, _ = piecewise_affine(keyed, TEMPLATE, lips, (y1 - y0, x1 - x0), (x0, y0), cv2.INTER_CUBIC)
    cast = teeth_cast(exemplar, person_lips)
    fill = relight(warped[..., :3], exemplar, person_lips, cast)
    tissue = 1.0 - np.clip(warped[..., 3:] / 255.0, 0.0, 1.0)  # gums, the lips' wet inside, the cavity
    # Tint toward the person's lips near the lip line and wherever no tooth is: the exemplar's colour ratio swapped
    # for the person's. Left in their own colours, its gums and inner lips were a grey-violet band in a warm photo.
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((lips - [x0, y0]) * 16).astype(np.int32)], 1, shift=4)
    distance = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    height = max(float(np.ptp(lip_shape(lips)[:, 1])) * float(np.linalg.norm(lips[UPPER - 1] - lips[0])), 2.0)
    near = np.exp(-distance / max(edge * height, 0.5))[..., None]
    # The exemplar's lips as the fill now has them: :func:`relight` has already moved its colours part way.
    stored_lips = np.asarray(exemplar.lip_colour, np.float32) * cast
    ratio = (np.maximum(person_lips, 1.0) / max(float(luminance(person_lips)), 1.0)) / \
        (np.maximum(stored_lips, 1.0) / max(float(luminance(stored_lips)), 1.0))
    # ... and is shaded there (the lips and cheeks hide the light from the mouth's rim and corners).
    fill = fill * (1.0 - np.maximum(near, tissue) * (1.0 - ratio[None, None, :])) * (1.0 - SHADE * near)
    if own_interior is not None and len(own_interior) >= 30:
        inside = gap[y0:y1, x0:x1] > 0.5
        if inside.sum() >= 10:
            own = np.asarray(own_interior, np.float32).reshape(-1, 3)
            mean, spread = fill[inside].mean(0), fill[inside].std(0)
            scale = np.clip(own.std(0) / np.maximum(spread, 1.0), 0.5, 2.0)
            fill = (fill - mean) * scale + own.mean(0)
    if grey:
        fill = np.repeat(luminance(fill)[..., None], 3, axis=2)
    a = gap[y0:y1, x0:x1][..., None]
    region = image[y0:y1, x0:x1]
    # The stored frame is 128 px wide: enlarged into a large mouth, or relit, it is smoother than the photo around it.
    fill = with_grain(fill, region, a[..., 0] > 0.5, a[..., 0] == 0)
    blended = np.clip(np.round(region * (1.0 - a) + fill * a), 0, 255).astype(np.uint8)
    np.copyto(region, blended, where=a > 0)
    return image


# A gasp's dropped jaw shows the edges of the upper teeth under the upper lip, in the mouth's shadow.
GASP_TEETH_SHOW = 0.08          # how far they show below the lip, mid-mouth, in mouth widths (at most GASP_TEETH_MAX)
GASP_TEETH_MAX = 0.4            # ... of the opening's height there
GASP_TEETH_LIGHT = (0.75, 0.3)  # their brightness against the stored smile's, mid-mouth and at the corners
GASP_TEETH_SIDE_FADE = 0.3      # the teeth fade out over this much of the mouth's width from each corner
GASP_TEETH_TIPS = 0.5           # the band sampled past the incisal edge, over the band's height: the tips' own shapes
# A smile opened wide (a laugh: happy with the mouth open past every stored smile) shows the whole upper teeth, as
# far below the lip as the stored smile shows them, at most this many mouth widths (the 28 committed smiles: 0.17 at
# the median, 0.31 at most), lit nearly as a smile's are.
LAUGH_TEETH_SHOW = 0.2
LAUGH_TEETH_LIGHT = (0.95, 0.45)
LAUGH_TEETH_TIPS = 0.15  # a gasp's share reached the stored smile's lower teeth: a white fleck in the cavity


def incisal_edge(interior: np.ndarray) -> np.ndarray:
    """Where a stored mouth frame's upper teeth end, per frame column (``FRAME_WIDTH`` rows, float): the steepest
    fall of brightness down each column of the lower half (teeth above, the dark gap or the lower lip below),
    smoothed by a parabola fitted over the middle half of the columns, where the teeth surely show."""
    lum = cv2.GaussianBlur(luminance(np.asarray(interior, np.float32)), (0, 0), 1.0)
    fall = lum[:-1] - lum[1:]  # row r: how much darker row r + 1 is
    low = FRAME_HEIGHT // 3
    columns = np.arange(FRAME_WIDTH // 4, 3 * FRAME_WIDTH // 4)
    rows = low + np.argmax(fall[low:, columns], axis=0) + 1.0
    fit = np.polyfit(columns, rows, 2)
    return np.clip(np.polyval(fit, np.arange(FRAME_WIDTH)), low, FRAME_HEIGHT - 1.0)


def teeth_alpha(interior: np.ndarray, lip_colour: np.ndarray) -> np.ndarray:
    """How much each pixel of a stored mouth frame is tooth (``FRAME_HEIGHT x FRAME_WIDTH``, 0-1): brighter than
    the lips by a margin, ramping to 1 a third of the way from there to the bright teeth; the lips, the gums and the
    dark gaps between and below the teeth key out, so drawn teeth end in their own tips, not a cut line."""
    lum = luminance(np.asarray(interior, np.float32))
    lips = max(float(luminance(lip_colour)), 1.0) * 1.1
    teeth = float(np.percentile(lum[:, FRAME_WIDTH // 4:3 * FRAME_WIDTH // 4], 90))
    return np.clip((lum - lips) / max((teeth - lips) / 3.0, 1.0), 0.0, 1.0)


def edge_clarity(exemplar: Exemplar) -> float:
    """How cleanly a stored mouth's upper teeth end (0-1): over the middle half of the frame, how much tooth the 8
    rows above its incisal edge hold less how much the 4 below do. Lower teeth, a tongue or lips pressed to the tips
    score low; a gasp drawn from those shows chipped teeth."""
    alpha = teeth_alpha(exemplar.interior, exemplar.lip_colour)
    edge = np.round(incisal_edge(exemplar.interior)).astype(int)
    columns = np.arange(FRAME_WIDTH // 4, 3 * FRAME_WIDTH // 4)
    above = np.mean([alpha[max(edge[c] - 8, 0):edge[c], c].mean() for c in columns])
    below = np.mean([alpha[edge[c] + 1:edge[c] + 5, c].mean() if edge[c] + 1 < FRAME_HEIGHT else 0.0
                     for c in columns])
    return float(above - below)


def laugh_teeth_show(exemplar: Exemplar, stored_opening: float) -> tuple[float, float]:
    """How far a laugh drawn from ``exemplar`` shows its upper teeth below the lip, in mouth widths (its own teeth's
    height, at most ``LAUGH_TEETH_SHOW``), and the stored frame's rows per mouth width down its middle: the frame
    squeezes the stored smile's opening, ``stored_opening`` mouth widths tall at its middle (the bank's ``shapes``),
    into its height, so its teeth keep their proportions only at that scale."""
    rows_per_width = (FRAME_HEIGHT - 2.0) / max(stored_opening, 1e-3)
    edge = float(incisal_edge(exemplar.interior)[FRAME_WIDTH // 2])
    return min(LAUGH_TEETH_SHOW, max(edge - 1.0, 0.0) / rows_per_width), rows_per_width


def gasp_teeth(image: np.ndarray, gap: np.ndarray, target_lips: np.ndarray, exemplar: Exemplar,
               person_lips: np.ndarray, grey: bool = False, show: float = GASP_TEETH_SHOW,
               rows_per_width: float = FRAME_WIDTH, light: tuple[float, float] = GASP_TEETH_LIGHT,
               tips: float = GASP_TEETH_TIPS) -> np.ndarray:
    """Draw the edges of the exemplar's upper teeth into a gasp's (or any dark) opening (``image`` in place,
    H x W x 3 uint8):
    a band under the target's upper inner lip, ``show`` of the mouth's width tall at its middle (at most
    ``GASP_TEETH_MAX`` of the opening there) and tapering to nothing at the corners, sampled from the stored frame's
    band around its incisal edge at ``rows_per_width`` frame rows per mouth width (the frame's own width: the teeth
    keep the frame's proportions; :func:`laugh_teeth_show` gives the stored smile's), relit to the person and
    darkened towards the corners (``light``: mid-mouth and at the corners), with ``tips`` of the band's height
    sampled past the edge (where the tips end and the rest keys out); blended within the opening's alpha ``gap``,
    tooth pixels only (:func:`teeth_alpha`)."""
    lips = np.asarray(target_lips, np.float64)[:, :2]
    width = float(np.linalg.norm(lips[UPPER - 1] - lips[0]))
    if image.ndim != 3 or width < 8:
        return image
    upper = np.arange(1, UPPER - 1)
    lower = 2 * UPPER - 2 - upper  # upper k faces polygon point 20 - k
    facing = lips[lower] - lips[upper]
    opening = np.maximum(np.linalg.norm(facing, axis=1), 1e-6)
    along = np.linspace(0.0, 1.0, UPPER)[upper]
    shown = np.minimum(show * width * np.sin(np.pi * along) ** 1.5, GASP_TEETH_MAX * opening)  # px
    reach = shown * (1.0 + tips)
    band = lips.copy()
    band[lower] = lips[upper] + facing / opening[:, None] * reach[:, None]
    # The same band in the stored frame, at its scale.
    edge = np.interp(TEMPLATE[:UPPER, 0], np.arange(FRAME_WIDTH), incisal_edge(exemplar.interior))
    stored = TEMPLATE.copy()
    stored[:UPPER, 1] = edge
    stored[upper, 1] = edge[upper] - shown * rows_per_width / width
    stored[lower, 1] = edge[upper] + shown * tips * rows_per_width / width
    x0, y0 = np.maximum(np.floor(band.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(band.max(0)).astype(int) + 2, [image.shape[1], image.shape[0]])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image
    keyed = np.dstack([exemplar.interior.astype(np.float32),
                       cv2.GaussianBlur(teeth_alpha(exemplar.interior, exemplar.lip_colour), (0, 0), 0.7) * 255.0])
    warped, covered = piecewise_affine(keyed, stored, band, (y1 - y0, x1 - x0), (x0, y0), cv2.INTER_CUBIC)
    teeth = relight(warped[..., :3], exemplar, person_lips)
    # Deeper in the mouth towards the corners: the cheeks and lips shade the side teeth.
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    axis = (lips[UPPER - 1] - lips[0]) / width
    position = ((xs - lips[0, 0]) * axis[0] + (ys - lips[0, 1]) * axis[1]) / width
    mid, corner = light
    shade = mid - (mid - corner) * np.clip(np.abs(position - 0.5) * 2.0, 0.0, 1.0) ** 1.5
    teeth = teeth * shade[..., None]
    if grey:
        teeth = np.repeat(luminance(teeth)[..., None], 3, axis=2)
    # The side teeth fade into the cheeks' shadow; drawn out to the corners, their pointed canines looked like fangs.
    sides = np.clip((0.5 - np.abs(position - 0.5)) / GASP_TEETH_SIDE_FADE, 0.0, 1.0)
    a = (np.clip(warped[..., 3] / 255.0, 0.0, 1.0) * covered * sides * gap[y0:y1, x0:x1])[..., None]
    region = image[y0:y1, x0:x1]
    teeth = with_grain(teeth, region, a[..., 0] > 0.5, a[..., 0] == 0)
    blended = np.clip(np.round(region * (1.0 - a) + teeth * a), 0, 255).astype(np.uint8)
    np.copyto(region, blended, where=a > 0)
    return image
