"""Face geometry: boxes, the square crop at the training framing, blend masks and paste-back.

Nothing here finds faces (that is :mod:`expr_models.faces.detection`) or prepares model tensors (that is
:class:`expr_models.faces.processing.FaceImageProcessor`, which uses these functions):

    crop, transform = crop_face(photo, box)           # square around the box, CROP_SCALE times its size
    ...edit crop...
    mask = face_mask(transform.size)                  # feathered ellipse, exactly 0 outside the face
    photo = paste_back(photo, edited, transform, mask)

Boxes are in the Haar cascade's framing, the one every training crop was cut with; detectors that draw other boxes map
theirs to it (see :mod:`expr_models.faces.detection.retinaface`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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
    smaller x first), the nose tip and the two mouth corners (smaller x first). ``mesh_roi`` is an optional square
    ``(centre, side, angle)`` in photo pixels where the face mesh finds this face: a video frame's tracker sets it
    from the last frame's mesh (``expr_models.faces.live``), so the mesh is read once instead of twice.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    mask: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    mesh_roi: tuple[np.ndarray, float, float] | None = None

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
        roi = None if self.mesh_roi is None else \
            (np.asarray(self.mesh_roi[0], np.float64) * factor, self.mesh_roi[1] * factor, self.mesh_roi[2])
        return FaceBox(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score, self.mask,
                       landmarks, roi)

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in (self.x0, self.y0, self.x1, self.y1)], "score": round(float(self.score), 3)}



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


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resample a (square) face image to ``size x size``: the one resampling rule for face pixels, in training crops,
    model inputs and paste-back alike.

    OpenCV's area interpolation when shrinking: each output pixel is the area-weighted mean of the photo pixels it
    covers, so a face of any size reaches the model's 32-128 px without aliasing, in one pass (fast on phone photos),
    and it is what every committed model was trained on (the JAFFE/FEI crops) and fed by the editor. Bicubic when
    enlarging, where area interpolation would only be bilinear.
    """
    height, width = image.shape[:2]
    if height == size and width == size:
        return image
    interpolation = cv2.INTER_AREA if size * size < height * width else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


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
    return np.ascontiguousarray(resize_square(patch, size)), transform


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
    edited = resize_square(edited, side)
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
    region = out[vy0 + r0:vy0 + r1, vx0 + c0:vx0 + c1]
    if m.min() >= 1.0 and edited.dtype == photo.dtype:  # opaque (a mesh warp's whole crop): a plain copy
        src = edited[cy0 + r0:cy0 + r1, cx0 + c0:cx0 + c1]
        np.copyto(region, src[..., None] if region.ndim == 3 and src.ndim == 2 else src, casting="unsafe")
        return out
    src = edited[cy0 + r0:cy0 + r1, cx0 + c0:cx0 + c1].astype(np.float32)
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


def stamp_mask(canvas: np.ndarray, mask: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Draw a crop's blend ``mask`` (``side x side``, crop coordinates) into a photo-sized float ``canvas``, keeping the
    larger value where faces overlap: where each face's edit lands in the photo."""
    x0, y0, x1, y1 = transform.visible_region()
    if x1 <= x0 or y1 <= y0:
        return canvas
    patch = mask[y0 - transform.y0:y1 - transform.y0, x0 - transform.x0:x1 - transform.x0]
    canvas[y0:y1, x0:x1] = np.maximum(canvas[y0:y1, x0:x1], patch)
    return canvas
