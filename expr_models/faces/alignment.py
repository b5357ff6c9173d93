"""The canonical aligned face frame: five landmarks -> a similarity transform -> a square crop, and back, exactly.

    points = retinaface_points(photo)                 # 5 x 2: eyes, nose tip, mouth corners (RetinaFace's order)
    face = align_face(points, size=256)               # AlignedFace: 2x3 matrix photo -> frame and its exact inverse
    crop = warp_to_frame(photo, face)                 # size x size, the face upright at the template's place
    photo2 = paste_from_frame(photo, edited_crop, face, original=crop)   # only the change goes back

**Template.** ``TEMPLATE`` places RetinaFace's five points (image-left eye, image-right eye, nose tip, image-left and
image-right mouth corner) as fractions of the frame's side. Its shape is the Procrustes mean of RetinaFace's points on
147 neutral faces (67 London Set + 80 FEI), made left-right symmetric; in units of the distance between the eyes
(IOD) the nose tip sits 0.565 and the mouth corners 1.10 below the eyes, the corners 0.79 apart. The frame puts the
eyes 0.28 of its side apart with the eye line at 0.38 of its height, so it holds the forehead above the brows, both
cheeks and the chin (the chin is about 0.9 IOD below the mouth, at ~0.94).

**Resampling, one choice everywhere** (:func:`resample_affine`): bilinear ``cv2.warpAffine``. warpAffine has no area
filter, so a warp that shrinks the image first halves it with ``cv2.pyrDown`` (a 5-tap Gaussian, then every other
pixel) while the shrink is 2x or more, then Gaussian-blurs the rest of the way with sigma ``0.5 * sqrt(1/s**2 - 1)``
for the remaining shrink ``s`` in (0.5, 1), so no edge aliases at any size. Enlarging is plain bilinear. Only the
photo's region under the warp is filtered, so a 1 MP photo costs a few milliseconds.

**Exact paste-back.** ``AlignedFace.inverse`` is the matrix inverse of ``matrix``. :func:`paste_from_frame` with
``original`` (the unedited crop) warps only the *change* back and adds it to the photo, so an unedited crop gives the
photo byte for byte, and every pixel outside the blend mask stays byte-identical whatever the edit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# RetinaFace's five points as fractions of the frame's side: eyes, nose tip, mouth corners (see the module docstring).
EYE_DISTANCE = 0.28
EYE_LINE = 0.38
_SHAPE_IN_EYE_DISTANCES = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.565], [-0.396, 1.10], [0.396, 1.10]])
TEMPLATE = (np.array([0.5, EYE_LINE]) + EYE_DISTANCE * _SHAPE_IN_EYE_DISTANCES).astype(np.float64)
# Rows of TEMPLATE that barely move with the expression (eyes, nose tip): pairs of photos are aligned on these.
STABLE_POINTS = (0, 1, 2)
# The face in the frame, (centre x, centre y, half width, half height) as fractions of the side: brows to chin, cheek
# to cheek. The blend mask and the realism metric's face box are made from it.
FACE_ELLIPSE = (0.5, 0.55, 0.31, 0.40)

# The London Set's 189-point WebMorph template (.tem): which points give RetinaFace's five. Read off a plot of every
# point on photo 002_03 and checked against RetinaFace on all 67 neutrals (median distance in IOD): 0 and 1 are the
# pupils (0.04), 87 and 93 the mouth corners (0.04, 0.05). No point marks the nose tip: the mean of the alar tops
# (54, 60) and the subnasale (55) matches RetinaFace's nose point to 0.05 IOD with no vertical bias (0.003 IOD).
TEM_EYES = (0, 1)
TEM_NOSE_TIP = (54, 60, 55)
TEM_MOUTH_CORNERS = (87, 93)


@dataclass(frozen=True)
class AlignedFace:
    """A face's place in the aligned frame: ``matrix`` (2x3) maps photo pixels to frame pixels, ``inverse`` back.

    ``points`` are the face's five landmarks in the photo; ``size`` is the frame's side in pixels. Pixel centres are
    at integer coordinates, as in OpenCV.
    """

    matrix: np.ndarray
    inverse: np.ndarray
    size: int
    points: np.ndarray

    @property
    def scale(self) -> float:
        """Frame pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        return apply_affine(self.matrix, points)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        return apply_affine(self.inverse, points)

    def resized(self, size: int) -> "AlignedFace":
        """The same alignment for a frame of another side."""
        return _make_aligned(_rescaled(self.matrix, size / self.size), size, self.points)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return points @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix, np.float64)[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The exact inverse of a 2x3 affine matrix (in float64)."""
    linear = np.linalg.inv(np.asarray(matrix, np.float64)[:, :2])
    return np.concatenate([linear, -linear @ np.asarray(matrix, np.float64)[:, 2:]], axis=1)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``source`` points
    onto ``target`` (Umeyama 1991), as a 2x3 matrix. Exact for points related by a similarity."""
    source = np.asarray(source, np.float64).reshape(-1, 2)
    target = np.asarray(target, np.float64).reshape(-1, 2)
    if len(source) != len(target) or len(source) < 2:
        raise ValueError(f"need at least two matching points, got {len(source)} and {len(target)}")
    source_mean, target_mean = source.mean(0), target.mean(0)
    a, b = source - source_mean, target - target_mean
    variance = (a ** 2).sum() / len(a)
    if variance <= 1e-12:
        raise ValueError("the source points coincide; no transform fits them")
    u, singular, vt = np.linalg.svd(b.T @ a / len(a))
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / variance
    linear = scale * rotation
    return np.concatenate([linear, (target_mean - linear @ source_mean)[:, None]], axis=1)


def _make_aligned(matrix: np.ndarray, size: int, points: np.ndarray) -> AlignedFace:
    matrix = np.asarray(matrix, np.float64)
    return AlignedFace(matrix, invert_affine(matrix), int(size), np.asarray(points, np.float64).reshape(-1, 2))


def _rescaled(matrix: np.ndarray, factor: float) -> np.ndarray:
    # Pixel centres at integers: frame coordinate u of side N is at fraction (u + 0.5) / N.
    out = np.asarray(matrix, np.float64) * factor
    out[:, 2] += 0.5 * factor - 0.5
    return out


def template_points(size: int) -> np.ndarray:
    """``TEMPLATE`` in the pixels of a frame of side ``size`` (pixel centres at integers)."""
    return TEMPLATE * size - 0.5


def align_face(points: np.ndarray, size: int, use: tuple[int, ...] = (0, 1, 2, 3, 4)) -> AlignedFace:
    """The similarity that puts a face's five ``points`` (photo pixels, RetinaFace's order) on the template in a frame
    of side ``size``; ``use`` chooses which of the five are fitted (all by default)."""
    points = np.asarray(points, np.float64).reshape(5, 2)
    index = list(use)
    return _make_aligned(similarity_transform(points[index], template_points(size)[index]), size, points)


def align_to(points: np.ndarray, reference: AlignedFace, use: tuple[int, ...] = STABLE_POINTS) -> AlignedFace:
    """Another photo of ``reference``'s face put into ``reference``'s frame, fitting only the points that barely move
    with the expression (eyes and nose tip by default): head motion is removed, the expression's motion is kept."""
    points = np.asarray(points, np.float64).reshape(5, 2)
    index = list(use)
    goal = reference.to_frame(reference.points)[index]
    return _make_aligned(similarity_transform(points[index], goal), reference.size, points)


def native_size(points: np.ndarray, multiple: int = 8, limit: int = 2048) -> int:
    """The frame side that keeps the photo's resolution: eyes as far apart in the frame as in the photo."""
    points = np.asarray(points, np.float64).reshape(5, 2)
    side = np.linalg.norm(points[1] - points[0]) / EYE_DISTANCE
    return int(min(limit, max(multiple, multiple * round(side / multiple))))


# --- resampling ----------------------------------------------------------------------------------------------------

def resample_affine(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int],
                    border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """``image`` warped by ``matrix`` (source pixels -> output pixels) into an output of ``size`` = (width, height).

    The one resampling of this module: Gaussian pyramid halving while the warp shrinks 2x or more, a matched Gaussian
    blur for the rest of a shrink, then bilinear ``warpAffine``. Works on uint8 or float images of any channels.
    """
    matrix = np.asarray(matrix, np.float64)
    width, height = size
    # Only the part of the source that the output sees (plus the filters' reach) is filtered.
    corners = np.array([[-1, -1], [width, -1], [-1, height], [width, height]], np.float64)
    inverse = invert_affine(matrix)
    seen = apply_affine(inverse, corners)
    shrink = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # output px per source px
    reach = 4.0 / max(shrink, 1e-6) + 4
    x0 = int(max(0, np.floor(seen[:, 0].min() - reach)))
    y0 = int(max(0, np.floor(seen[:, 1].min() - reach)))
    x1 = int(min(image.shape[1], np.ceil(seen[:, 0].max() + reach) + 1))
    y1 = int(min(image.shape[0], np.ceil(seen[:, 1].max() + reach) + 1))
    if x1 <= x0 or y1 <= y0:  # the output lies wholly outside the image: take the nearest edge (replicated)
        x0, y0 = min(max(x0, 0), image.shape[1] - 1), min(max(y0, 0), image.shape[0] - 1)
        x1, y1 = x0 + 1, y0 + 1
    source = image[y0:y1, x0:x1]
    matrix = matrix.copy()
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)

    while shrink <= 0.5 and min(source.shape[:2]) >= 2:
        source = cv2.pyrDown(source)  # output pixel j sits on source pixel 2j
        matrix[:, :2] *= 2.0
        shrink *= 2.0
    if shrink < 1.0:
        sigma = 0.5 * np.sqrt(1.0 / shrink ** 2 - 1.0)
        source = cv2.GaussianBlur(source, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(source, matrix, (int(width), int(height)), flags=cv2.INTER_LINEAR, borderMode=border)


def warp_to_frame(photo: np.ndarray, face: AlignedFace, size: int | None = None) -> np.ndarray:
    """The face's aligned crop: ``size x size`` (default ``face.size``) of ``photo``, outside the photo replicated."""
    if size is not None and size != face.size:
        face = face.resized(size)
    return resample_affine(photo, face.matrix, (face.size, face.size))


def warp_and_add(crop: np.ndarray, flow: np.ndarray, change: np.ndarray, intensity: float = 1.0) -> np.ndarray:
    """An aligned crop (``N x N`` or ``N x N x C`` uint8) moved by ``intensity * flow`` (``N x N x 2``, pixels: each
    output pixel samples the crop there) plus ``intensity * change`` (``N x N x C'`` grey levels). Its own pixels move,
    so skin texture and lip colour come along. A grey crop, or a grey photo held in RGB, takes the change's luminance
    and stays grey."""
    crop = np.asarray(crop)
    size = crop.shape[0]
    grid = np.arange(size, dtype=np.float32)
    warped = cv2.remap(crop, grid[None, :] + intensity * flow[..., 0], grid[:, None] + intensity * flow[..., 1],
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(crop.shape).astype(np.float32)
    change = np.asarray(change, np.float32).reshape(size, size, -1)
    if crop.ndim == 2:
        change = change.mean(axis=2)
    elif change.shape[2] != crop.shape[2] or (crop[..., :1] == crop).all():
        change = change.mean(axis=2, keepdims=True)  # one luminance change, broadcast over the channels
    # In place: on a phone photo's face these arrays are megapixels.
    warped += intensity * change
    np.rint(warped, out=warped)
    np.clip(warped, 0, 255, out=warped)
    return warped.astype(np.uint8)


def edit_in_frame(photo: np.ndarray, edit_aligned, points: np.ndarray | None = None, detector: Any = None) -> np.ndarray:
    """A whole photo (``H x W x 3`` or ``H x W`` uint8) with its largest face (or the face whose five landmarks are
    ``points``) edited by ``edit_aligned`` (aligned crop -> edited crop) in the aligned frame at the photo's own
    resolution; only the change is pasted back, inside the face's blend mask. ``ValueError`` without a face."""
    photo = np.asarray(photo)
    if points is None:
        points = retinaface_points(photo, detector)
        if points is None:
            raise ValueError("no face found in the photo")
    face = align_face(points, native_size(points))
    crop = warp_to_frame(photo, face)
    return paste_from_frame(photo, edit_aligned(crop), face, original=crop)


@functools.lru_cache(maxsize=16)
def frame_face_mask(size: int, feather: float = 0.15) -> np.ndarray:
    """``size x size`` float32 in [0, 1]: 1 on the face (``FACE_ELLIPSE``), falling smoothly to 0 over ``feather`` of
    the ellipse's radius, so an edit fades into the photo instead of ending at a seam. Cached (every frame of a size
    has the same mask) and read-only."""
    centre_x, centre_y, half_w, half_h = FACE_ELLIPSE
    grid = (np.arange(size, dtype=np.float64) + 0.5) / size
    dx = (grid[None, :] - centre_x) / half_w
    dy = (grid[:, None] - centre_y) / half_h
    radius = np.sqrt(dx ** 2 + dy ** 2)
    t = np.clip((1.0 + feather - radius) / feather, 0.0, 1.0)
    mask = (t * t * (3 - 2 * t)).astype(np.float32)
    mask.flags.writeable = False
    return mask


def paste_from_frame(photo: np.ndarray, edited: np.ndarray, face: AlignedFace, mask: np.ndarray | None = None,
                     original: np.ndarray | None = None) -> np.ndarray:
    """``photo`` with an edited aligned crop put back (a new uint8 array; ``photo`` is not changed).

    ``mask``: where the edit applies, in the frame (default :func:`frame_face_mask`); pixels where it is 0 keep their
    exact values. ``original``: the unedited crop (:func:`warp_to_frame`'s output). Given, only ``edited - original``
    is warped back and added, so the photo keeps its own full-resolution pixels wherever the edit changed nothing;
    without it the edited crop itself is resampled into the photo and blended by the mask.
    """
    size = face.size
    if edited.shape[:2] != (size, size):
        face = face.resized(edited.shape[0])
        size = face.size
    mask = frame_face_mask(size) if mask is None else np.asarray(mask, np.float32)
    if mask.shape != (size, size):
        raise ValueError(f"mask is {mask.shape}, the frame is {size}x{size}")
    height, width = photo.shape[:2]
    # The photo's rectangle the frame covers; nothing outside it changes.
    corners = face.to_photo(np.array([[-1, -1], [size, -1], [-1, size], [size, size]], np.float64))
    x0, y0 = (int(max(0, np.floor(corners[:, i].min()))) for i in (0, 1))
    x1 = int(min(width, np.ceil(corners[:, 0].max()) + 1))
    y1 = int(min(height, np.ceil(corners[:, 1].max()) + 1))
    output = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return output
    to_region = face.inverse.copy()
    to_region[:, 2] -= [x0, y0]
    region_size = (x1 - x0, y1 - y0)
    weight = resample_affine(mask, to_region, region_size, border=cv2.BORDER_CONSTANT)
    region = photo[y0:y1, x0:x1].astype(np.float32)
    channels = photo.shape[2:]
    if original is not None:
        change = edited.astype(np.float32) - np.asarray(original, np.float32)
        delta = _expand(resample_affine(change, to_region, region_size, border=cv2.BORDER_CONSTANT), channels)
    else:
        delta = _expand(resample_affine(edited.astype(np.float32), to_region, region_size), channels) - region
    if channels:
        weight = weight[..., None]
    # Where the weight is 0 this adds exactly 0.0 to whole numbers, so those pixels keep their values bit for bit.
    output[y0:y1, x0:x1] = np.clip(np.rint(region + weight * delta), 0, 255).astype(photo.dtype)
    return output


def _expand(array: np.ndarray, channels: tuple[int, ...]) -> np.ndarray:
    # warpAffine drops a trailing channel axis of 1; give back the photo's layout.
    if channels and array.ndim == 2:
        return array.reshape(*array.shape, 1)
    return array


# --- landmarks -----------------------------------------------------------------------------------------------------

def tem_points(tem_path: str | Path) -> np.ndarray:
    """RetinaFace's five points (``5 x 2``, photo pixels) from a London Set / WebMorph 189-point ``.tem`` file."""
    lines = Path(tem_path).read_text().split("\n")
    count = int(lines[0].split()[0])
    if count != 189:
        raise ValueError(f"{tem_path} has {count} points, not the 189 of the London Set's template")
    points = np.array([[float(v) for v in line.split()[:2]] for line in lines[1:1 + count]], np.float64)
    return np.stack([points[TEM_EYES[0]], points[TEM_EYES[1]], points[list(TEM_NOSE_TIP)].mean(0),
                     points[TEM_MOUTH_CORNERS[0]], points[TEM_MOUTH_CORNERS[1]]])


def retinaface_face(photo: np.ndarray, detector: Any = None) -> tuple[np.ndarray, np.ndarray] | None:
    """RetinaFace's own box (x0, y0, x1, y1: brows to chin) and five landmarks (``5 x 2``) of the largest face in an
    RGB (or grey) uint8 photo, or ``None`` without a face. ``detector``: a ``RetinaFaceDetector`` to reuse (default:
    one made on first use, framing "raw")."""
    if detector is None:
        detector = _default_detector()
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    boxes, _, landmarks = detector.detect_arrays(np.ascontiguousarray(photo[..., :3]))
    if not len(boxes):
        return None
    largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    return boxes[largest].astype(np.float64), landmarks[largest].astype(np.float64)


def retinaface_points(photo: np.ndarray, detector: Any = None) -> np.ndarray | None:
    """The five landmarks (``5 x 2``: eyes, nose tip, mouth corners) of the largest face, or ``None``."""
    found = retinaface_face(photo, detector)
    return None if found is None else found[1]


_DETECTOR: list[Any] = []


def _default_detector() -> Any:
    if not _DETECTOR:
        from .detection.retinaface import RetinaFaceDetector

        _DETECTOR.append(RetinaFaceDetector(framing="raw"))
    return _DETECTOR[0]
