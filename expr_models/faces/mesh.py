"""The dense face mesh of a photo: 468 MediaPipe Face Mesh points (x, y, z) in photo pixels.

    model = FaceMeshModel.from_pretrained("checkpoints/face_mesh")
    box = detect_faces(photo)[0]                       # RetinaFace: a box with five landmarks
    points = face_mesh(photo, box, model)              # 468 x 3, photo pixels; z (depth) on the same scale
    gap = inner_lip_gap(points)                        # mouth opening over the eye distance

The crop is cut as MediaPipe's face pipeline cuts it: rotated so the eyes are level, a square of about 1.5 times the
face, resized to 192x192 (``mesh_crop``). From RetinaFace's five landmarks the square is placed with constants
measured on real faces (below); without landmarks (a box alone, e.g. a 48x48 crop that is all face) the box's own
square is enlarged. ``refine`` re-crops once around the first mesh, as MediaPipe does from one video frame to the
next. The point groups and triangles (``mesh_topology``) are MediaPipe's published topology (Apache-2.0).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .geometry import FaceBox
from .mesh_topology import (CHIN, EYE_TRIANGLES, FACE_OVAL, GROUPS, LEFT_BROW, LEFT_BROW_LOWER,  # noqa: F401
                            LEFT_BROW_UPPER, LEFT_CHEEK, LEFT_EYE, LEFT_EYE_LOWER, LEFT_EYE_UPPER, LIPS_INNER,
                            LEFT_NOSTRIL, LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_LOWER_RINGS, LIPS_OUTER,
                            LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, LIPS_UPPER_RINGS, MOUTH_CORNERS, MOUTH_TRIANGLES,
                            NOSE, NOSE_BRIDGE, NOSE_TIP, RIGHT_BROW, RIGHT_BROW_LOWER, RIGHT_BROW_UPPER, RIGHT_CHEEK,
                            RIGHT_EYE, RIGHT_EYE_LOWER, RIGHT_EYE_UPPER, RIGHT_NOSTRIL, TRIANGLES)

MESH_INPUT_SIZE = 192
NUM_POINTS = 468
# MediaPipe's tracking ROI (face_landmark_landmarks_to_roi.pbtxt): the points' bounding box, scaled 1.5, square on
# its long side, turned by the line from the right eye's outer corner (33) to the left one's (263).
ROI_SCALE = 1.5
ROI_ANGLE_POINTS = (33, 263)
# The same square from RetinaFace's five landmarks. In the eye-level frame, with e the eye distance, m the drop from
# the eyes' midpoint to the mouth corners' midpoint, and n and c the sideways offsets of the nose tip and the mouth's
# midpoint from the eyes' midpoint (a turned head moves them; the far cheek widens the mesh the other way), the centre
# lies CENTRE_ALONG_NOSE * n + CENTRE_ALONG_MOUTH * c across and CENTRE_DOWN_MOUTH * m + CENTRE_DOWN_EYES * e down from
# the eyes' midpoint, and the side is SIDE_PER_EYE * e + SIDE_PER_MOUTH * m. Least squares against the converged
# tracking square (refined four times) of 495 faces: every London Set photo, every second JAFFE photo, every third FEI
# photo and every 20th GENKI-4K photo. The side's error is 2.8% (median; 95th percentile 8.3%), the centre's 0.5% of
# the side across (1.9%) and 0.8% down (2.7%); the eye line and the mesh's eye corners differ by 0.3 degrees (3.7).
CENTRE_ALONG_NOSE = -1.17
CENTRE_ALONG_MOUTH = 1.0
CENTRE_DOWN_MOUTH = 0.18
CENTRE_DOWN_EYES = 0.28
SIDE_PER_EYE = 2.26
SIDE_PER_MOUTH = 1.67
# Without landmarks: a square BOX_SCALE times the box's longer side, BOX_CENTRE_DOWN of that side below the box's
# centre.
# The converged tracking square measured 1.50 and 0.074 times a Haar-framed box (the 495 faces above), and 1.42 and
# 0.047 (FER2013, 192 crops) or 1.38 and 0.062 (CK+, 197) times a whole 48x48 face crop: one value between serves both.
BOX_SCALE = 1.45
BOX_CENTRE_DOWN = 0.06


def _rgb(photo: np.ndarray) -> np.ndarray:
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    elif photo.shape[2] == 1:
        photo = np.repeat(photo, 3, axis=2)
    if photo.dtype != np.uint8:
        raise ValueError(f"photo must be uint8, got {photo.dtype}")
    return photo[..., :3]


def roi_from_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The crop square (centre ``(x, y)``, side, angle in radians) for RetinaFace's ``5 x 2`` landmarks: eyes
    (image left first), nose tip, mouth corners (image left first)."""
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    along = points[1] - points[0]
    angle = float(np.arctan2(along[1], along[0]))
    down = np.array([-np.sin(angle), np.cos(angle)])  # the eye-level frame's y axis, in the photo
    across = along / np.linalg.norm(along)
    eye_distance = float(np.linalg.norm(along))
    mouth_drop = float(max((mouth - eyes) @ down, 0.1 * eye_distance))  # a floor for a degenerate detection
    sideways = CENTRE_ALONG_NOSE * (points[2] - eyes) @ across + CENTRE_ALONG_MOUTH * (mouth - eyes) @ across
    centre = eyes + sideways * across + (CENTRE_DOWN_MOUTH * mouth_drop + CENTRE_DOWN_EYES * eye_distance) * down
    return centre, SIDE_PER_EYE * eye_distance + SIDE_PER_MOUTH * mouth_drop, angle


def roi_from_box(box: FaceBox) -> tuple[np.ndarray, float, float]:
    """The crop square for an upright face box without landmarks (see ``BOX_SCALE``)."""
    side = max(box.width, box.height)
    centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2 + BOX_CENTRE_DOWN * side], np.float64)
    return centre, BOX_SCALE * side, 0.0


def roi_from_points(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """MediaPipe's tracking square around a mesh (``468 x 2+`` photo pixels): turned by the outer eye corners, the
    points' bounding box in that frame, ``ROI_SCALE`` times its longer side."""
    points = np.asarray(points, np.float64)[:, :2]
    along = points[ROI_ANGLE_POINTS[1]] - points[ROI_ANGLE_POINTS[0]]
    angle = float(np.arctan2(along[1], along[0]))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    level = points @ rotation  # photo -> eye-level frame (rotation's inverse is its transpose)
    low, high = level.min(0), level.max(0)
    return rotation @ ((low + high) / 2), ROI_SCALE * float((high - low).max()), angle


def crop_matrix(centre: np.ndarray, side: float, angle: float, size: int = MESH_INPUT_SIZE) -> np.ndarray:
    """The ``2 x 3`` affine map from crop coordinates to photo coordinates (both in pixels, x right, y down): the
    crop's axes are the face's, turned by ``angle``; its ``size`` pixels span ``side`` photo pixels."""
    scale = side / size
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.asarray(centre, np.float64) - linear @ np.array([size / 2, size / 2])
    return np.concatenate([linear, offset[:, None]], axis=1)


def mesh_crop(photo: np.ndarray, box: FaceBox | None, size: int = MESH_INPUT_SIZE,
              roi: tuple[np.ndarray, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's input for one face: ``size x size x 3`` uint8 RGB, and the ``2 x 3`` crop -> photo map.

    The square comes from ``box.landmarks`` when present (:func:`roi_from_landmarks`), else from the box
    (:func:`roi_from_box`), unless ``roi`` (centre, side, angle) is given. Pixels outside the photo repeat its edge.
    """
    rgb = _rgb(photo)
    if roi is None:
        roi = roi_from_landmarks(box.landmarks) if box.landmarks is not None else roi_from_box(box)
    centre, side, angle = roi
    matrix = crop_matrix(centre, side, angle, size)
    source, to_source = _shrunk_region(rgb, centre, side, size)
    warp = to_source @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    crop = cv2.warpAffine(source, warp, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix


def _shrunk_region(rgb: np.ndarray, centre: np.ndarray, side: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """What the crop is sampled from, and the ``2 x 3`` photo -> source map. A square at least twice the crop is cut
    from the photo with a margin and shrunk by area averaging (as ``expr_models.faces.geometry.resize_square`` shrinks faces)
    by a whole factor first, so bilinear sampling does not alias a large face; else the photo itself."""
    factor = int(side / size)
    identity = np.eye(2, 3)
    if factor < 2:
        return rgb, identity
    half = 0.75 * side  # the turned square's corners reach side / sqrt(2) from its centre
    x0, y0 = (max(0, int(np.floor(value - half))) for value in centre)
    x1 = min(rgb.shape[1], int(np.ceil(centre[0] + half)))
    y1 = min(rgb.shape[0], int(np.ceil(centre[1] + half)))
    if x1 - x0 < 2 * factor or y1 - y0 < 2 * factor:
        return rgb, identity
    region = rgb[y0:y1, x0:x1]
    small = cv2.resize(region, (round(region.shape[1] / factor), round(region.shape[0] / factor)),
                       interpolation=cv2.INTER_AREA)
    sx, sy = region.shape[1] / small.shape[1], region.shape[0] / small.shape[0]
    # OpenCV's resize puts pixel centres at (x + 0.5) * scale - 0.5, so photo x -> (x - x0 + 0.5) / sx - 0.5.
    return small, np.array([[1 / sx, 0.0, (0.5 - x0) / sx - 0.5], [0.0, 1 / sy, (0.5 - y0) / sy - 0.5]])


def crop_to_photo(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Mesh points in crop pixels (``... x 3``) to photo pixels: x and y through ``matrix``, z scaled alike.

    The model's coordinates are continuous (0 at the crop's left edge, 192 at its right); the matrix maps pixel
    centres, which sit half a pixel in, hence the shift."""
    points = np.asarray(points, np.float64)
    xy = (points[..., :2] - 0.5) @ matrix[:, :2].T + matrix[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return np.concatenate([xy, points[..., 2:3] * scale], axis=-1).astype(np.float32)


def face_mesh_batch(photos: Sequence[np.ndarray], boxes: Sequence[FaceBox], model, refine: bool = False,
                    batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The meshes of many faces: ``photos[i]`` holds the face ``boxes[i]`` (repeat a photo for several faces).

    Returns points ``N x 468 x 3`` (float32 photo pixels; z on the same scale, smaller towards the camera) and the
    model's face-presence score ``N`` in [0, 1] (below 0.5: the crop holds no face the model recognises).
    ``model``: a ``FaceMeshModel`` (anything with ``predict(crops) -> (points, presence)``). ``refine``: crop again
    around each first mesh and run once more (twice the time). A box with a ``mesh_roi`` (a video frame's, placed by
    the last frame's mesh) is cut there; ``refine`` then adds nothing and is not done.
    """
    if len(photos) != len(boxes):
        raise ValueError(f"{len(photos)} photos but {len(boxes)} boxes")
    if not len(photos):
        return np.zeros((0, NUM_POINTS, 3), np.float32), np.zeros(0, np.float32)
    rois = [box.mesh_roi for box in boxes]
    refine = refine and any(roi is None for roi in rois)
    for _ in range(2 if refine else 1):
        points, presence = [], []
        for start in range(0, len(photos), batch_size):
            chunk = range(start, min(start + batch_size, len(photos)))
            cut = [mesh_crop(photos[i], boxes[i], roi=rois[i]) for i in chunk]
            crop_points, crop_presence = model.predict(np.stack([crop for crop, _ in cut]))
            points += [crop_to_photo(p, matrix) for p, (_, matrix) in zip(crop_points, cut)]
            presence.append(crop_presence)
        rois = [roi_from_points(p) for p in points]
    return np.stack(points), np.concatenate(presence).astype(np.float32)


def face_mesh(photo: np.ndarray, box: FaceBox, model, refine: bool = False,
              return_presence: bool = False) -> np.ndarray | tuple[np.ndarray, float]:
    """The 468 x 3 mesh (photo pixels) of the face in ``box`` of an RGB (or grayscale) uint8 ``photo``; with
    ``return_presence``, also the face-presence score. See :func:`face_mesh_batch`."""
    points, presence = face_mesh_batch([photo], [box], model, refine=refine)
    return (points[0], float(presence[0])) if return_presence else points[0]


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centres (x, y) of the right and the left eye's contours."""
    points = np.asarray(points)
    return points[list(RIGHT_EYE), :2].mean(0), points[list(LEFT_EYE), :2].mean(0)


def eye_distance(points: np.ndarray) -> float:
    """The distance between the two eye centres, in the mesh's units (photo pixels): the face's scale."""
    right, left = eye_centres(points)
    return float(np.linalg.norm(left - right))


# The face's sides at the cheekbones (MediaPipe's face oval, right and left): the measure of a turned head.
FACE_SIDES = (234, 454)


def head_turn(points: np.ndarray) -> float:
    """How far the face is turned: the nose tip's offset from the middle of the face's sides at the cheekbones, along
    the line between them, over half their distance. 0 frontal, about 1 turned so far that one cheek is hidden, and
    beyond that a profile, where the mesh's far side is guessed."""
    points = np.asarray(points, np.float64)[:, :2]
    right, left = points[FACE_SIDES[0]], points[FACE_SIDES[1]]
    half = float(np.linalg.norm(left - right)) / 2
    along = (left - right) / max(2 * half, 1e-6)
    return float((points[NOSE_TIP] - (right + left) / 2) @ along / max(half, 1e-6))


# The nine matching upper and lower inner-lip points between the inner corners.
_UPPER_INNER, _LOWER_INNER = list(LIPS_INNER_UPPER[1:-1]), list(LIPS_INNER_LOWER[1:-1])


def down_the_face(points: np.ndarray) -> np.ndarray:
    """The unit vector down the face (perpendicular to the line of the eyes): across the mouth and the eyes."""
    right, left = eye_centres(points)
    along = (left - right) / np.linalg.norm(left - right)
    return np.array([-along[1], along[0]])


def _lip_gaps(points: np.ndarray, down: np.ndarray) -> np.ndarray:
    """How far each matching pair of inner-lip points is parted along ``down`` (negative: crossed)."""
    return (points[_LOWER_INNER, :2] - points[_UPPER_INNER, :2]) @ down


def inner_lip_gap(points: np.ndarray) -> float:
    """How far the mouth is open: the mean distance between matching upper and lower inner-lip points (the nine
    between the inner corners), measured across the mouth (perpendicular to the line of the eyes), over the eye
    distance. About 0.02 for a closed mouth."""
    points = np.asarray(points, np.float64)
    return float(np.mean(_lip_gaps(points, down_the_face(points))) / eye_distance(points))


def _limit_lip_gap(source: np.ndarray, target: np.ndarray, allowed: np.ndarray | float,
                   least: float = -np.inf) -> np.ndarray:
    """``target`` (468 x 2) with each pair of matching inner-lip points parted at most ``allowed`` and at least
    ``least`` (photo units; per pair or one number) across the mouth (perpendicular to ``source``'s line of the
    eyes): a pair outside those bounds moves to the nearer one, each point half the way."""
    target = np.array(target, np.float64)
    down = down_the_face(source)
    gap = _lip_gaps(target, down)
    change = np.maximum(gap - allowed, 0.0) - np.maximum(least - gap, 0.0)  # > 0: close by it, < 0: open by it
    target[_UPPER_INNER] += (change / 2)[:, None] * down
    target[_LOWER_INNER] -= (change / 2)[:, None] * down
    return target


def stop_jaw_where_lips_meet(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` (468 x 2) with the jaw stopped where the lips meet, where the motion would close the mouth past shut
    (``source``, 468 x 2+: the face's points). A motion is about the same size on every face, so one that closes a
    gasp's dropped jaw lifts an already closed mouth, or a slightly open one, through itself. Meeting the inner lips
    half-way (:func:`uncross_lips`) then squashed both lips to slivers while the chin went on rising: the edit drew a
    thin dark arc for a mouth, read as angry. Here the lower lip and the jaw under it rise less, all by the same
    distance (the lips' mean overlap; no point is pushed down), so the lips meet whole. The upper lip, the mouth's
    corners and everything above them keep their motion, and so does every motion across the face: an undone smile
    still lowers its corners and narrows its mouth."""
    source = np.asarray(source, np.float64)
    target = np.array(target, np.float64)
    down = down_the_face(source)
    overlap = -float(np.mean(_lip_gaps(target, down)))
    if overlap <= 0.0:
        return target
    rise = np.maximum(-(target - source[:, :2]) @ down, 0.0)  # how far each point moves up the face
    return target + (_jaw_weights(source, down) * np.minimum(overlap, rise))[:, None] * down


def _jaw_weights(points: np.ndarray, down: np.ndarray) -> np.ndarray:
    """How much each point moves with the jaw: 1 for the lower lip and below the mouth, 0 for the upper lip, the
    corners and above the mouth's centre line, ramped over ``_JAW_RAMP`` eye distances beneath it (the cheeks beside
    the mouth go partly)."""
    mouth = points[list(LIPS_INNER), :2].mean(0)
    below = ((points[:, :2] - mouth) @ down) / eye_distance(points)
    ramp = np.clip(below / _JAW_RAMP, 0.0, 1.0)
    weights = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep
    weights[list(LIPS_INNER_LOWER) + list(LIPS_OUTER_LOWER)] = 1.0
    weights[list(LIPS_INNER_UPPER) + list(LIPS_OUTER_UPPER)] = 0.0  # the corners are in both: they stay
    return weights


_JAW_RAMP = 0.15  # about a lower lip's height, in eye distances


def uncross_lips(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` (468 x 2) with no lower inner-lip point above its upper one (``source``, 468 x 2+, gives the face's
    axes): a motion that closes a wide-open mouth further than it was open would fold the lips through each other,
    and the warp would squeeze the dark mouth into a blot between them. Crossed pairs meet half-way."""
    return _limit_lip_gap(np.asarray(source, np.float64), target, np.inf, least=0.0)


def close_lips_towards(source: np.ndarray, target: np.ndarray, most: float, amount: float = 1.0) -> np.ndarray:
    """``target`` (468 x 2) with each pair of matching inner-lip points parted no further than ``amount`` of the way
    from ``source``'s (468 x 2+) gap to ``most`` eye distances (``amount`` 1: at most ``most``; a pair that was
    parted less may part up to ``most``). Pairs further apart meet it half-way each, as :func:`uncross_lips` meets
    crossed ones."""
    source = np.asarray(source, np.float64)
    limit = most * eye_distance(source)
    before = _lip_gaps(source, down_the_face(source))
    allowed = np.maximum(limit, before + float(np.clip(amount, 0.0, 1.0)) * (limit - before))
    return _limit_lip_gap(source, target, allowed)


# The seven matching upper and lower lid points between each eye's corners (right eye, then left).
_EYE_LIDS = ((list(RIGHT_EYE_UPPER[1:-1]), list(RIGHT_EYE_LOWER[1:-1]), list(RIGHT_EYE)),
             (list(LEFT_EYE_UPPER[1:-1]), list(LEFT_EYE_LOWER[1:-1]), list(LEFT_EYE)))


def eye_openings(points: np.ndarray) -> np.ndarray:
    """How far each eye (right, left) is open: the mean distance between its matching upper and lower lid points,
    across the eye (perpendicular to the line of the eyes), in the mesh's units."""
    points = np.asarray(points, np.float64)
    down = down_the_face(points)
    return np.array([float(np.mean((points[lower, :2] - points[upper, :2]) @ down)) for upper, lower, _ in _EYE_LIDS])


def keep_eyes_open(source: np.ndarray, target: np.ndarray, least: float) -> np.ndarray:
    """``target`` (468 x 2) with each eye at least ``least`` as open as in ``source`` (468 x 2+): an eye that a motion
    closes further has its contour's motion scaled down until it is. A motion is a displacement of about the same
    size on every face, so it closes narrow eyes to slits that a wide-eyed face shows as a droop."""
    source, target = np.asarray(source, np.float64), np.array(target, np.float64)
    before, after = eye_openings(source), eye_openings(target)
    for (_, _, contour), opened, closed in zip(_EYE_LIDS, before, after):
        if opened > 0 and closed < least * opened:
            keep = (1.0 - least) * opened / (opened - closed)  # the share of the motion that leaves it that open
            target[contour] = source[contour, :2] + keep * (target[contour] - source[contour, :2])
    return target


def keep_nostrils_whole(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` (468 x 2) with each nostril's points moved together, by their mean motion in it from ``source``
    (468 x 2+). The generators move the nostrils' rims a little apart (a smile undone lowered their outer ends by 0.08
    eye distances and the columella's foot not at all), and the warp drew the dark openings down into streaks."""
    source, target = np.asarray(source, np.float64), np.array(target, np.float64)
    for nostril in (list(RIGHT_NOSTRIL), list(LEFT_NOSTRIL)):
        target[nostril] = source[nostril, :2] + (target[nostril] - source[nostril, :2]).mean(0)
    return target


LIP_THICKENING = (0.7, 1.5)  # how much thinner or thicker a lip may become across, against its thickness before


def bend_lips_as_bands(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` (468 x 2) with each lip's outer contour (but the corners) laid along its moved inner contour as a
    band: each outer point sits where its offset from the inner point of its column in ``source`` (468 x 2+) goes,
    turned as the inner contour turned there, its length as moved but kept within ``LIP_THICKENING`` of the
    original. A mouth opened wide drops the inner lower lip beside the corners steeply while the outer contour there
    stays nearly level, and the warp fanned the lip out of each corner into radial streaks."""
    source, target = np.asarray(source, np.float64)[:, :2], np.array(target, np.float64)
    for outer, inner in ((LIPS_OUTER_UPPER, LIPS_INNER_UPPER), (LIPS_OUTER_LOWER, LIPS_INNER_LOWER)):
        outer, inner = np.asarray(outer), np.asarray(inner)
        for k in range(1, len(inner) - 1):
            if np.array_equal(source[[outer[k], *inner[k - 1:k + 2]]], target[[outer[k], *inner[k - 1:k + 2]]]):
                continue  # still: its exact bytes
            before, after = source[inner[k + 1]] - source[inner[k - 1]], target[inner[k + 1]] - target[inner[k - 1]]
            turn = np.arctan2(after[1], after[0]) - np.arctan2(before[1], before[0])
            offset = source[outer[k]] - source[inner[k]]
            length = float(np.linalg.norm(offset))
            if length < 1e-9 or np.linalg.norm(after) < 1e-9:
                continue
            cos, sin = np.cos(turn), np.sin(turn)
            direction = np.array([cos * offset[0] - sin * offset[1], sin * offset[0] + cos * offset[1]]) / length
            moved = float(np.linalg.norm(target[outer[k]] - target[inner[k]]))
            thickness = min(max(moved, LIP_THICKENING[0] * length), LIP_THICKENING[1] * length)
            target[outer[k]] = target[inner[k]] + direction * thickness
    return target


def spread_lips_evenly(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` (468 x 2) with the lips' two inner rings (``LIPS_UPPER_RINGS``, ``LIPS_LOWER_RINGS``) placed between
    each lip's moved outer and inner contours as they lay between them in ``source`` (468 x 2+): each point keeps its
    coordinates along and across the segment from the outer contour's point of its column to the inner one's. A
    mouth opened wide drops the inner lower lip beside the corners far more than the ring next to it, and the warp
    fanned that sliver of lip out of the corner into streaks (its triangles grew 15 times in area); spread over the
    lip's whole thickness the stretch is even."""
    source, target = np.asarray(source, np.float64)[:, :2], np.array(target, np.float64)
    for outer, inner, rings in ((LIPS_OUTER_UPPER, LIPS_INNER_UPPER, LIPS_UPPER_RINGS),
                                (LIPS_OUTER_LOWER, LIPS_INNER_LOWER, LIPS_LOWER_RINGS)):
        outer, inner = np.asarray(outer), np.asarray(inner)
        moved = np.any(source[outer] != target[outer], axis=1) | np.any(source[inner] != target[inner], axis=1)
        along = source[inner] - source[outer]
        length = np.einsum("ij,ij->i", along, along)
        columns = np.flatnonzero(moved & (length > 1e-12))  # a still column keeps its exact bytes
        outer, inner, along, length = outer[columns], inner[columns], along[columns], length[columns]
        moved_along = target[inner] - target[outer]
        for ring in rings:
            ring = np.asarray(ring)[columns]
            offset = source[ring] - source[outer]
            a = np.einsum("ij,ij->i", offset, along) / length  # along the segment, and across it (turned 90 deg)
            b = (offset[:, 1] * along[:, 0] - offset[:, 0] * along[:, 1]) / length
            across = np.stack([-moved_along[:, 1], moved_along[:, 0]], 1)
            target[ring] = target[outer] + a[:, None] * moved_along + b[:, None] * across
    return target


def keep_lips_closed(source: np.ndarray, target: np.ndarray, slack: float = 0.0) -> np.ndarray:
    """``target`` (468 x 2) with each pair of matching inner-lip points parted at most ``slack`` eye distances more
    than in ``source`` (468 x 2+), measured across the mouth: the two points meet half-way. A warp can move lips but
    cannot draw the teeth and dark mouth a newly opened mouth shows; until a mouth model fills it, a smile stays a
    closed-mouth smile. Lips that close are left alone."""
    source = np.asarray(source, np.float64)
    source_gap = np.maximum(_lip_gaps(source, down_the_face(source)), 0.0)
    return _limit_lip_gap(source, target, source_gap + slack * eye_distance(source))
