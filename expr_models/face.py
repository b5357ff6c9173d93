"""Find faces in photos, cut them out at a fixed framing, and put edited faces back.

The same functions frame the training crops (JAFFE/FEI) and the crops the editor feeds the models, so train and edit
see faces the same way:

    boxes = detect_faces(photo)                      # largest first
    crop, transform = crop_face(photo, boxes[0], 64) # square around the box, CROP_SCALE times its size
    ...edit crop...
    mask = face_mask(transform.size)                 # feathered ellipse, exactly 0 outside the face
    photo = paste_back(photo, edited, transform, mask)

The default detector is RetinaFace-MobileNet0.25 on onnxruntime (:mod:`expr_models.retinaface`; the model is
committed in checkpoints/face_detector/), which returns its boxes mapped to the Haar framing below, with five
landmarks. OpenCV's Haar cascade (:class:`HaarFaceDetector`, shipped inside opencv-python, no other dependency) frames
the training crops and stays selectable. Any object with a ``detect(image) -> list[FaceBox]`` method (e.g. the trained
``FaceSegmenter``) can be passed instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from PIL import Image

# The crop is the detector's box scaled by this around its centre. The Haar box runs from the eyebrows to the mouth;
# 1.25 adds the forehead and the chin, which is close to the framing of the FER2013/CK+ 48x48 crops. Boxes from
# another detector must be in the same framing (RetinaFaceDetector maps its own boxes to it).
CROP_SCALE = 1.25


@dataclass
class FaceBox:
    """A face box in photo pixel coordinates (``x1``/``y1`` exclusive) with a detector confidence in [0, 1].

    ``mask`` is an optional ``H x W`` float/bool array over the whole photo from a segmenting detector.
    ``landmarks`` is an optional ``5 x 2`` array of photo pixels (x, y) from RetinaFace: the two eyes (the one at the
    smaller x first), the nose tip and the two mouth corners (smaller x first).
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    mask: np.ndarray | None = None
    landmarks: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def scaled(self, factor: float) -> "FaceBox":
        """The box (and its landmarks) with coordinates multiplied by ``factor`` (e.g. back from a downscaled
        detection copy)."""
        landmarks = None if self.landmarks is None else np.asarray(self.landmarks, np.float32) * factor
        return FaceBox(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score, self.mask,
                       landmarks)

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in (self.x0, self.y0, self.x1, self.y1)], "score": round(float(self.score), 3)}


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(rgb_uint8_array) -> list[FaceBox]``."""

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image array, got {image.dtype}")
    return image


@lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"Could not load OpenCV's {name} from {cv2.data.haarcascades}")
    return cascade


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, tuned for few false positives.

    ``alt2`` with ``min_neighbors=5`` found exactly one face in each of the 213 JAFFE and 160 FEI images and none in
    scikit-image's coffee/chelsea/rocket photos (raw grayscale, no equalisation). Big photos are searched on a
    downscaled copy (longest side ``max_side``) for speed; boxes are scaled back to the photo. ``score`` grows with the
    number of overlapping raw detections the cascade merged into the box.

    ``max_side=640`` keeps detection of a 1-4 MP photo at about the cost of a 0.4 MP one (the cascade's cost grows
    with the pixels searched; see benchmarks/RESULTS.md). The cascade's smallest window is 20 pixels, so on a photo
    whose longer side is ``L`` the smallest face found is about ``20 * L / max_side`` pixels: 34 px on a 1 MP photo,
    72 px on a 4 MP one. Pass a larger ``max_side`` (or ``None``: never downscale) for group photos of small faces.
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_alt2.xml", min_neighbors: int = 5,
                 scale_factor: float = 1.1, max_side: int | None = 640):
        self.cascade_name = cascade
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.max_side = max_side

    def detect(self, image: np.ndarray, min_size: float = 24) -> list[FaceBox]:
        gray = cv2.cvtColor(_as_rgb_array(image), cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        shrink = 1.0 if not self.max_side else min(1.0, self.max_side / max(height, width))
        if shrink < 1.0:
            # At least one pixel: a 1 x 30000 strip would otherwise shrink to 0 wide and OpenCV would raise.
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        # No histogram equalisation: the cascade normalises each window's contrast itself, and a global
        # equalisation of a photo with a large flat background washes the faces out.

        min_px = _min_size_pixels(min_size, height, width) * shrink
        min_px = max(20, int(round(min_px)))  # the cascade's own window is 20x20
        if min_px > min(gray.shape):
            return []
        rects, neighbours = _cascade(self.cascade_name).detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        boxes = []
        for (x, y, w, h), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
            score = float(n) / (float(n) + self.min_neighbors)
            boxes.append(FaceBox(float(x), float(y), float(x + w), float(y + h), score).scaled(1.0 / shrink))
        return boxes


def _min_size_pixels(min_size: float, height: int, width: int) -> float:
    # A value below 1 is a fraction of the photo's shorter side; otherwise pixels.
    return min_size * min(height, width) if 0 < min_size < 1 else float(min_size)


_DEFAULT_DETECTOR: Any = None


def default_detector() -> Any:
    """The shared default detector: a :class:`expr_models.retinaface.RetinaFaceDetector` in the Haar framing (its
    onnxruntime session is made on the first photo)."""
    global _DEFAULT_DETECTOR
    if _DEFAULT_DETECTOR is None:
        from .retinaface import RetinaFaceDetector  # imports this module

        _DEFAULT_DETECTOR = RetinaFaceDetector()
    return _DEFAULT_DETECTOR


def detect_faces(image: Image.Image | np.ndarray, min_size: float = 24, detector: FaceDetector | Any = None) -> list[FaceBox]:
    """All faces in ``image``, largest first.

    ``min_size``: the smallest face side to report, in pixels, or as a fraction of the shorter image side when < 1.
    ``detector``: ``None`` for the default (RetinaFace, boxes in the Haar framing), a :class:`HaarFaceDetector`, or
    any object with ``detect(image) -> list[FaceBox]``.
    Outputs in other shapes (a dict or object with ``boxes``/``scores``/``masks``, as a torchvision-style
    segmenter returns) are converted.
    """
    array = _as_rgb_array(image)
    height, width = array.shape[:2]
    detector = default_detector() if detector is None else detector
    if isinstance(detector, HaarFaceDetector):
        raw = detector.detect(array, min_size=min_size)
    elif hasattr(detector, "detect"):
        raw = detector.detect(array)
    elif callable(detector):
        raw = detector(array)
    else:
        raise TypeError(f"A face detector needs a detect(image) method; got {type(detector).__name__}")
    boxes = _to_face_boxes(raw)

    min_px = _min_size_pixels(min_size, height, width)
    kept = []
    for box in boxes:
        # Clip to the photo; a segmenter may return boxes that run off the edge.
        box = FaceBox(max(0.0, box.x0), max(0.0, box.y0), min(float(width), box.x1), min(float(height), box.y1),
                      box.score, box.mask, box.landmarks)
        if min(box.width, box.height) >= min_px and box.area > 0:
            kept.append(box)
    return sorted(kept, key=lambda b: b.area, reverse=True)


def _to_face_boxes(raw: Any) -> list[FaceBox]:
    if isinstance(raw, (list, tuple)) and all(isinstance(b, FaceBox) for b in raw):
        return list(raw)
    if isinstance(raw, (list, tuple)) and all(isinstance(b, dict) and "box" in b for b in raw):
        # FaceSegmenter.detect: [{box: (x0, y0, x1, y1), score, mask: H x W or None}]
        return [FaceBox(*map(float, b["box"]), float(b.get("score", 1.0)), _numpy(b.get("mask"))) for b in raw]
    # dict or object with boxes (N x 4, xyxy), scores (N) and optional masks (N x H x W or N x 1 x H x W)
    get = raw.get if isinstance(raw, dict) else lambda key, default=None: getattr(raw, key, default)
    boxes = _numpy(get("boxes"))
    if boxes is None:
        raise TypeError(f"Cannot read face boxes from a {type(raw).__name__}")
    boxes = boxes.reshape(-1, 4)
    scores = _numpy(get("scores", None))
    masks = _numpy(get("masks", None))
    result = []
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        mask = None
        if masks is not None:
            mask = masks[i]
            mask = mask[0] if mask.ndim == 3 else mask
        result.append(FaceBox(x0, y0, x1, y1, 1.0 if scores is None else float(scores[i]), mask))
    return result


def _numpy(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@dataclass
class CropTransform:
    """Where a crop came from: the square ``[x0, x0 + side) x [y0, y0 + side)`` of the photo (it may run past the
    photo's edges, which the crop fills by reflection), resized to ``size x size``."""

    x0: int
    y0: int
    side: int
    size: int
    photo_width: int
    photo_height: int

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return self.size / self.side

    def crop_to_photo(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + x / self.scale, self.y0 + y / self.scale

    def photo_to_crop(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) * self.scale, (y - self.y0) * self.scale

    def visible_region(self) -> tuple[int, int, int, int]:
        """The part of the square inside the photo: ``(x0, y0, x1, y1)`` in photo pixels."""
        return (max(self.x0, 0), max(self.y0, 0),
                min(self.x0 + self.side, self.photo_width), min(self.y0 + self.side, self.photo_height))

    def to_size(self, size: int) -> "CropTransform":
        """The same square at another output resolution."""
        return CropTransform(self.x0, self.y0, self.side, size, self.photo_width, self.photo_height)


def crop_square(box: FaceBox, scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """The integer square ``(x0, y0, side)`` around the box centre, ``scale`` times the box's longer side."""
    cx, cy = box.center
    side = max(1, int(round(max(box.width, box.height) * scale)))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_face(image: np.ndarray | Image.Image, box: FaceBox, size: int | None = None,
              scale: float = CROP_SCALE) -> tuple[np.ndarray, CropTransform]:
    """Cut the square around ``box`` (``scale`` times its size) and resize it to ``size x size``.

    ``size=None`` keeps the photo's own resolution. Where the square leaves the photo it is filled by reflecting the
    photo at its edge. Returns the crop (same dtype and channels as ``image``) and the :class:`CropTransform` that
    maps it back.
    """
    array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    height, width = array.shape[:2]
    x0, y0, side = crop_square(box, scale)
    size = side if size is None else int(size)
    transform = CropTransform(x0, y0, side, size, width, height)

    vx0, vy0, vx1, vy1 = transform.visible_region()
    if vx1 <= vx0 or vy1 <= vy0:
        raise ValueError(f"The face box {box} lies outside the {width}x{height} image")
    patch = array[vy0:vy1, vx0:vx1]
    pad = (vy0 - y0, y0 + side - vy1, vx0 - x0, x0 + side - vx1)  # top, bottom, left, right
    if any(pad):
        # Reflection needs the patch to be larger than the pad; fall back to repeating the edge for tiny photos.
        border = cv2.BORDER_REFLECT_101 if max(pad) < min(patch.shape[:2]) else cv2.BORDER_REPLICATE
        patch = cv2.copyMakeBorder(np.ascontiguousarray(patch), *pad, borderType=border)
    if size != side:
        interpolation = cv2.INTER_AREA if size < side else cv2.INTER_CUBIC
        patch = cv2.resize(patch, (size, size), interpolation=interpolation)
    return np.ascontiguousarray(patch), transform


def face_mask(size: int, scale: float = CROP_SCALE, feather: float = 0.25, segmentation: np.ndarray | None = None) -> np.ndarray:
    """A feathered elliptical face mask in crop coordinates, ``size x size`` float32 in [0, 1].

    The ellipse covers the face inside a crop made with ``scale``: a bit narrower than the detector box and taller,
    from the forehead to the chin. It is 1 in the middle, falls smoothly to 0 over the outer ``feather`` of its
    radius, and is exactly 0 outside, so paste-back leaves everything outside the ellipse untouched.
    ``segmentation`` (a crop-sized mask from a segmenter) is softened and multiplied in.
    """
    mask = _ellipse_mask(int(size), float(scale), float(feather)).copy()  # a fresh array: callers may modify it
    if segmentation is not None:
        box = size / scale
        seg = np.asarray(segmentation, dtype=np.float32)
        if seg.shape != (size, size):
            seg = cv2.resize(seg, (size, size), interpolation=cv2.INTER_LINEAR)
        sigma = max(1.0, feather * 0.25 * box)
        seg = cv2.GaussianBlur(np.clip(seg, 0, 1), (0, 0), sigma)
        mask *= seg  # zero outside the ellipse stays zero
    return mask


@lru_cache(maxsize=16)
def _ellipse_mask(size: int, scale: float, feather: float) -> np.ndarray:
    """The ellipse of :func:`face_mask`, cached (read-only): each face and photo of the same crop size reuses it."""
    box = size / scale  # the detector box's side in crop pixels
    centre = (size - 1) / 2
    cy = centre + 0.05 * box  # the Haar box sits a little high: its centre is near the nose bridge
    a, b = 0.45 * box, 0.56 * box  # semi-axes (x, y)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = np.sqrt(((xs - centre) / a) ** 2 + ((ys - cy) / b) ** 2)
    t = np.clip((1.0 - radius) / max(feather, 1e-6), 0.0, 1.0)
    mask = t * t * (3.0 - 2.0 * t)  # smoothstep: 0 for radius >= 1, 1 for radius <= 1 - feather
    mask[radius >= 1.0] = 0.0
    mask = mask.astype(np.float32)
    mask.flags.writeable = False
    return mask


def paste_back(photo: np.ndarray, edited_crop: np.ndarray, transform: CropTransform, mask: np.ndarray,
               out: np.ndarray | None = None) -> np.ndarray:
    """Put ``edited_crop`` (made by :func:`crop_face` with ``transform``) back into a copy of ``photo``.

    The crop and its ``mask`` (crop coordinates, any resolution) are resized to the square's size in the photo and
    blended: ``out = photo * (1 - m) + edited * m``. Pixels where the mask is 0 are copied from ``photo`` unchanged.
    ``out``: write into this array (same shape and dtype as ``photo``, e.g. ``photo`` itself, to paste several faces
    without copying the whole photo for each) instead of a new copy.
    """
    photo = np.asarray(photo)
    if out is None:
        out = photo.copy()
    elif out.shape != photo.shape or out.dtype != photo.dtype:
        raise ValueError(f"out has shape {out.shape} {out.dtype}, expected {photo.shape} {photo.dtype}")
    elif out is not photo:
        np.copyto(out, photo)
    side = transform.side
    vx0, vy0, vx1, vy1 = transform.visible_region()
    if vx1 <= vx0 or vy1 <= vy0:
        return out

    edited = np.asarray(edited_crop)
    if edited.shape[:2] != (side, side):
        interpolation = cv2.INTER_AREA if edited.shape[0] > side else cv2.INTER_CUBIC
        edited = cv2.resize(edited, (side, side), interpolation=interpolation)
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (side, side):
        # Linear resizing keeps the mask's zeros where a 0 neighbourhood is all zeros; cubic would ring below 0.
        mask = cv2.resize(mask, (side, side), interpolation=cv2.INTER_LINEAR)

    # The visible part of the square, in crop coordinates, shrunk to the rows and columns where the mask is on:
    # nothing outside them changes, so nothing there needs blending (the ellipse leaves out about a third).
    cx0, cy0 = vx0 - transform.x0, vy0 - transform.y0
    m = mask[cy0:cy0 + (vy1 - vy0), cx0:cx0 + (vx1 - vx0)]
    rows, cols = np.flatnonzero((m > 0).any(1)), np.flatnonzero((m > 0).any(0))
    if rows.size == 0:
        return out
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    m = np.clip(m[r0:r1, c0:c1], 0.0, 1.0)
    src = edited[cy0 + r0:cy0 + r1, cx0 + c0:cx0 + c1].astype(np.float32)
    region = out[vy0 + r0:vy0 + r1, vx0 + c0:vx0 + c1]
    dst = photo[vy0 + r0:vy0 + r1, vx0 + c0:vx0 + c1].astype(np.float32)
    if dst.ndim == 3 and src.ndim == 2:
        src = src[..., None]
    if dst.ndim == 3:
        m = m[..., None]
    blended = dst * (1.0 - m) + src * m
    np.rint(blended, out=blended)
    np.clip(blended, 0, 255, out=blended)
    # Copy only where the mask is on, so the rest stays byte-identical.
    np.copyto(region, blended.astype(photo.dtype), where=np.broadcast_to(m > 0, blended.shape))
    return out
